"""IAM on Google Cloud: least privilege and no anonymous access."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .core import Resource, Rule, StackContext, items

PRIMITIVE_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
_IAM_SUFFIXES = ("iammember", "iambinding", "iampolicy")
_CLOUD_RUN_MODULES = ("gcp:cloudrunv2/", "gcp:cloudrun/")


def is_iam_resource(type_: str) -> bool:
    """Every gcp *IamMember / *IamBinding / *IamPolicy resource (project, bucket, service...)."""
    return type_.startswith("gcp:") and type_.rsplit(":", 1)[-1].lower().endswith(_IAM_SUFFIXES)


def is_cloud_run_iam(type_: str) -> bool:
    return is_iam_resource(type_) and type_.startswith(_CLOUD_RUN_MODULES)


def grants(props: Any) -> Iterator[tuple[str, list[str]]]:
    """(role, members) pairs of a member, binding or policy resource; unknown parts are skipped."""
    role = props.get("role")
    members: list[str] = []
    if isinstance(props.get("member"), str):
        members.append(props["member"])
    members += [m for m in items(props.get("members")) if isinstance(m, str)]
    if isinstance(role, str):
        yield role, members
    policy = props.get("policyData")
    if isinstance(policy, str):  # UNKNOWN (not a str) until the policy is computed
        try:
            document = json.loads(policy)
        except ValueError:
            return
        for binding in items(document.get("bindings") if isinstance(document, dict) else None):
            if isinstance(binding, dict) and isinstance(binding.get("role"), str):
                yield binding["role"], [m for m in items(binding.get("members")) if isinstance(m, str)]


def check_no_primitive_roles(resource: Resource, stack: StackContext) -> Iterator[str]:
    for role, members in grants(resource.props):
        if role in PRIMITIVE_ROLES:
            who = ", ".join(members) or "its members"
            yield (
                f"{resource.name} grants the primitive role {role} to {who}. Primitive roles cover "
                "every service in the project: grant the predefined role for the one permission "
                "needed instead (e.g. roles/run.invoker, roles/artifactregistry.reader, "
                "roles/secretmanager.secretAccessor on the one secret)."
            )


def check_no_public_invoker(resource: Resource, stack: StackContext) -> Iterator[str]:
    if stack.public_allowed:
        return
    edge_fronted = bool(stack.edge_service) and resource.props.get("name") == stack.edge_service
    for role, members in grants(resource.props):
        for member in sorted(PUBLIC_MEMBERS.intersection(members)):
            if edge_fronted and member == "allUsers" and role == "roles/run.invoker":
                continue  # the API behind the load balancer: ingress admits nothing else
            if stack.public and stack.production:
                why = (
                    f"stack {stack.stack!r} is production: besides scamguard:public=true it needs the "
                    'policy config {"cloud-run-no-public-invoker": {"allowPublicProduction": true}} '
                    "(pulumi preview --policy-pack policy --policy-pack-config FILE)"
                )
            else:
                why = (
                    f"stack {stack.stack!r} is not configured public: grant roles/run.invoker to the "
                    "callers (scamguard:gcpInvokers) or, if anyone on the internet may call it, "
                    "set scamguard:public=true deliberately"
                )
            yield f"{resource.name} grants {role} on a Cloud Run resource to {member}; {why}."


def check_no_public_iam(resource: Resource, stack: StackContext) -> Iterator[str]:
    for role, members in grants(resource.props):
        for member in sorted(PUBLIC_MEMBERS.intersection(members)):
            yield (
                f"{resource.name} grants {role} to {member}, i.e. to anyone: grant it to the "
                "service account or group that needs it (only a Cloud Run invoker may be public, "
                "and only on a stack configured public)."
            )


RULES = (
    Rule(
        name="gcp-no-primitive-roles",
        description="No primitive role (roles/owner, roles/editor, roles/viewer) on any GCP IAM resource.",
        enforcement="mandatory",
        applies_to=is_iam_resource,
        check=check_no_primitive_roles,
    ),
    Rule(
        name="cloud-run-no-public-invoker",
        description=(
            "No allUsers/allAuthenticatedUsers on Cloud Run unless the stack sets scamguard:public=true "
            "(production stacks also need allowPublicProduction in the policy config)."
        ),
        enforcement="mandatory",
        applies_to=is_cloud_run_iam,
        check=check_no_public_invoker,
        config_schema={
            "allowPublicProduction": {
                "type": "boolean",
                "default": False,
                "description": "Let a production stack with scamguard:public=true grant allUsers.",
            }
        },
    ),
    Rule(
        name="gcp-no-public-iam",
        description="No allUsers/allAuthenticatedUsers on GCP resources other than Cloud Run.",
        enforcement="mandatory",
        applies_to=lambda type_: is_iam_resource(type_) and not is_cloud_run_iam(type_),
        check=check_no_public_iam,
    ),
)
