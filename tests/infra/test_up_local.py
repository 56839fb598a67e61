"""scripts/up-local.sh: a fresh clone gets a clear message when a prerequisite is missing."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "up-local.sh"


def _run_with_path(tmp_path: pathlib.Path, tools: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the script with a PATH holding only the given tools (stubs) plus bash and coreutils."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "dirname", "env", "mkdir", "printf"):
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    for tool in tools:
        stub = bin_dir / tool
        # Record the call so the test can assert the script got that far.
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/calls"\nexit 0\n')
        stub.chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT), "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_pulumi_cli_is_a_clear_message(tmp_path: pathlib.Path) -> None:
    result = _run_with_path(tmp_path, ["docker", "uv"])
    assert result.returncode == 1
    assert "the Pulumi CLI is not installed" in result.stderr
    assert "get.pulumi.com" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_docker_is_a_clear_message(tmp_path: pathlib.Path) -> None:
    result = _run_with_path(tmp_path, ["pulumi", "uv"])
    assert result.returncode == 1
    assert "Docker is not installed" in result.stderr


def test_with_all_tools_it_syncs_uses_the_file_backend_and_runs_pulumi_up(tmp_path: pathlib.Path) -> None:
    result = _run_with_path(tmp_path, ["pulumi", "docker", "uv"])
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "docker info"
    assert calls[1] == "uv sync --frozen"
    assert "pulumi stack select local" in calls
    assert calls[-1] == "pulumi up --stack local --yes"
    assert "PULUMI_CONFIG_PASSPHRASE not set" in result.stderr


def test_script_is_valid_bash() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.fail("bash is required")
    subprocess.run([bash, "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)
