"""The rendered tree: files, structure, alert metadata, runbooks, dashboards and metric names."""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import re

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from infra.monitoring import MonitoringConfig, alert_names, dashboards, render, rule_groups
from infra.monitoring.__main__ import main
from infra.monitoring.dashboards import DATASOURCE_UID, GRAFANA_SCHEMA_VERSION, iter_panel_queries
from infra.monitoring.promql import metric_names
from infra.monitoring.render import GRAFANA_DASHBOARDS_DIR
from infra.monitoring.rules import runbook_page

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOCAL = MonitoringConfig("local", ["127.0.0.1:8080"], "http://prometheus:9090")
PROD = MonitoringConfig(
    "prod",
    ["10.0.0.1:8080"],
    "https://prometheus.internal",
    alert_on_no_traffic=True,
    runbook_base_url="https://x/runbooks/",
)


def test_render_writes_the_contracted_tree() -> None:
    files = render(LOCAL)
    assert "prometheus/prometheus.yml" in files
    assert any(re.fullmatch(r"prometheus/rules/[\w.-]+\.yml", p) for p in files)
    assert {p for p in files if p.startswith("grafana/dashboards/")} == {
        f"grafana/dashboards/{uid}.json"
        for uid in ("scamguard-overview", "scamguard-model", "scamguard-capacity")
    }
    assert "grafana/provisioning/datasources/scamguard.yml" in files
    assert "grafana/provisioning/dashboards/scamguard.yml" in files
    for path, text in files.items():
        (json.loads if path.endswith(".json") else yaml.safe_load)(text)
    assert render(LOCAL) == files, "rendering must be deterministic"


def test_prometheus_config_scrapes_the_api_and_loads_every_rule_file() -> None:
    files = render(LOCAL)
    cfg = yaml.safe_load(files["prometheus/prometheus.yml"])
    [job] = cfg["scrape_configs"]
    assert job["job_name"] == "scamguard"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]
    assert cfg["global"]["external_labels"] == {"environment": "local"}
    rule_files = {f"prometheus/{p}" for p in cfg["rule_files"]}
    assert rule_files == {p for p in files if p.startswith("prometheus/rules/")}
    assert "alerting" not in cfg


def test_scrape_timeout_never_exceeds_a_short_interval() -> None:
    cfg = yaml.safe_load(
        render(MonitoringConfig("local", ["a:1"], "http://p:9090", scrape_interval_seconds=1))[
            "prometheus/prometheus.yml"
        ]
    )
    assert cfg["scrape_configs"][0]["scrape_timeout"] == "1s"


def test_alertmanagers_are_configured_when_given() -> None:
    config = MonitoringConfig("staging", ["a:1"], "http://p:9090", alertmanager_targets=("am:9093",))
    cfg = yaml.safe_load(render(config)["prometheus/prometheus.yml"])
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["am:9093"]}]


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    files = render(PROD)
    [ds] = yaml.safe_load(files["grafana/provisioning/datasources/scamguard.yml"])["datasources"]
    assert ds["uid"] == DATASOURCE_UID
    assert ds["url"] == "https://prometheus.internal"
    assert ds["type"] == "prometheus"
    [provider] = yaml.safe_load(files["grafana/provisioning/dashboards/scamguard.yml"])["providers"]
    assert provider["options"]["path"] == GRAFANA_DASHBOARDS_DIR


def test_no_traffic_alert_only_when_asked() -> None:
    assert "ScamguardNoTraffic" not in alert_names(LOCAL)
    assert "ScamguardNoTraffic" in alert_names(PROD)


def test_error_budget_comes_from_the_config() -> None:
    def burn_exprs(slo: float) -> str:
        config = MonitoringConfig("prod", ["a:1"], "http://p:9090", availability_slo=slo)
        return "\n".join(
            r["expr"]
            for g in rule_groups(config)
            for r in g["rules"]
            if r.get("labels", {}).get("slo") == "availability"
        )

    assert "> 0.0144" in burn_exprs(0.999)
    assert "> 0.006\n" in burn_exprs(0.999)
    assert "> 0.144" in burn_exprs(0.99)
    assert "> 0.06\n" in burn_exprs(0.99)


