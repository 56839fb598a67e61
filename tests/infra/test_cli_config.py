"""Pulumi.yaml and every Pulumi.<stack>.yaml pass the CLI's own config rules
(tests/infra/pulumi_cli_rules.py), and each rule is shown to refuse a broken copy, the one that
stopped every stack at preview included."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml

from infra.config import CONFIG_KEYS
from tests.infra.pulumi_cli_rules import project_errors, stack_errors

REPO = pathlib.Path(__file__).resolve().parents[2]
PROJECT: dict[str, Any] = yaml.safe_load((REPO / "Pulumi.yaml").read_text(encoding="utf-8"))
STACKS = {p.name[len("Pulumi.") : -len(".yaml")]: p for p in sorted(REPO.glob("Pulumi.*.yaml"))}


def stack_config(stack: str) -> dict[str, Any]:
    return (yaml.safe_load(STACKS[stack].read_text(encoding="utf-8")) or {}).get("config") or {}


def test_the_project_file_passes() -> None:
    assert project_errors(PROJECT) == []


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_each_stack_file_passes(stack: str) -> None:
    assert stack_errors(stack, PROJECT, stack_config(stack)) == []


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_sensitive_keys_are_never_plain_in_a_stack_file(stack: str) -> None:
    for key in (k for k in CONFIG_KEYS if k.sensitive):
        value = stack_config(stack).get(f"scamguard:{key.name}")
        assert value is None or (isinstance(value, dict) and "secure" in value), (
            f"{stack}: scamguard:{key.name} must be set with `pulumi config set --secret`"
        )


def _with(spec_changes: dict[str, Any]) -> dict[str, Any]:
    project = copy.deepcopy(PROJECT)
    project["config"].update(spec_changes)
    return project


def test_a_secret_key_without_default_stops_every_stack() -> None:
    """What the shipped Pulumi.yaml did with apiKeys: `secret: true` and no default."""
    project = _with({"apiKeys": {"type": "string", "secret": True}})
    for stack in STACKS:
        assert f"Stack '{stack}' is missing configuration value 'apiKeys'" in stack_errors(
            stack, project, stack_config(stack)
        )


def test_a_secret_key_with_a_plain_default_is_refused() -> None:
    errors = project_errors(_with({"apiKeys": {"type": "string", "secret": True, "default": ""}}))
    assert errors == ["Configuration key 'apiKeys' is secret and cannot have a plain default value"]


def test_a_plain_value_for_a_secret_key_is_refused() -> None:
    project = _with({"apiKeys": {"type": "string", "secret": True}})
    errors = stack_errors("local", project, {"scamguard:apiKeys": "k1"})
    assert "Stack 'local' with configuration key 'apiKeys' must be encrypted as it's secret" in errors


def test_type_mismatches_are_refused() -> None:
    errors = stack_errors("local", PROJECT, {"scamguard:maxInstances": "three", "scamguard:public": "yes"})
    assert "Stack 'local' with configuration key 'maxInstances' must be of type 'integer'" in errors
    assert "Stack 'local' with configuration key 'public' must be of type 'boolean'" in errors
    wrong_default = project_errors(_with({"maxInstances": {"type": "integer", "default": "3"}}))
    assert wrong_default == [
        "The default value specified for configuration key 'maxInstances' is not of the expected "
        "type 'integer'"
    ]


def test_unknown_keys_and_malformed_declarations_are_refused() -> None:
    assert stack_errors("local", PROJECT, {"scamguard:maxInstance": 3}) == [
        "Stack 'local' sets 'scamguard:maxInstance', which Pulumi.yaml does not declare (a typo?)"
    ]
    assert any("'items' attribute" in e for e in project_errors(_with({"gcpInvokers": {"type": "array"}})))
    assert any(
        "cannot have both" in e
        for e in project_errors(_with({"region": {"type": "string", "default": "a", "value": "b"}}))
    )
    assert any(
        "should not define a type" in e for e in project_errors(_with({"gcp:project": {"type": "string"}}))
    )
