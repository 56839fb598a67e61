"""promtool: the rendered config and rules are valid, and every alert is proven by unit tests."""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
from collections import defaultdict

import pytest
import yaml

from infra.monitoring import MonitoringConfig, alert_names, rule_groups, write
from tests.monitoring.promtool_cases import CASES, CONFIG, write_suite

pytestmark = pytest.mark.prometheus

CONFIGS = {
    "local": MonitoringConfig(
        "local", ["127.0.0.1:8080"], "http://prometheus:9090", scrape_interval_seconds=5
    ),
    "prod": CONFIG,
    "strict": MonitoringConfig(
        "staging",
        ["10.0.0.1:8080", "10.0.0.2:8080"],
        "https://prometheus.example.internal",
        availability_slo=0.9995,
        latency_slo_seconds=0.1,
        alertmanager_targets=("alertmanager:9093",),
    ),
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_promtool_check_config_and_rules(promtool: str, tmp_path: pathlib.Path, name: str) -> None:
    write(CONFIGS[name], tmp_path)
    result = run(promtool, "check", "config", str(tmp_path / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = sorted(str(p) for p in (tmp_path / "prometheus" / "rules").glob("*.yml"))
    assert rule_files
    result = run(promtool, "check", "rules", *rule_files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_inlined_rules(promtool: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "inlined.yml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(CONFIG, inline_recording_rules=True)}))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("inline", [False, True], ids=["rendered-rules", "inlined-for-cloud"])
def test_promtool_unit_tests_prove_every_alert(promtool: str, tmp_path: pathlib.Path, inline: bool) -> None:
    test_files = write_suite(tmp_path, inline=inline)
    assert test_files
    for test_file in test_files:
        result = run(promtool, "test", "rules", str(test_file))
        assert result.returncode == 0, f"{test_file.name}:\n{result.stdout}{result.stderr}"
        assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    firing: dict[str, int] = defaultdict(int)
    silent: dict[str, int] = defaultdict(int)
    for case in CASES:
        (silent if case.fires_with is None else firing)[case.alert] += 1
    alerts = set(alert_names(CONFIG))
    assert set(firing) | set(silent) <= alerts, "cases name alerts that no longer exist"
    assert alerts - set(firing) == set(), "alerts without a case proving that they fire"
    assert alerts - set(silent) == set(), "alerts without a case proving that they stay silent"


def test_unit_test_config_renders_every_alert_there_is() -> None:
    # CONFIG turns on the optional alerts, so the coverage check above sees all of them.
    every = set(alert_names(CONFIG))
    for config in CONFIGS.values():
        assert set(alert_names(config)) <= every


def _idle_scaled_to_zero_suite(tmp_path: pathlib.Path, config: MonitoringConfig) -> pathlib.Path:
    """An hour with no scamguard target at all (Cloud Run scaled to zero): every alert of the
    stack's rules must stay silent."""
    rule_files = sorted(p for p in write(config, tmp_path) if p.parent.name == "rules")
    doc = {
        "rule_files": [str(p) for p in rule_files],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": 'up{job="node",instance="10.0.0.9:9100"}', "values": "1x90"}],
                "alert_rule_test": [
                    {"eval_time": f"{minute}m", "alertname": name, "exp_alerts": []}
                    for name in alert_names(config)
                    for minute in (10, 60, 90)
                ],
            }
        ],
    }
    path = tmp_path / "idle-tests.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_a_stack_that_scales_to_zero_pages_nobody_while_idle(promtool: str, tmp_path: pathlib.Path) -> None:
    staging = dataclasses.replace(CONFIGS["local"], environment="staging", always_running=False)
    assert "ScamguardTargetMissing" not in alert_names(staging)
    result = run(promtool, "test", "rules", str(_idle_scaled_to_zero_suite(tmp_path, staging)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_idle_check_fails_for_a_stack_that_should_always_run(
    promtool: str, tmp_path: pathlib.Path
) -> None:
    """The same idle hour on a warm-minimum stack is an outage: the validator must see it."""
    prod = dataclasses.replace(CONFIGS["local"], environment="prod", always_running=True)
    result = run(promtool, "test", "rules", str(_idle_scaled_to_zero_suite(tmp_path, prod)))
    assert result.returncode != 0
    assert "ScamguardTargetMissing" in result.stdout + result.stderr


def _two_stacks_suite(tmp_path: pathlib.Path, config: MonitoringConfig, *, inline: bool) -> pathlib.Path:
    """Two stacks in one Managed Prometheus project: staging fails every request for an hour while
    prod serves fine. prod's rules must see only prod."""
    if inline:
        rules = tmp_path / "inlined.yml"
        rules.write_text(yaml.safe_dump({"groups": rule_groups(config, inline_recording_rules=True)}))
        rule_files = [rules]
    else:
        rule_files = sorted(p for p in write(config, tmp_path) if p.parent.name == "rules")

    def requests(namespace: str, status: str) -> dict[str, str]:
        labels = f'job="scamguard",namespace="{namespace}",instance="i-{namespace}",route="/v1/classify"'
        return {
            "series": f'scamguard_http_requests_total{{{labels},status="{status}"}}',
            "values": "0+600x90",
        }

    def up(namespace: str) -> dict[str, str]:
        labels = f'job="scamguard",namespace="{namespace}",instance="i-{namespace}"'
        return {"series": f"up{{{labels}}}", "values": "1x90"}

    doc = {
        "rule_files": [str(p) for p in rule_files],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    requests("scamguard-prod", "200"),
                    requests("scamguard-staging", "500"),
                    up("scamguard-prod"),
                    up("scamguard-staging"),
                ],
                "alert_rule_test": [
                    {"eval_time": "60m", "alertname": "ScamguardErrorBudgetBurnFast", "exp_alerts": []},
                    {"eval_time": "60m", "alertname": "ScamguardErrorBudgetBurnMedium", "exp_alerts": []},
                ],
            }
        ],
    }
    path = tmp_path / "two-stacks-tests.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("inline", [False, True], ids=["rendered-rules", "inlined-for-cloud"])
def test_stacks_sharing_one_project_keep_their_series_apart(
    promtool: str, tmp_path: pathlib.Path, inline: bool
) -> None:
    prod = dataclasses.replace(CONFIG, series_selector='namespace="scamguard-prod"')
    result = run(promtool, "test", "rules", str(_two_stacks_suite(tmp_path, prod, inline=inline)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_a_selector_the_other_stack_pages_prod(promtool: str, tmp_path: pathlib.Path) -> None:
    """The shared-project defect the selector fixes: staging's errors in prod's error ratio."""
    result = run(promtool, "test", "rules", str(_two_stacks_suite(tmp_path, CONFIG, inline=False)))
    assert result.returncode != 0
    assert "ScamguardErrorBudgetBurnFast" in result.stdout + result.stderr
