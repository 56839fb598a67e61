"""The scamguard policy pack: adapts pulumi_policy's ResourceValidationArgs to scamguard_policy's rules.

The Pulumi CLI runs this file (``pulumi preview --policy-pack policy``) with this directory on
``sys.path``; every decision is in ``scamguard_policy``, which the tests call directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError
from scamguard_policy import RULES, STACK_RULES, UNKNOWN, Resource, Rule, StackContext, StackRule

PACK_NAME = "scamguard"
LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def plain(value: Any) -> Any:
    """The engine's props (proxies that raise on values unknown during preview) as plain data.

    An unknown value becomes UNKNOWN, so a rule skips that one check instead of the whole policy
    being reported as "can't run during preview".
    """
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key in value:
            try:
                result[key] = plain(value[key])
            except UnknownValueError:
                result[key] = UNKNOWN
        return result
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        elements: list[Any] = []
        for index in range(len(value)):
            try:
                elements.append(plain(value[index]))
            except UnknownValueError:
                elements.append(UNKNOWN)
        return elements
    return value


def stack_context(rule: Rule | StackRule, policy_config: Mapping[str, Any]) -> StackContext:
    """The stack under analysis: the engine sets PULUMI_STACK and passes the stack's config."""
    public = pulumi.Config("scamguard").get("public") or "false"
    return StackContext.from_config(
        os.environ.get("PULUMI_STACK", ""), {"scamguard:public": public}, {rule.name: policy_config}
    )


def to_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not rule.applies_to(args.resource_type):
            return
        resource = Resource(type=args.resource_type, name=args.name, props=plain(args.props))
        for message in rule.violations(resource, stack_context(rule, args.get_config())):
            report_violation(message, None)

    schema = None
    if rule.config_schema:
        schema = PolicyConfigSchema(properties={key: dict(spec) for key, spec in rule.config_schema.items()})
    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        enforcement_level=LEVELS[rule.enforcement],
        validate=validate,
        config_schema=schema,
    )


def to_stack_policy(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [
            Resource(type=r.resource_type, name=r.name, props=plain(r.props)) for r in args.resources
        ]
        for message in rule.violations(resources, stack_context(rule, args.get_config())):
            report_violation(message, None)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        enforcement_level=LEVELS[rule.enforcement],
        validate=validate,
    )


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [*(to_policy(rule) for rule in RULES), *(to_stack_policy(rule) for rule in STACK_RULES)]


def main() -> None:
    # Serves the engine over gRPC until it disconnects.
    PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=list(policies()))


if __name__ == "__main__":
    main()
