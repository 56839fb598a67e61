"""Any OCI registry (GHCR, Harbor, ECR, Artifact Registry, a registry in the cluster...): nothing to create.

The build pushes to ``<registry>/<image name>`` with the configured credentials (or the builder's
own ``docker login`` when none are configured); the Deployment runs the pushed digest.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.image import RegistryCredentials
from infra.platform import Registry


@dataclass
class OciRegistryArgs:
    registry: str  # host[:port]/path, e.g. ghcr.io/acme
    host: str  # its host[:port] (KubernetesSettings.registry_host)
    image_name: str
    username: str = ""  # "" = ambient credentials for the push, anonymous pulls
    password: pulumi.Input[str] | None = None  # secret


class OciRegistry(Registry):
    """An existing registry; ``credentials`` also feed the namespace's image pull secret."""

    host: str

    def __init__(self, name: str, args: OciRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:kubernetes:OciRegistry", name, None, opts)
        self.host = args.host
        self.repository = pulumi.Output.from_input(f"{args.registry}/{args.image_name}")
        self.push = True
        self.credentials = (
            RegistryCredentials(address=self.host, username=args.username, password=args.password)
            if args.username and args.password is not None
            else None
        )
        self.register_outputs({"repository": self.repository})
