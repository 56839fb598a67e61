"""Outputs the Kubernetes provider would compute, for Pulumi's mocks (offline preview and unit tests).

Objects created without ``metadata.name`` get one from the provider: the logical name plus a random
suffix (auto-naming), here a fixed one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

MockOutputs = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
MockCall = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def auto_named(name: str, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = dict(inputs.get("metadata") or {})
    metadata.setdefault("name", f"{name}-mock1234")
    return {"metadata": metadata}


MOCK_OUTPUTS: dict[str, MockOutputs] = {
    "kubernetes:core/v1:Secret": auto_named,
    "kubernetes:core/v1:ConfigMap": auto_named,
}
MOCK_CALLS: dict[str, MockCall] = {}
