"""GCP settings: bad values stop the program with a message naming key, value and what is allowed."""

from __future__ import annotations

import pulumi
import pytest
from pulumi.runtime import mocks as runtime_mocks

from infra import preview
from infra.config import Settings, load_settings
from infra.targets.gcp.alerting import alert_policy_specs, documentation_text, duration_seconds
from infra.targets.gcp.service import traffic_split


class _NoResources(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        raise AssertionError("loading settings must not create resources")

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]]]:
        return {}, []


def settings_of(stack: str, **overrides: str) -> Settings:
    config, secret_keys = preview.stack_config(stack, {f"scamguard:{k}": v for k, v in overrides.items()})
    pulumi.runtime.set_all_config(config, secret_keys)
    runtime_mocks.set_mocks(_NoResources(), project="scamguard", stack=stack, preview=False)
    return load_settings()


def test_committed_gcp_stacks_load() -> None:
    staging = settings_of("staging").require_gcp()
    assert (staging.ingress, staging.cpu_always_allocated, staging.stable_revision) == ("all", False, "")
    prod = settings_of("prod")
    gcp = prod.require_gcp()
    assert gcp.ingress == "internal-and-cloud-load-balancing"
    assert gcp.cpu_always_allocated is True
    assert prod.deletion_protection is True
    assert prod.service.public is False


def test_canary_needs_a_stable_revision() -> None:
    with pytest.raises(
        pulumi.RunError, match=r"scamguard:canaryPercent = 10: allowed 0 unless .*gcpStableRevision"
    ):
        settings_of("prod", canaryPercent="10")
    settings = settings_of("prod", canaryPercent="10", gcpStableRevision="scamguard-prod-00007-abc")
    assert settings.service.canary_percent == 10


def test_drain_must_fit_cloud_runs_sigterm_window() -> None:
    with pytest.raises(
        pulumi.RunError, match=r"shutdownGraceSeconds = 10: allowed less than 10 on Cloud Run"
    ):
        settings_of("staging", shutdownGraceSeconds="10")


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("gcpIngress", "public", "one of all, internal, internal-and-cloud-load-balancing"),
        ("gcpVpcEgress", "all", "one of PRIVATE_RANGES_ONLY, ALL_TRAFFIC"),
        ("gcpStableRevision", "Scamguard_Rev", "empty or a Cloud Run revision name"),
        ("gcpCpuAlwaysAllocated", "maybe", "true or false"),
        ("gcpInvokers", '["allUsers"]', "not allUsers"),
        ("gcpSubnetCidr", "8.8.8.0/24", "a private IPv4 network"),
    ],
)
def test_bad_gcp_values_are_rejected(key: str, value: str, allowed: str) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        settings_of("prod", **{key: value})
    message = str(raised.value)
    assert f"scamguard:{key}" in message
    assert allowed in message


def test_traffic_split_rules() -> None:
    assert [(t.type, t.percent, t.tag) for t in traffic_split(0, "")] == [
        ("TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", 100, None)
    ]
    # A named stable revision with 0 % canary: the newest revision is dark, reachable by its tag URL.
    assert [(t.revision, t.percent, t.tag) for t in traffic_split(0, "rev-1")] == [
        ("rev-1", 100, "stable"),
        (None, 0, "canary"),
    ]
    with pytest.raises(ValueError, match="stable revision"):
        traffic_split(5, "")
    with pytest.raises(ValueError, match=r"0\.\.100"):
        traffic_split(101, "rev-1")


def test_alert_conversion_helpers() -> None:
    assert duration_seconds("5m") == 300
    assert duration_seconds("1h30m") == 5400
    with pytest.raises(ValueError, match="duration"):
        duration_seconds("soon")
    assert documentation_text("{{ $labels.route }} at {{ $value | humanize }}") == (
        "${metric.label.route} at (see the chart)"
    )
    groups = [
        {
            "name": "g-rec",
            "rules": [{"record": "job:errors:rate5m", "expr": 'sum(rate(errors_total{job="x"}[5m]))'}],
        },
        {
            "name": "g",
            "interval": "1m",
            "rules": [
                {
                    "alert": "TooManyErrors",
                    "expr": "job:errors:rate5m > 1",
                    "for": "10m",
                    "labels": {"severity": "critical"},
                    "annotations": {"summary": "errors on {{ $labels.job }}"},
                }
            ],
        },
    ]
    (spec,) = alert_policy_specs(groups, "prod")
    assert spec.query == '(sum(rate(errors_total{job="x"}[5m]))) > 1'  # recording rule inlined
    assert (spec.duration, spec.evaluation_interval, spec.severity) == ("600s", "60s", "CRITICAL")
    assert spec.subject == "[scamguard prod] TooManyErrors: errors on ${metric.label.job}"


@pytest.mark.parametrize("cidr", ["100.64.0.0/24", "172.16.4.0/26", "10.0.0.0/8", "240.1.0.0/24"])
def test_subnet_ranges_cloud_run_supports_are_accepted(cidr: str) -> None:
    from infra.config import _check_cidr

    assert _check_cidr(cidr) is None
