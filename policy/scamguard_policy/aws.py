"""AWS: tasks stay private, no principal is "*", deployments roll back, images by digest, data encrypted,
logs expire, and every internet-facing load balancer sits behind WAF."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .core import UNKNOWN, Resource, Rule, StackContext, StackRule, get, items, type_is

ECS_SERVICE = "aws:ecs/service:Service"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ROLE = "aws:iam/role:Role"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
REPOSITORY = "aws:ecr/repository:Repository"
TOPIC = "aws:sns/topic:Topic"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
WAF_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, Mapping | list) else None


def check_private_tasks(resource: Resource, stack: StackContext) -> Iterator[str]:
    public_ip = get(resource.props, "networkConfiguration", "assignPublicIp")
    if public_ip not in (False, None, UNKNOWN):
        yield (
            f"ECS service {resource.name} gives its tasks public IPs: set assign_public_ip=False "
            "(tasks stay in private subnets)."
        )
    if get(resource.props, "networkConfiguration") is None:
        yield f"ECS service {resource.name} has no network configuration: run it in private subnets (awsvpc)."


def _principals(document: Any) -> Iterator[Any]:
    statements = get(document, "Statement")
    for statement in statements if isinstance(statements, list) else [statements]:
        if isinstance(statement, Mapping) and statement.get("Effect") == "Allow":
            yield statement.get("Principal")


def _is_wildcard(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any(v == "*" or (isinstance(v, list) and "*" in v) for v in principal.values())
    return False


def check_no_wildcard_principal(resource: Resource, stack: StackContext) -> Iterator[str]:
    field = "assumeRolePolicy" if resource.type == ROLE else "policy"
    raw = resource.props.get(field)
    if raw is UNKNOWN:
        return
    document = _json(raw)
    if document is None:
        return
    if any(_is_wildcard(p) for p in _principals(document)):
        yield f'{resource.name} allows any principal ("*"): name the service or account that may act.'


def check_circuit_breaker(resource: Resource, stack: StackContext) -> Iterator[str]:
    breaker = resource.props.get("deploymentCircuitBreaker")
    if breaker is UNKNOWN:
        return
    if get(breaker, "enable") is not True or get(breaker, "rollback") is not True:
        yield (
            f"ECS service {resource.name} has no deployment circuit breaker with rollback: set "
            "deployment_circuit_breaker={'enable': True, 'rollback': True}, so a failing release rolls back."
        )


def check_image_digest(resource: Resource, stack: StackContext) -> Iterator[str]:
    definitions = _json(resource.props.get("containerDefinitions"))
    if not isinstance(definitions, list):
        return
    for container in definitions:
        if not isinstance(container, Mapping) or container.get("essential") is False:
            continue
        image = container.get("image")
        if not isinstance(image, str) or "@sha256:" not in image:
            yield (
                f"task definition {resource.name} runs {container.get('name')} from {image!r} by tag: "
                "deploy by digest (REPOSITORY@sha256:...)."
            )


def check_encryption(resource: Resource, stack: StackContext) -> Iterator[str]:
    if resource.type == REPOSITORY and not items(resource.props.get("encryptionConfigurations")):
        yield (
            f"ECR repository {resource.name} is not KMS-encrypted: set "
            "encryption_configurations=[{'encryption_type': 'KMS'}]."
        )
    if resource.type == TOPIC and resource.props.get("kmsMasterKeyId") in (None, ""):
        yield f"SNS topic {resource.name} is not encrypted: set kms_master_key_id (e.g. alias/aws/sns)."


def check_log_retention(resource: Resource, stack: StackContext) -> Iterator[str]:
    days = resource.props.get("retentionInDays")
    if days is UNKNOWN:
        return
    if not isinstance(days, int | float) or days <= 0:
        yield f"log group {resource.name} keeps logs forever: set retention_in_days (awsLogRetentionDays)."


def check_waf_on_public_load_balancers(resources: Sequence[Resource], stack: StackContext) -> Iterator[str]:
    associated = [str(r.props.get("resourceArn")) for r in resources if r.type == WAF_ASSOCIATION]
    for lb in resources:
        if lb.type != LOAD_BALANCER or lb.props.get("internal") is not False:
            continue
        arn, name = lb.props.get("arn"), lb.props.get("name")
        if isinstance(arn, str) and arn in associated:
            continue
        if isinstance(name, str) and any(f"/app/{name}/" in a for a in associated):
            continue
        yield (
            f"internet-facing load balancer {lb.name} has no WAF web ACL: associate one "
            "(aws.wafv2.WebAclAssociation) with a rate-based rule and AWS managed rule groups."
        )


RULES = (
    Rule(
        name="aws-ecs-private-tasks",
        description="ECS tasks get no public IP and run in the service's (private) subnets.",
        enforcement="mandatory",
        applies_to=type_is(ECS_SERVICE),
        check=check_private_tasks,
    ),
    Rule(
        name="aws-no-wildcard-principal",
        description='No trust or resource policy allows the principal "*".',
        enforcement="mandatory",
        applies_to=type_is(ROLE, TOPIC_POLICY),
        check=check_no_wildcard_principal,
    ),
    Rule(
        name="aws-ecs-circuit-breaker",
        description="ECS services roll back failed deployments (circuit breaker with rollback).",
        enforcement="mandatory",
        applies_to=type_is(ECS_SERVICE),
        check=check_circuit_breaker,
    ),
    Rule(
        name="aws-ecs-image-digest",
        description="The essential containers of a task definition run images by digest.",
        enforcement="mandatory",
        applies_to=type_is(TASK_DEFINITION),
        check=check_image_digest,
    ),
    Rule(
        name="aws-encryption",
        description="ECR repositories and SNS topics are encrypted with KMS.",
        enforcement="mandatory",
        applies_to=type_is(REPOSITORY, TOPIC),
        check=check_encryption,
    ),
    Rule(
        name="aws-log-retention",
        description="CloudWatch log groups expire their logs.",
        enforcement="mandatory",
        applies_to=type_is(LOG_GROUP),
        check=check_log_retention,
    ),
)

STACK_RULES = (
    StackRule(
        name="aws-waf-on-public-load-balancers",
        description="Every internet-facing load balancer of the stack has a WAF web ACL.",
        enforcement="mandatory",
        check=check_waf_on_public_load_balancers,
    ),
)
