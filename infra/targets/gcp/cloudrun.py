"""A Cloud Run app: one Cloud Run v2 service and who may invoke it, the template every app shares.

The model API, Grafana and the GMP rule evaluator are each a `CloudRunApp`: the same gen2
template (the app's own service account, labels on the service and its revisions, a digest
annotation of the files it reads at start), ingress, scaling bounds, deletion protection and
invoker bindings. What differs (containers, volumes, VPC egress, traffic) is passed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

run = gcp.cloudrunv2

INGRESS = {
    "all": "INGRESS_TRAFFIC_ALL",
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
}
# Revision-template annotation carrying the digest of the files a service reads from its bucket at
# start: a new digest is a new revision, so changed rules or dashboards reach the running service.
FILES_ANNOTATION = "scamguard.io/files-sha256"


def member_slug(member: str) -> str:
    """A stable, URN-safe resource name suffix for an IAM member."""
    kind, _, who = member.partition(":")
    return (kind + "-" + who if who else kind).lower().replace("@", "-at-").replace(".", "-")[:60]


def files_sha256(files: Mapping[str, str]) -> str:
    """One digest over file paths and contents, independent of their order."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path}\0{len(files[path])}\0{files[path]}".encode())
    return digest.hexdigest()


def bucket_volume(name: str, bucket: pulumi.Input[str]) -> run.ServiceTemplateVolumeArgs:
    """A Cloud Storage bucket mounted read-only (needs the gen2 execution environment)."""
    return run.ServiceTemplateVolumeArgs(
        name=name, gcs=run.ServiceTemplateVolumeGcsArgs(bucket=bucket, read_only=True)
    )


def secret_volume(
    name: str,
    secret_id: pulumi.Input[str],
    version: pulumi.Input[str],
    path: str,
    mode: int | None = None,
) -> run.ServiceTemplateVolumeArgs:
    """One Secret Manager secret as one file, at a pinned version (a new version = a new revision)."""
    return run.ServiceTemplateVolumeArgs(
        name=name,
        secret=run.ServiceTemplateVolumeSecretArgs(
            secret=secret_id,
            default_mode=mode,
            items=[run.ServiceTemplateVolumeSecretItemArgs(path=path, version=version)],
        ),
    )


@dataclass
class CloudRunAppArgs:
    project: pulumi.Input[str]
    region: pulumi.Input[str]
    service_name: pulumi.Input[str]
    description: str
    labels: pulumi.Input[dict[str, str]]
    service_account_email: pulumi.Input[str]
    containers: Sequence[run.ServiceTemplateContainerArgs]
    ingress: str  # key of INGRESS
    min_instances: int
    max_instances: int
    deletion_protection: bool = False
    volumes: Sequence[run.ServiceTemplateVolumeArgs] = field(default_factory=tuple)
    invokers: Sequence[str] = field(default_factory=tuple)
    # Digest of the files the app reads from a bucket at start (FILES_ANNOTATION); None = none.
    files_sha256: str | None = None
    concurrency: int | None = None  # requests per instance; None = Cloud Run's default
    vpc_access: run.ServiceTemplateVpcAccessArgs | None = None
    traffics: Sequence[run.ServiceTrafficArgs] | None = None  # None = all to the latest revision
    # What a new revision needs the moment it starts (its identity's roles, secret accessors).
    needs: Sequence[pulumi.Resource] = field(default_factory=tuple)


class CloudRunApp(pulumi.ComponentResource):
    """One Cloud Run v2 service (gen2) and its invoker bindings."""

    service: run.Service
    url: pulumi.Output[str]
    name: pulumi.Output[str]

    def __init__(self, name: str, args: CloudRunAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:gcp:CloudRunApp", name, None, opts)
        if args.ingress not in INGRESS:
            raise ValueError(f"ingress must be one of {sorted(INGRESS)}, got {args.ingress!r}")
        # These resources used to be children of the component that now owns this app: the alias
        # keeps their URNs, so existing stacks update them in place instead of replacing them.
        moved = [pulumi.Alias(parent=opts.parent)] if opts is not None and opts.parent is not None else []
        child = pulumi.ResourceOptions(parent=self, aliases=moved)
        self.service = run.Service(
            f"{name}-service",
            project=args.project,
            location=args.region,
            name=args.service_name,
            description=args.description,
            labels=args.labels,
            ingress=INGRESS[args.ingress],
            deletion_protection=args.deletion_protection,
            template=run.ServiceTemplateArgs(
                labels=args.labels,
                annotations=None if args.files_sha256 is None else {FILES_ANNOTATION: args.files_sha256},
                service_account=args.service_account_email,
                execution_environment="EXECUTION_ENVIRONMENT_GEN2",
                max_instance_request_concurrency=args.concurrency,
                scaling=run.ServiceTemplateScalingArgs(
                    min_instance_count=args.min_instances, max_instance_count=args.max_instances
                ),
                vpc_access=args.vpc_access,
                containers=list(args.containers),
                volumes=list(args.volumes),
            ),
            traffics=None if args.traffics is None else list(args.traffics),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(args.needs))),
        )
        for member in args.invokers:
            run.ServiceIamMember(
                f"{name}-invoker-{member_slug(member)}",
                project=args.project,
                location=args.region,
                name=self.service.name,
                role="roles/run.invoker",
                member=member,
                opts=child,
            )
        self.url = self.service.uri
        self.name = self.service.name
        self.register_outputs({"url": self.url, "name": self.name})
