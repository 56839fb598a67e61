"""policy/__main__.py as the Pulumi CLI runs it, minus the CLI: registration and the args adapter."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from typing import Any

import pulumi
import pulumi_policy
import pytest
import yaml
from pulumi.runtime import config as runtime_config
from pulumi_policy import (
    EnforcementLevel,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from infra.preview import REPO_ROOT
from policy import gen_gcp_labelable
from policy.scamguard_policy import RULES, STACK_RULES

from .conftest import find, load_graph

PACK_DIR = REPO_ROOT / "policy"
LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


@pytest.fixture
def pack(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run the pack's __main__ like `pulumi preview --policy-pack policy` does (runpy of the directory,
    run_name "__main__"), with PolicyPack recording its arguments instead of serving gRPC."""
    recorded: dict[str, Any] = {}

    def record(**kwargs: Any) -> None:
        recorded.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", record)
    namespace = runpy.run_path(str(PACK_DIR), run_name="__main__")
    assert recorded, "policy/__main__.py did not construct a PolicyPack"
    return {"kwargs": recorded, "module": namespace}


def test_every_rule_is_registered_with_its_enforcement_level(pack: dict[str, Any]) -> None:
    kwargs = pack["kwargs"]
    assert kwargs["name"] == "scamguard"
    policies = kwargs["policies"]
    resource_policies = [p for p in policies if isinstance(p, ResourceValidationPolicy)]
    stack_policies = [p for p in policies if isinstance(p, StackValidationPolicy)]
    assert len(resource_policies) + len(stack_policies) == len(policies)
    registered = {p.name: p.enforcement_level for p in policies}
    assert registered == {rule.name: LEVELS[rule.enforcement] for rule in (*RULES, *STACK_RULES)}
    assert {p.name for p in stack_policies} == {rule.name for rule in STACK_RULES}
    assert len(policies) == len(RULES) + len(STACK_RULES) == len(registered)  # no duplicate names
    advisory = {name for name, level in registered.items() if level == EnforcementLevel.ADVISORY}
    assert advisory == {"docker-monitoring-container-hardening"}
    for policy in resource_policies:
        assert policy.description
        assert policy.has_validation()
    for policy in stack_policies:
        assert policy.description
        assert policy.validate is not None


def test_configurable_policies_declare_a_schema(pack: dict[str, Any]) -> None:
    schemas = {p.name: p.config_schema for p in pack["kwargs"]["policies"]}
    invoker = schemas["cloud-run-no-public-invoker"]
    assert invoker is not None
    assert invoker.properties["allowPublicProduction"]["default"] is False
    scaling = schemas["cloud-run-max-instances"]
    assert scaling is not None
    assert scaling.properties["maxInstanceCount"]["default"] == 100


def test_pulumi_policy_yaml_runs_the_pack_in_the_project_environment() -> None:
    spec = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text(encoding="utf-8"))
    assert spec["runtime"]["name"] == "python"
    assert spec["runtime"]["options"] == {"toolchain": "uv", "virtualenv": "../.venv"}
    assert spec["version"]


