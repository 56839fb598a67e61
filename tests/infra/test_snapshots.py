"""The committed offline previews (tests/infra/snapshots/<stack>.json) match the program's graph."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.preview import UPDATE_COMMAND, redact, render, snapshot_path, stack_files


@pytest.mark.parametrize("stack", sorted(stack_files()))
def test_snapshot_is_up_to_date(stack_graph: Callable[..., dict[str, Any]], stack: str) -> None:
    path = snapshot_path(stack)
    assert path.exists(), f"no offline preview for stack {stack!r}: run {UPDATE_COMMAND}"
    expected = path.read_text(encoding="utf-8")
    actual = render(stack_graph(stack))
    assert actual == expected, (
        f"the resource graph of stack {stack!r} changed but {path.name} was not updated: "
        f"review the change, then run {UPDATE_COMMAND} and commit the snapshot"
    )


def test_snapshots_hold_no_secret_or_machine_specific_value() -> None:
    for stack in stack_files():
        text = snapshot_path(stack).read_text(encoding="utf-8")
        assert "mock-password" not in text
        assert "mock-secret-value" not in text
        assert "/work/" not in text
        assert "/home/" not in text
        json.loads(text)


def test_redaction() -> None:
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "hunter2"}
    assert redact({"b": secret, "a": ["x" * 200]}) == {
        "a": ["<200 chars, sha256:" + __import__("hashlib").sha256(b"x" * 200).hexdigest()[:16] + ">"],
        "b": "[secret]",
    }
