"""Secret Manager secrets a Cloud Run service mounts, readable only by that service's account."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp


@dataclass
class MountedSecretArgs:
    project: pulumi.Input[str]
    secret_id: pulumi.Input[str]
    # Secret payload; it reaches Secret Manager and Pulumi's state only as an encrypted secret.
    data: pulumi.Input[str]
    accessor: pulumi.Input[str]  # IAM member of the workload that reads it
    labels: pulumi.Input[dict[str, str]]
    deletion_protection: bool = False


class MountedSecret(pulumi.ComponentResource):
    """One secret, its current version and the accessor binding scoped to this secret alone.

    `version` is the numeric version: Cloud Run mounts exactly that version, so changing the data
    rolls out a new revision instead of instances silently reading "latest" at random times.
    """

    secret: gcp.secretmanager.Secret
    secret_version: gcp.secretmanager.SecretVersion
    accessor_binding: gcp.secretmanager.SecretIamMember
    secret_id: pulumi.Output[str]
    version: pulumi.Output[str]

    def __init__(
        self, name: str, args: MountedSecretArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:gcp:MountedSecret", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.secret = gcp.secretmanager.Secret(
            f"{name}-secret",
            project=args.project,
            secret_id=args.secret_id,
            labels=args.labels,
            replication=gcp.secretmanager.SecretReplicationArgs(
                auto=gcp.secretmanager.SecretReplicationAutoArgs()
            ),
            deletion_protection=args.deletion_protection,
            opts=child,
        )
        self.secret_version = gcp.secretmanager.SecretVersion(
            f"{name}-version",
            secret=self.secret.id,
            secret_data=pulumi.Output.secret(args.data),
            # A new value (key rotation, a new collector config) adds a version and leaves the old
            # one: the stable revision of a canary split, or a rollback target, still mounts it.
            # Versions go with the secret itself when the stack is destroyed.
            deletion_policy="ABANDON",
            opts=child,
        )
        self.accessor_binding = gcp.secretmanager.SecretIamMember(
            f"{name}-accessor",
            project=args.project,
            secret_id=self.secret.secret_id,
            role="roles/secretmanager.secretAccessor",
            member=args.accessor,
            opts=child,
        )
        self.secret_id = self.secret.secret_id
        self.version = self.secret_version.version
        self.register_outputs({"secret_id": self.secret_id, "version": self.version})
