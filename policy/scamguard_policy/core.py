"""What every rule works on: a resource's type and camelCase inputs, and facts about the stack.

Rules are plain functions ``check(resource, stack) -> messages``; nothing here imports
pulumi_policy, so the tests call exactly the code the pack runs.  Property names are camelCase
everywhere, because that is what both the engine (``ResourceValidationArgs.props``: the raw
inputs) and Pulumi's mocks (the offline preview graph) hand over.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

Enforcement = Literal["mandatory", "advisory"]


class _Unknown:
    """A value the engine cannot know yet during a preview (e.g. the digest of an image to build)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()

# Stack names treated as production: no public invoker without an explicit policy override,
# deletion protection required.  Anything that merely *looks* like prod counts, so "prod-eu" is
# covered too; an unknown stack name is treated as production (fail closed).
_PRODUCTION = re.compile(r"(?:^|[-_.])(?:prod|production|prd)(?:$|[-_.])")


def is_production(stack: str) -> bool:
    return not stack or bool(_PRODUCTION.search(stack.lower()))


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class StackContext:
    """Facts about the stack being checked.

    stack: stack name ("" when the engine did not say: treated as production).
    public: the stack's own ``scamguard:public`` config, the one switch that may open the API.
    allow_public_production: policy config of ``cloud-run-no-public-invoker``; a production stack
        is public only when both this and ``public`` are set (two people, two files).
    max_instances_limit: policy config of ``cloud-run-max-instances``.
    workload_component: the ``component`` label of the API service (the project's convention).
    """

    stack: str
    public: bool = False
    allow_public_production: bool = False
    max_instances_limit: int = 100
    workload_component: str = "service"
    # The Cloud Run service behind the stack's external load balancer (scamguard:gcpDomain set and
    # ingress internal-and-cloud-load-balancing): its serverless NEG calls it unauthenticated, so it
    # needs allUsers as invoker while the ingress keeps everything but the load balancer out.
    edge_service: str = ""

    @property
    def production(self) -> bool:
        return is_production(self.stack)

    @property
    def public_allowed(self) -> bool:
        return self.public and (not self.production or self.allow_public_production)

    @classmethod
    def from_config(
        cls,
        stack: str,
        stack_config: Mapping[str, Any],
        policy_config: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> StackContext:
        """stack_config: full keys ("scamguard:public"); policy_config: {policy name: {key: value}}."""
        policy_config = policy_config or {}
        invoker = policy_config.get("cloud-run-no-public-invoker", {})
        scaling = policy_config.get("cloud-run-max-instances", {})
        stack_name = stack.rsplit("/", 1)[-1]  # "org/project/stack" -> "stack"
        edge = bool(stack_config.get("scamguard:gcpDomain")) and (
            stack_config.get("scamguard:gcpIngress") == "internal-and-cloud-load-balancing"
        )
        return cls(
            stack=stack_name,
            public=_truthy(stack_config.get("scamguard:public", False)),
            edge_service=f"scamguard-{stack_name}" if edge else "",
            allow_public_production=_truthy(invoker.get("allowPublicProduction", False)),
            max_instances_limit=int(scaling.get("maxInstanceCount", 100)),
        )


@dataclass(frozen=True)
class Resource:
    """One resource as a policy sees it: type token, logical name, camelCase inputs."""

    type: str
    name: str
    props: Mapping[str, Any]


Check = Callable[[Resource, StackContext], Iterable[str]]


@dataclass(frozen=True)
class Rule:
    """One policy: its name (as the pack registers it), what it checks and how hard it enforces."""

    name: str
    description: str
    enforcement: Enforcement
    applies_to: Callable[[str], bool]
    check: Check
    # JSON schema of the policy's own config (pulumi --policy-pack-config), property -> schema.
    config_schema: Mapping[str, Mapping[str, Any]] | None = None

    def violations(self, resource: Resource, stack: StackContext) -> list[str]:
        if not self.applies_to(resource.type):
            return []
        return list(self.check(resource, stack))


StackCheck = Callable[[Sequence[Resource], StackContext], Iterable[str]]


@dataclass(frozen=True)
class StackRule:
    """A policy over all of the stack's resources at once (e.g. "every namespace has a NetworkPolicy")."""

    name: str
    description: str
    enforcement: Enforcement
    check: StackCheck

    def violations(self, resources: Sequence[Resource], stack: StackContext) -> list[str]:
        return list(self.check(resources, stack))


@dataclass(frozen=True)
class Violation:
    rule: str
    enforcement: Enforcement
    resource_type: str
    resource_name: str
    message: str


def evaluate(
    rules: Sequence[Rule],
    resources: Iterable[Resource],
    stack: StackContext,
    stack_rules: Sequence[StackRule] = (),
) -> list[Violation]:
    """Every violation of the per-resource rules, then of the stack rules (resource "" = the stack)."""
    resources = list(resources)
    return [
        Violation(rule.name, rule.enforcement, resource.type, resource.name, message)
        for resource in resources
        for rule in rules
        for message in rule.violations(resource, stack)
    ] + [
        Violation(rule.name, rule.enforcement, "pulumi:pulumi:Stack", "", message)
        for rule in stack_rules
        for message in rule.violations(resources, stack)
    ]


# --------------------------------------------------------------------------- reading props


def get(value: Any, *path: str | int) -> Any:
    """props["a"]["b"][0]... or None when a step is missing; UNKNOWN stays UNKNOWN."""
    for step in path:
        if value is UNKNOWN:
            return UNKNOWN
        if isinstance(step, int):
            if not isinstance(value, Sequence) or isinstance(value, str) or step >= len(value):
                return None
            value = value[step]
        else:
            if not isinstance(value, Mapping):
                return None
            value = value.get(step)
    return value


def items(value: Any) -> list[Any]:
    """A list prop as a list; absent, unknown or not a list (e.g. a redacted secret) -> []."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return []


def type_is(*tokens: str) -> Callable[[str], bool]:
    wanted = frozenset(tokens)
    return lambda type_: type_ in wanted
