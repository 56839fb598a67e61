"""The policy rules run on the resources of the real program, per stack.

Base stacks come from the committed offline previews (tests/infra/snapshots/<stack>.json, kept
identical to the program's mocked graph by tests/infra/test_snapshots.py); variants that no
snapshot holds (a public API) run the real program under mocks in a fresh interpreter.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from infra.preview import graph_in_subprocess, snapshot_path, stack_config
from policy.scamguard_policy import Resource, StackContext

Graph = dict[str, Any]


@functools.cache
def _snapshot(stack: str) -> str:
    return snapshot_path(stack).read_text(encoding="utf-8")


@functools.cache
def _variant(stack: str, overrides: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(graph_in_subprocess(stack, dict(overrides)))


def load_graph(stack: str, overrides: Mapping[str, str] | None = None) -> Graph:
    """A fresh (mutable) copy of the stack's mocked resource graph."""
    text = _variant(stack, tuple(sorted(overrides.items()))) if overrides else _snapshot(stack)
    graph = json.loads(text)
    assert "error" not in graph, f"the program failed for stack {stack}: {graph.get('error')}"
    return graph


def resources(graph: Graph) -> list[Resource]:
    return [Resource(type=r["type"], name=r["name"], props=r["inputs"]) for r in graph["resources"]]


def find(graph: Graph, type_: str, name: str | None = None) -> dict[str, Any]:
    """The graph entry of one resource (mutate its "inputs" in place)."""
    found = [r for r in graph["resources"] if r["type"] == type_ and (name is None or r["name"] == name)]
    assert found, f"no {type_} {name or ''} in the graph of stack {graph['stack']}"
    return found[0]


def context(
    stack: str,
    overrides: Mapping[str, str] | None = None,
    policy_config: Mapping[str, Mapping[str, Any]] | None = None,
) -> StackContext:
    """What the pack sees for the stack: its name and its config (Pulumi.yaml defaults applied)."""
    config, _ = stack_config(stack, overrides)
    return StackContext.from_config(stack, config, policy_config)


@pytest.fixture
def graph_of() -> Callable[..., Graph]:
    return load_graph


def clone(resource: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(resource))
