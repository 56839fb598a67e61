"""Shared fixtures for the infra tests: stack config loading and the mocked program graph."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pulumi
import pytest
from pulumi.runtime import config as runtime_config

from infra.config import NAMESPACE, Settings, load_settings
from infra.preview import graph_in_subprocess


class NoResources(pulumi.runtime.Mocks):
    """Mocks for tests that only read config (load_settings registers nothing)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[Any, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]]]:
        return dict(args.args), []


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Settings]]:
    """load(stack="test", extra={"gcp:project": ...}, **scamguard_keys) -> Settings.

    Each call sets its own config (pulumi.runtime.set_all_config): nothing leaks between tests,
    and the Pulumi.yaml defaults do NOT apply (exactly like the CLI-less unit-test runtime).
    """
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)

    def _load(stack: str = "test", extra: Mapping[str, str] | None = None, **keys: str) -> Settings:
        config = {f"{NAMESPACE}:{key}": value for key, value in keys.items()}
        config.update(extra or {})
        runtime_config.set_all_config(config, [])
        pulumi.runtime.set_mocks(NoResources(), project=NAMESPACE, stack=stack)
        return load_settings()

    yield _load
    runtime_config.set_all_config({}, [])


@functools.cache
def _graph(stack: str, overrides: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return graph_in_subprocess(stack, dict(overrides))


@pytest.fixture(scope="session")
def stack_graph() -> Callable[..., dict[str, Any]]:
    """stack_graph(stack, **{"scamguard:key": value}) -> the redacted mocked graph (cached per args).

    The real program (__main__.py) runs in a fresh interpreter per stack under Pulumi's mocks.
    """

    def _get(stack: str, overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
        return _graph(stack, tuple(sorted((overrides or {}).items())))

    return _get