def test_every_alert_is_documented_with_a_runbook() -> None:
    """Each alert links to its own runbook page, and that page exists and is in the docs' navigation."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for group in rule_groups(PROD):
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            name = rule["alert"]
            assert rule["labels"]["severity"] in {"critical", "warning"}
            ann = rule["annotations"]
            assert ann["summary"]
            assert ann["description"]
            assert ann["runbook_url"] == f"https://x/runbooks/{name}.md"
            page = ROOT / runbook_page(name)
            assert page.is_file(), f"{name} has no runbook page {page.relative_to(ROOT)}"
            assert page.read_text(encoding="utf-8").startswith(f"# {name}\n"), f"{page} must start '# {name}'"
            assert f"monitoring/runbooks/{name}.md" in nav, f"mkdocs.yml nav lacks the runbook of {name}"


def test_inlined_rules_read_no_recorded_series() -> None:
    recorded = {r["record"] for g in rule_groups(PROD) for r in g["rules"] if "record" in r}
    inlined = rule_groups(PROD, inline_recording_rules=True)
    assert [r["alert"] for g in inlined for r in g["rules"]] == alert_names(PROD)
    for group in inlined:
        for rule in group["rules"]:
            assert not metric_names(rule["expr"]) & recorded, rule["alert"]


def test_grafana_sdk_is_the_grafana_10_1_line() -> None:
    # The dashboards are written against the SDK's Grafana 10.1 types and schemaVersion 36; a lock
    # upgrade to another Grafana line must be a deliberate change of both.
    version = importlib.metadata.version("grafana-foundation-sdk")
    assert version.split("!")[-1].startswith("10.1."), version


def test_dashboards_are_pinned_and_consistent() -> None:
    models = dashboards(PROD)
    assert set(models) == {"scamguard-overview", "scamguard-model", "scamguard-capacity"}
    for uid, model in models.items():
        assert model["uid"] == uid
        assert model["schemaVersion"] == GRAFANA_SCHEMA_VERSION
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids))
        panels = [p for p in model["panels"] if p["type"] != "row"]
        assert len(panels) >= 6
        for panel in panels:
            assert panel["title"], panel
            assert panel.get("description"), panel["title"]
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID
                assert metric_names(target["expr"]), (panel["title"], target["expr"])
        assert (
            render(PROD)[f"grafana/dashboards/{uid}.json"]
            == json.dumps(model, indent=2, sort_keys=True) + "\n"
        )


def _service_metric_names() -> set[str]:
    """Sample names the service's metrics module declares (families as exposition lines)."""
    from prometheus_client import REGISTRY, generate_latest

    import service.metrics  # registers the service's collectors in the default registry

    names: set[str] = set()
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"),
        }.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
    # Read from the admission proxy at scrape time, where one runs (service.admission).
    for name, kind, _ in service.metrics.ADMISSION_METRICS:
        names.add(name + "_total" if kind == "counter" else name)
    return names


def test_rules_and_panels_name_only_exported_or_recorded_series() -> None:
    exported = _service_metric_names() | {"up"}
    recorded = {r["record"] for g in rule_groups(PROD) for r in g["rules"] if "record" in r}
    used: dict[str, str] = {}
    for group in rule_groups(PROD):
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                used[name] = rule.get("alert") or rule.get("record")
    for uid, model in dashboards(PROD).items():
        for title, expr in iter_panel_queries(model):
            for name in metric_names(expr):
                used[name] = f"{uid}: {title}"
    dangling = {name: where for name, where in used.items() if name not in exported | recorded}
    assert not dangling, f"names neither exported by service/metrics.py nor recorded: {dangling}"


def test_cli_renders_into_outdir(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(tmp_path), "--environment", "prod", "--target", "10.1.2.3:8080"]) == 0
    cfg = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
    assert cfg["scrape_configs"][0]["static_configs"] == [{"targets": ["10.1.2.3:8080"]}]
    assert any("ScamguardNoTraffic" in p.read_text() for p in (tmp_path / "prometheus" / "rules").iterdir())
    assert str(tmp_path / "grafana" / "dashboards" / "scamguard-model.json") in capsys.readouterr().out


def test_cli_reports_a_bad_target(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["render", "/nonexistent", "--target", "no-port"])
    assert exc.value.code == 2
    assert "expected host:port" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"environment": "Prod!"}, "environment="),
        ({"scrape_targets": []}, "scrape_targets is empty"),
        ({"scrape_targets": "a:1"}, "pass a list"),
        ({"prometheus_url": "prometheus:9090"}, "http(s)://"),
        ({"availability_slo": 1.0}, "availability_slo="),
        ({"latency_slo_seconds": 0}, "latency_slo_seconds="),
        ({"scrape_interval_seconds": 0}, "scrape_interval_seconds="),
        ({"drift_tolerance": 1.5}, "drift_tolerance="),
    ],
)
def test_config_rejects_bad_values_and_says_what_is_allowed(kwargs: dict, message: str) -> None:
    base: dict = {"environment": "local", "scrape_targets": ["a:1"], "prometheus_url": "http://p:9090"}
    with pytest.raises(ValueError, match=re.escape(message)):
        MonitoringConfig(**{**base, **kwargs})
