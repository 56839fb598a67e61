"""GCP resource labels: every labelable resource carries project, stack and component."""

from __future__ import annotations

import re

_INVALID = re.compile(r"[^a-z0-9_-]")


def label_value(value: str) -> str:
    """Coerce a string into a valid GCP label value (lowercase, [a-z0-9_-], at most 63 chars)."""
    return _INVALID.sub("-", value.lower())[:63]


def gcp_labels(project: str, stack: str, component: str) -> dict[str, str]:
    """The three labels the project puts on every labelable GCP resource."""
    return {
        "project": label_value(project),
        "stack": label_value(stack),
        "component": label_value(component),
    }
