"""Every Python file of the repository is checked in exactly one environment (pyproject.toml's
[tool.scamguard.suites], run by scripts/test.sh): a file no suite lists would never be type-checked
or tested, and a test listed twice would run in two environments."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from scripts import suites as suites_module

REPO = pathlib.Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {".venv", ".cache", ".git", "node_modules", "__pycache__", ".pulumi-state", "site"}


def _python_files() -> set[str]:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()  # fmt: skip
    return {path for path in tracked if not SKIPPED_DIRS & set(pathlib.PurePath(path).parts)}


def _covered_by(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _orphans(files: set[str]) -> list[str]:
    table = suites_module.suites()
    return sorted(
        path
        for path in files
        if not any(_covered_by(path, [*suite["code"], *suite["tests"]]) for suite in table.values())
    )


def test_every_python_file_belongs_to_a_suite() -> None:
    orphans = _orphans(_python_files())
    assert not orphans, f"in no suite of pyproject.toml [tool.scamguard.suites]: {orphans}"


def test_the_check_sees_a_file_no_suite_lists() -> None:
    # A new top-level package, and a look-alike of a listed folder's name, are both orphans.
    assert _orphans({"newpkg/module.py", "services/x.py", "service/app.py"}) == [
        "newpkg/module.py",
        "services/x.py",
    ]


def test_no_test_runs_in_two_environments() -> None:
    table = suites_module.suites()
    for path in _python_files():
        owners = [name for name, suite in table.items() if _covered_by(path, suite["tests"])]
        assert len(owners) <= 1, f"{path} is tested in {owners}"


def test_paths_are_routed_to_their_suite() -> None:
    def plan(*paths: str) -> list[list[str]]:
        out = subprocess.run(
            [sys.executable, "scripts/suites.py", *paths],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return [line.split("\t") for line in out.stdout.splitlines()]

    assert [row[0] for row in plan()] == list(suites_module.suites())
    (row,) = plan("tests/service/test_api.py::test_health")
    assert row[:2] == ["service", "service"]
    assert row[3] == "tests/service/test_api.py::test_health"
    assert [r[0] for r in plan("tests/training", "tests/infra/test_aws.py")] == ["training", "infra"]
    nowhere = subprocess.run(
        [sys.executable, "scripts/suites.py", "README.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert nowhere.returncode == 2
    assert "in no test suite" in nowhere.stderr
