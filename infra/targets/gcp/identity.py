"""Dedicated service accounts with exactly the roles each workload needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from infra.platform import Identity

# The API's runtime principal: write its logs and the metrics the GMP sidecar collects. Image pull
# (scoped to the repository) and secret access (scoped to each secret) are granted on the resource.
RUNTIME_PROJECT_ROLES: tuple[str, ...] = ("roles/logging.logWriter", "roles/monitoring.metricWriter")
# Grafana only reads metrics (through the GMP query API).
GRAFANA_PROJECT_ROLES: tuple[str, ...] = ("roles/monitoring.viewer",)
# The GMP rule evaluator queries metrics and writes the recorded series back.
# (Cloud Run collects every container's stdout itself: no log role needed for that.)
RULE_EVALUATOR_PROJECT_ROLES: tuple[str, ...] = ("roles/monitoring.metricWriter", "roles/monitoring.viewer")
PRIMITIVE_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})


@dataclass
class ServiceIdentityArgs:
    project: pulumi.Input[str]
    # 6-30 chars, [a-z][-a-z0-9]*[a-z0-9]; unique in the project, so it carries the stack name.
    account_id: pulumi.Input[str]
    display_name: pulumi.Input[str]
    project_roles: Sequence[str] = field(default_factory=tuple)
    # When set, the account may read objects of this bucket only (storage.objectViewer).
    read_bucket: pulumi.Input[str] | None = None


class ServiceIdentity(Identity):
    """A service account plus its role bindings. `principal` is its e-mail; `member` is what IAM
    bindings elsewhere take ("serviceAccount:EMAIL")."""

    account: gcp.serviceaccount.Account
    email: pulumi.Output[str]
    member: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:gcp:ServiceIdentity", name, None, opts)
        primitive = PRIMITIVE_ROLES.intersection(args.project_roles)
        if primitive:
            raise ValueError(f"primitive roles are never granted, got {sorted(primitive)}")
        child = pulumi.ResourceOptions(parent=self)
        self.account = gcp.serviceaccount.Account(
            f"{name}-sa",
            project=args.project,
            account_id=args.account_id,
            display_name=args.display_name,
            description="Managed by Pulumi (scamguard); roles are granted by the program only.",
            opts=child,
        )
        self.email = self.account.email
        self.member = pulumi.Output.concat("serviceAccount:", self.email)
        for role in args.project_roles:
            gcp.projects.IAMMember(
                f"{name}-{role.removeprefix('roles/').replace('.', '-').lower()}",
                project=args.project,
                role=role,
                member=self.member,
                opts=child,
            )
        if args.read_bucket is not None:
            gcp.storage.BucketIAMMember(
                f"{name}-bucket-reader",
                bucket=args.read_bucket,
                role="roles/storage.objectViewer",
                member=self.member,
                opts=child,
            )
        self.principal = self.email
        self.register_outputs({"email": self.email, "member": self.member})
