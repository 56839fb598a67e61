from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_tool(name: str) -> str:
    """Path of a system tool; skip locally when missing, but fail in CI (a skipped test is not run)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found on PATH: install Debian's prometheus package (apt-get install prometheus)"
    if in_ci():
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return require_tool("prometheus")
