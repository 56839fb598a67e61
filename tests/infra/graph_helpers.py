"""Lookups in a mocked resource graph (infra.preview.graph output)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resources(graph: Mapping[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in graph["resources"] if r["type"] == type_]


def one(graph: Mapping[str, Any], type_: str, name: str) -> dict[str, Any]:
    found = [r for r in resources(graph, type_) if r["name"] == name]
    assert len(found) == 1, (
        f"expected one {type_} named {name}, got {[r['name'] for r in resources(graph, type_)]}"
    )
    return found[0]
