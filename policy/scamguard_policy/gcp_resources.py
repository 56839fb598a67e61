"""Google Cloud resources in general: labels, registry hygiene, private buckets, no key files."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .core import UNKNOWN, Resource, Rule, StackContext, get, items, type_is
from .gcp_labelable import LABEL_PROPERTY

REQUIRED_LABELS = ("project", "stack", "component")


def label_property(type_: str) -> str | None:
    """The camelCase property holding a GCP resource's labels, or None if it takes none."""
    return LABEL_PROPERTY.get(type_)


def check_labels(resource: Resource, stack: StackContext) -> Iterator[str]:
    prop = label_property(resource.type) or "labels"
    labels = resource.props.get(prop)
    if labels is UNKNOWN:
        return
    present = labels if isinstance(labels, Mapping) else {}
    missing = [key for key in REQUIRED_LABELS if not present.get(key)]
    if missing:
        yield (
            f"{resource.name} ({resource.type}) lacks the label(s) {', '.join(missing)} in `{prop}`: "
            "every GCP resource carries project, stack and component labels (infra/targets/gcp/"
            "labels.py) so cost, ownership and alerts can be traced back to a stack."
        )
    elif stack.stack and isinstance(present.get("stack"), str) and present["stack"] != stack.stack:
        yield (
            f"{resource.name} is labelled stack={present['stack']!r} but belongs to stack "
            f"{stack.stack!r}: derive the label from pulumi.get_stack()."
        )


def check_cleanup_policies(resource: Resource, stack: StackContext) -> Iterator[str]:
    policies = resource.props.get("cleanupPolicies")
    if policies is UNKNOWN:
        return
    deletes = [p for p in items(policies) if isinstance(p, Mapping) and p.get("action") == "DELETE"]
    if not deletes:
        yield (
            f"Artifact Registry repository {resource.name} has no DELETE cleanup policy: add "
            "cleanup_policies (keep the N most recent versions, delete untagged and old ones) so "
            "every build does not stay stored, and billed, forever."
        )
    if resource.props.get("cleanupPolicyDryRun") is True:
        yield (
            f"Artifact Registry repository {resource.name} runs its cleanup policies as a dry run: "
            "set cleanup_policy_dry_run=False so they actually delete."
        )


def check_bucket_private(resource: Resource, stack: StackContext) -> Iterator[str]:
    props = resource.props
    if props.get("uniformBucketLevelAccess") not in (True, UNKNOWN):
        yield (
            f"bucket {resource.name} must set uniform_bucket_level_access=True (IAM only, no "
            "per-object ACLs that can quietly make an object public)."
        )
    if get(props, "publicAccessPrevention") not in ("enforced", UNKNOWN):
        yield f"bucket {resource.name} must set public_access_prevention='enforced'."


def check_no_key(resource: Resource, stack: StackContext) -> Iterator[str]:
    account = resource.props.get("serviceAccountId", "a service account")
    yield (
        f"{resource.name} creates a long-lived key for {account}: use the runtime's attached "
        "service account, or Workload Identity Federation for CI (as .github/workflows does), "
        "instead of a key that can leak."
    )


RULES = (
    Rule(
        name="gcp-required-labels",
        description="Every labelable GCP resource carries the labels project, stack and component.",
        enforcement="mandatory",
        applies_to=lambda type_: label_property(type_) is not None,
        check=check_labels,
    ),
    Rule(
        name="artifact-registry-cleanup-policies",
        description="Artifact Registry repositories have (non dry-run) cleanup policies that delete.",
        enforcement="mandatory",
        applies_to=type_is("gcp:artifactregistry/repository:Repository"),
        check=check_cleanup_policies,
    ),
    Rule(
        name="gcp-bucket-private",
        description="Cloud Storage buckets enforce public access prevention and uniform bucket-level access.",
        enforcement="mandatory",
        applies_to=type_is("gcp:storage/bucket:Bucket"),
        check=check_bucket_private,
    ),
    Rule(
        name="gcp-no-service-account-keys",
        description="No service account key resources (long-lived credentials).",
        enforcement="mandatory",
        applies_to=type_is("gcp:serviceaccount/key:Key"),
        check=check_no_key,
    ),
)