@pytest.fixture
def engine_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set the stack name and config the way the engine hands them to a policy pack."""

    def _set(stack: str, config: dict[str, str]) -> None:
        monkeypatch.setenv("PULUMI_STACK", stack)
        runtime_config.set_all_config(config, [])

    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    yield _set
    runtime_config.set_all_config({}, [])


def _validate(pack: dict[str, Any], policy_name: str, entry: dict[str, Any], config: Any = None) -> list[str]:
    policy = next(p for p in pack["kwargs"]["policies"] if p.name == policy_name)
    props = unknown_checking_proxy(entry["inputs"])  # what the engine's Analyze hands over
    timeouts = pulumi_policy.PolicyCustomTimeouts(0, 0, 0)
    args = ResourceValidationArgs(
        entry["type"], props, f"urn:pulumi:x::scamguard::{entry['type']}::{entry['name']}", entry["name"],
        pulumi_policy.PolicyResourceOptions(False, [], None, [], timeouts, []), None, config or {}, {},
    )  # fmt: skip
    messages: list[str] = []
    policy.validate(args, lambda message, urn=None: messages.append(message))
    return messages


def test_adapter_reports_the_rule_message(pack: dict[str, Any], engine_stack: Any) -> None:
    engine_stack("prod", {})
    entry = find(load_graph("prod"), "gcp:cloudrunv2/service:Service", "scamguard-service-service")
    assert _validate(pack, "cloud-run-deletion-protection", entry) == []
    entry["inputs"]["deletionProtection"] = False
    [message] = _validate(pack, "cloud-run-deletion-protection", entry)
    assert "production stack 'prod' must set deletion_protection=True" in message


def test_adapter_reads_public_from_the_stack_config(pack: dict[str, Any], engine_stack: Any) -> None:
    entry = find(
        load_graph("staging"), "gcp:projects/iAMMember:IAMMember", "scamguard-identity-logging-logwriter"
    )
    entry["type"] = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
    entry["inputs"].update(member="allUsers", role="roles/run.invoker")
    engine_stack("staging", {})
    assert len(_validate(pack, "cloud-run-no-public-invoker", entry)) == 1
    engine_stack("staging", {"scamguard:public": "true"})
    assert _validate(pack, "cloud-run-no-public-invoker", entry) == []
    engine_stack("prod", {"scamguard:public": "true"})
    assert len(_validate(pack, "cloud-run-no-public-invoker", entry)) == 1
    opt_in = {"allowPublicProduction": True}
    assert _validate(pack, "cloud-run-no-public-invoker", entry, opt_in) == []


def test_unknown_stack_is_treated_as_production(
    pack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    entry = find(load_graph("staging"), "gcp:cloudrunv2/service:Service", "scamguard-service-service")
    entry["inputs"]["deletionProtection"] = False
    assert len(_validate(pack, "cloud-run-deletion-protection", entry)) == 1


def test_values_unknown_during_preview_skip_only_their_check(pack: dict[str, Any], engine_stack: Any) -> None:
    """A fresh build's image digest is unknown in `pulumi preview`: the digest check waits, the
    probes check on the same resource still runs (instead of the whole policy being skipped)."""
    engine_stack("prod", {})
    entry = find(load_graph("prod"), "gcp:cloudrunv2/service:Service", "scamguard-service-service")
    api = entry["inputs"]["template"]["containers"][0]
    api["image"] = UNKNOWN_STRING_VALUE
    assert _validate(pack, "cloud-run-image-digest", entry) == []
    api.pop("livenessProbe")
    [message] = _validate(pack, "cloud-run-probes", entry)
    assert "no liveness_probe" in message


def test_labelable_types_match_the_installed_pulumi_gcp() -> None:
    committed = (PACK_DIR / "scamguard_policy" / "gcp_labelable.py").read_text(encoding="utf-8")
    assert committed == gen_gcp_labelable.generate(), (
        "pulumi-gcp changed: run uv run python -m policy.gen_gcp_labelable and commit the result"
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # importing pulumi_gcp modules
def test_every_labelable_type_in_the_stacks_is_known() -> None:
    """Cross-check the generated list against the SDK classes the program really instantiates."""
    import importlib

    from policy.scamguard_policy.gcp_labelable import LABEL_PROPERTY

    for stack in ("staging", "prod"):
        for entry in load_graph(stack)["resources"]:
            type_ = entry["type"]
            if not type_.startswith("gcp:"):
                continue
            module_path, class_name = type_.split(":")[1].split("/")[0], type_.split(":")[2]
            module_name = type_.split(":")[1].split("/")[1]
            module = importlib.import_module(f"pulumi_gcp.{module_path}")
            cls = getattr(module, class_name, None) or getattr(
                importlib.import_module(f"pulumi_gcp.{module_path}.{_snake(module_name)}"), class_name
            )
            args_params = cls._internal_init.__code__.co_varnames
            takes = "labels" in args_params or "user_labels" in args_params
            assert takes == (type_ in LABEL_PROPERTY), type_


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_pulumi_runtime_is_left_clean() -> None:
    assert pulumi.Config("scamguard").get("public") is None


def test_preview_and_up_workflows_run_the_pack() -> None:
    workflows = REPO_ROOT / ".github" / "workflows"
    workflow = yaml.safe_load((workflows / "_pulumi.yml").read_text(encoding="utf-8"))
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    [action] = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert action["with"]["policyPacks"] == "${{ inputs.command != 'destroy' && 'policy' || '' }}"
    for caller, command in (("preview.yml", "preview"), ("deploy.yml", "up")):
        text = (workflows / caller).read_text(encoding="utf-8")
        assert "_pulumi.yml" in text
        assert f"command: {command}" in text
