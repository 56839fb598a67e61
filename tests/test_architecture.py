"""The import graph: the contracts in pyproject.toml ([tool.importlinter]) hold, and no module of
the project takes part in an import cycle. Each check is shown to fail on a broken copy."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import grimp
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("service", "runtime", "training", "infra", "policy")


def cycles(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module also reaches back to the importer."""
    found = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                found.append((module, imported))
    return found


def lint_imports(project: pathlib.Path) -> subprocess.CompletedProcess[str]:
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache"], cwd=project, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_import_cycles() -> None:
    assert cycles(grimp.build_graph(*PACKAGES, cache_dir=None)) == []


def test_a_runtime_module_importing_training_breaks_a_contract(tmp_path: pathlib.Path) -> None:
    for name in (*PACKAGES, "pyproject.toml"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "model"))
        else:
            shutil.copy(source, tmp_path / name)
    classifier = tmp_path / "runtime" / "classifier.py"
    classifier.write_text(classifier.read_text() + "\nimport training.train  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_the_cycle_check_finds_a_cycle(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("from cyclic import a\n")
    (package / "c.py").write_text("from cyclic import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles(grimp.build_graph("cyclic", cache_dir=None)) == [
        ("cyclic.a", "cyclic.b"),
        ("cyclic.b", "cyclic.a"),
    ]
