"""What a test needs from the machine: fail in CI when it is missing (a skipped test proves nothing
there), skip elsewhere with what to install."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(message: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def require_tool(name: str, package: str | None = None) -> str:
    """Path of a system tool; `package` is what installs it (scripts/setup.sh does, on Debian)."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (Debian package: {package or name}; scripts/setup.sh installs it)")
    return path


def ensure_event_loop() -> None:
    """The Pulumi SDK calls asyncio.get_event_loop() (on import and in its mocks), which raises once an
    earlier test's asyncio.run() has left the thread without a loop: the suite order must not matter."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def service_python() -> str:
    """The interpreter to start the model API with (`python -m service`): its own environment.

    The model API has a dependency set of its own (service/pyproject.toml); a test of another
    deliverable that needs the real service running (the monitoring integration) starts it there.
    scripts/test.sh sets SCAMGUARD_SERVICE_PYTHON; by default, service/.venv beside these tests.
    """
    configured = os.environ.get("SCAMGUARD_SERVICE_PYTHON")
    default = pathlib.Path(__file__).resolve().parents[1] / "service" / ".venv" / "bin" / "python"
    python = configured or str(default)
    if not pathlib.Path(python).exists():
        missing(f"the model API's environment is missing ({python}): run `uv sync --project service`")
    return python
