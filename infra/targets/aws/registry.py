"""ECR: the stack's repository (immutable tags, scan on push, KMS encryption, lifecycle) and a pull-through
cache for the public collector image, so tasks pull everything through the private ECR endpoints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.image import RegistryCredentials
from infra.platform import Registry

# Repositories under this prefix mirror public.ecr.aws on first pull (the ADOT collector's home).
PUBLIC_CACHE_PREFIX = "ecr-public"
UNTAGGED_DAYS = 7


def lifecycle_policy(keep_images: int) -> dict[str, Any]:
    """ECR lifecycle rules: untagged images go after a week; the newest `keep_images` tagged stay."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"untagged images older than {UNTAGGED_DAYS} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": UNTAGGED_DAYS,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"keep the newest {keep_images} tagged images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_images,
                },
                "action": {"type": "expire"},
            },
        ]
    }


@dataclass
class EcrRegistryArgs:
    repository_name: str
    image_name: str
    keep_images: int
    tags: Mapping[str, str]
    force_delete: bool = False


class EcrRegistry(Registry):
    repository_resource: aws.ecr.Repository
    repository_arn: pulumi.Output[str]
    registry_id: pulumi.Output[str]

    def __init__(self, name: str, args: EcrRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:aws:EcrRegistry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository_resource = aws.ecr.Repository(
            f"{name}-repository",
            name=f"{args.repository_name}/{args.image_name}",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS"}],
            force_delete=args.force_delete,
            tags=dict(args.tags),
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository_resource.name,
            policy=json.dumps(lifecycle_policy(args.keep_images)),
            opts=child,
        )
        aws.ecr.PullThroughCacheRule(
            f"{name}-public-cache",
            ecr_repository_prefix=f"{args.repository_name}-{PUBLIC_CACHE_PREFIX}",
            upstream_registry_url="public.ecr.aws",
            opts=child,
        )
        self.repository = self.repository_resource.repository_url
        self.repository_arn = self.repository_resource.arn
        self.registry_id = self.repository_resource.registry_id
        self.immutable_tags = True
        self.push = True
        token = aws.ecr.get_authorization_token_output(registry_id=self.registry_id)
        self.credentials = RegistryCredentials(
            address=token.proxy_endpoint,
            username=token.user_name,
            password=pulumi.Output.secret(token.password),
        )
        self.register_outputs({"repository": self.repository})
