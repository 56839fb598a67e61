"""The scamguard policy rules as plain functions over (resource type, camelCase props, stack).

``RULES`` (per resource) and ``STACK_RULES`` (over all resources of a stack) are what
``policy/__main__.py`` registers with pulumi_policy and what tests/policy runs on the mocked graph of
every stack.
"""

from __future__ import annotations

from . import aws, docker_local, gcp_cloud_run, gcp_iam, gcp_resources, kubernetes
from .core import (
    UNKNOWN,
    Enforcement,
    Resource,
    Rule,
    StackContext,
    StackRule,
    Violation,
    evaluate,
    is_production,
)

RULES: tuple[Rule, ...] = (
    *gcp_iam.RULES,
    *gcp_cloud_run.RULES,
    *gcp_resources.RULES,
    *docker_local.RULES,
    *kubernetes.RULES,
    *aws.RULES,
)
STACK_RULES: tuple[StackRule, ...] = (*kubernetes.STACK_RULES, *aws.STACK_RULES)

__all__ = [
    "RULES",
    "STACK_RULES",
    "UNKNOWN",
    "Enforcement",
    "Resource",
    "Rule",
    "StackContext",
    "StackRule",
    "Violation",
    "evaluate",
    "is_production",
]
