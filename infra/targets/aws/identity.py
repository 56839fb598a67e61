"""The ECS task's two IAM roles: the execution role (what ECS does for the task: pull the image, write
its logs, read its secret) and the task role (what the containers do: the collector's remote write).

Both trust ecs-tasks.amazonaws.com for this account only. Each grant names its resource's ARN; the
components that create those resources attach the grants for them (infra/targets/aws/service.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.platform import Identity
from infra.targets.aws.policies import allow, document, service_trust

# ecr:GetAuthorizationToken has no resource-level form: IAM only accepts "*" for it.
ECR_AUTH_ACTIONS = ("ecr:GetAuthorizationToken",)
ECR_PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
# The first pull of a public image through the pull-through cache creates its repository.
ECR_CACHE_ACTIONS = (*ECR_PULL_ACTIONS, "ecr:BatchImportUpstreamImage", "ecr:CreateRepository")


def execution_pull_policy(account_id: str, region: str, repository_arn: str, cache_prefix: str) -> dict:
    return document(
        allow("EcrAuth", ECR_AUTH_ACTIONS, "*"),
        allow("PullServiceImage", ECR_PULL_ACTIONS, repository_arn),
        allow(
            "PullCollectorImage",
            ECR_CACHE_ACTIONS,
            f"arn:aws:ecr:{region}:{account_id}:repository/{cache_prefix}/*",
        ),
    )


@dataclass
class TaskIdentityArgs:
    name_prefix: str
    region: str
    account_id: pulumi.Output[str]
    repository_arn: pulumi.Input[str]
    cache_prefix: str  # the pull-through cache's repository prefix
    tags: Mapping[str, str]


class TaskIdentity(Identity):
    """``principal`` is the task role's ARN."""

    execution_role: aws.iam.Role
    task_role: aws.iam.Role

    def __init__(self, name: str, args: TaskIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:aws:TaskIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        trust = args.account_id.apply(
            lambda account: json.dumps(
                service_trust("ecs-tasks.amazonaws.com", account, f"arn:aws:ecs:{args.region}:{account}:*")
            )
        )

        def role(suffix: str, description: str) -> aws.iam.Role:
            return aws.iam.Role(
                f"{name}-{suffix}",
                name=f"{args.name_prefix}-{suffix}",
                description=description,
                assume_role_policy=trust,
                tags=dict(args.tags),
                opts=child,
            )

        self.execution_role = role(
            "execution", "ECS pulls the scamguard image, writes its logs and reads its API keys"
        )
        self.task_role = role("task", "The scamguard task's containers: remote write of its metrics")
        aws.iam.RolePolicy(
            f"{name}-execution-pull",
            role=self.execution_role.name,
            policy=pulumi.Output.all(args.account_id, args.repository_arn).apply(
                lambda values: json.dumps(
                    execution_pull_policy(values[0], args.region, values[1], args.cache_prefix)
                )
            ),
            opts=child,
        )
        self.principal = self.task_role.arn
        self.register_outputs({"principal": self.principal})
