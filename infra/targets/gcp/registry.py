"""Artifact Registry Docker repository the stack's image is pushed to."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.image import RegistryCredentials
from infra.platform import Registry

DAY_SECONDS = 86_400


@dataclass
class ArtifactRepositoryArgs:
    project: pulumi.Input[str]
    region: pulumi.Input[str]
    repository_id: pulumi.Input[str]
    image_name: pulumi.Input[str]
    labels: pulumi.Input[dict[str, str]]
    # Cleanup: the newest `keep_count` versions always stay (so a stable revision in a canary
    # split keeps its image); untagged leftovers go after a week, everything else after 30 days.
    keep_count: int = 10
    untagged_retention_days: int = 7
    retention_days: int = 30


class ArtifactRepository(Registry):
    """Docker repository with cleanup policies, plus the short-lived push credentials for it.

    `repository` (the interface field) is the image name inside it; the build pushes there and
    Cloud Run deploys the pushed digest.
    """

    docker_repository: gcp.artifactregistry.Repository
    server: pulumi.Output[str]
    repository_url: pulumi.Output[str]
    username: pulumi.Output[str]
    password: pulumi.Output[str]

    def __init__(
        self, name: str, args: ArtifactRepositoryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:gcp:ArtifactRepository", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.docker_repository = gcp.artifactregistry.Repository(
            f"{name}-docker",
            project=args.project,
            location=args.region,
            repository_id=args.repository_id,
            format="DOCKER",
            description="scamguard model API images (deployed by digest)",
            labels=args.labels,
            cleanup_policy_dry_run=False,
            cleanup_policies=[
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="keep-most-recent",
                    action="KEEP",
                    most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                        keep_count=args.keep_count,
                    ),
                ),
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="delete-untagged",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="UNTAGGED",
                        older_than=f"{args.untagged_retention_days * DAY_SECONDS}s",
                    ),
                ),
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="delete-old",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="ANY",
                        older_than=f"{args.retention_days * DAY_SECONDS}s",
                    ),
                ),
            ],
            opts=child,
        )
        self.server = pulumi.Output.concat(self.docker_repository.location, "-docker.pkg.dev")
        self.repository_url = pulumi.Output.concat(
            self.server, "/", self.docker_repository.project, "/", self.docker_repository.repository_id
        )
        # The deployer's own (gcloud application-default) credentials push the image: an OAuth
        # access token is what Artifact Registry accepts as the password of "oauth2accesstoken".
        client = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self.username = pulumi.Output.from_input("oauth2accesstoken")
        self.password = pulumi.Output.secret(client.access_token)
        self.repository = pulumi.Output.concat(self.repository_url, "/", args.image_name)
        self.push = True
        self.credentials = RegistryCredentials(
            address=self.server, username=self.username, password=self.password
        )
        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "repository": self.repository,
                "server": self.server,
                "repository_id": self.docker_repository.repository_id,
            }
        )
