"""The documentation site builds with `mkdocs build --strict`: a broken link, a page missing from
the navigation, a missing page or an unknown generated table fails the build, and so this test."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def mkdocs_build(project: pathlib.Path, site: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )


def test_mkdocs_build_strict(tmp_path: pathlib.Path) -> None:
    result = mkdocs_build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    # The generated tables really were generated (the hook ran), not left as markers.
    alerts = (tmp_path / "site" / "monitoring" / "alerts" / "index.html").read_text(encoding="utf-8")
    assert "ScamguardErrorBudgetBurnFast" in alerts
    assert "generated:" not in alerts


def test_a_broken_link_fails_the_build(tmp_path: pathlib.Path) -> None:
    """The validator is trusted only once a broken copy fails it."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\n[gone](missing.md)\n", encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: x\ntheme:\n  name: material\nvalidation:\n  links:\n    not_found: warn\n",
        encoding="utf-8",
    )
    result = mkdocs_build(tmp_path, tmp_path / "site")
    assert result.returncode != 0
    assert "missing.md" in result.stderr


def test_an_unknown_generated_table_fails_the_build() -> None:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    with pytest.raises(ValueError, match="unknown generated table 'nope'"):
        hooks.render("x\n<!-- generated: nope -->\n")
    assert "| `target` |" in hooks.render("<!-- generated: config-reference -->")


def test_readme_links_point_at_files_that_exist() -> None:
    """The README is read on the repository host, outside the MkDocs build: check its links here."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert local, "the README links no doc"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
