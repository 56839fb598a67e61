"""The API's ServiceAccount: no API token mounted, no RBAC (the service never calls the Kubernetes API),
and the registry's pull secret when the registry needs credentials."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.image import RegistryCredentials
from infra.platform import Identity


def docker_config_json(credentials: RegistryCredentials) -> pulumi.Output[str]:
    """The ``.dockerconfigjson`` of a kubernetes.io/dockerconfigjson Secret (secret)."""

    def render(values: list[str]) -> str:
        address, username, password = values
        auth = base64.b64encode(f"{username}:{password}".encode()).decode()
        return json.dumps({"auths": {address: {"username": username, "password": password, "auth": auth}}})

    return pulumi.Output.secret(
        pulumi.Output.all(credentials.address, credentials.username, credentials.password).apply(render)
    )


@dataclass
class ServiceAccountIdentityArgs:
    namespace: pulumi.Input[str]
    account_name: str
    labels: Mapping[str, str]
    registry_credentials: RegistryCredentials | None = None


class ServiceAccountIdentity(Identity):
    """``principal`` is the ServiceAccount's name."""

    service_account: k8s.core.v1.ServiceAccount
    pull_secret: k8s.core.v1.Secret | None

    def __init__(
        self, name: str, args: ServiceAccountIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:kubernetes:ServiceAccountIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.pull_secret = None
        pull_secrets: list[k8s.core.v1.LocalObjectReferenceArgsDict] = []
        if args.registry_credentials is not None:
            self.pull_secret = k8s.core.v1.Secret(
                f"{name}-pull-secret",
                metadata={
                    "name": f"{args.account_name}-registry",
                    "namespace": args.namespace,
                    "labels": dict(args.labels),
                },
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": docker_config_json(args.registry_credentials)},
                opts=child,
            )
            pull_secrets.append({"name": f"{args.account_name}-registry"})
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata={"name": args.account_name, "namespace": args.namespace, "labels": dict(args.labels)},
            automount_service_account_token=False,
            image_pull_secrets=pull_secrets or None,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.pull_secret] if self.pull_secret is not None else None
            ),
        )
        self.principal = self.service_account.metadata.apply(lambda m: m.name or args.account_name)
        self.register_outputs({"principal": self.principal})
