"""The real service scraped by a real Prometheus with the rendered config: every recording rule and
every dashboard query returns data, every rule evaluates cleanly, and every metric name the rules and
panels use is one the service exports.

Two API instances run: one healthy (rate limited, with API keys and small input limits) and one whose
model directory is empty (not ready: its 503s are the 5xx that feed the availability SLO). Traffic
covers both labels, every inference endpoint, 401/413/415/422/429 and unknown paths.
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.monitoring import MonitoringConfig, dashboards, rule_groups, write
from infra.monitoring.dashboards import iter_panel_queries
from infra.monitoring.promql import metric_names, substitute_grafana_variables
from tests import tools

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRAPE_SECONDS = 1
# Grafana's $__rate_interval for a short range: max(interval + scrape, 4 x scrape) plus slack.
RATE_INTERVAL = "5s"
KEYS = [f"client-{i}" for i in range(12)]
ABUSER = "abuser"
SCAM = (
    "URGENT! You have won a $1,000,000 prize. Click here to claim your reward now and verify your "
    "bank account password"
)
LEGIT = "Hi team, the meeting is moved to 3pm tomorrow. Please bring the quarterly report. Thanks, Anna"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Stack:
    prometheus: str
    healthy: str
    broken: str
    config: MonitoringConfig
    traffic_start: float
    logs: list[pathlib.Path] = field(default_factory=list)

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def query_range(self, expr: str) -> list[dict[str, Any]]:
        params = {"query": expr, "start": self.traffic_start - 2, "end": time.time(), "step": SCRAPE_SECONDS}
        r = httpx.get(f"{self.prometheus}/api/v1/query_range", params=params, timeout=10)
        assert r.status_code == 200, f"{expr}: {r.text}"
        return r.json()["data"]["result"]


def _has_finite(result: list[dict[str, Any]]) -> bool:
    values = [v for s in result for _, v in ([s["value"]] if "value" in s else s["values"])]
    return any(math.isfinite(float(v)) for v in values)


def _start(cmd: list[str], env: dict[str, str], log: pathlib.Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _drive_traffic(healthy: str, broken: str) -> None:
    """About six seconds of mixed traffic, in rounds spread over several scrapes."""
    with httpx.Client(timeout=10) as c:
        for round_no in range(5):
            for i in range(24):
                key = {"X-API-Key": KEYS[i % len(KEYS)]}
                text = SCAM if i % 2 else LEGIT
                r = c.post(f"{healthy}/v1/classify", json={"text": text}, headers=key)
                assert r.status_code == 200, r.text
                assert r.json()["label"] == ("scam" if i % 2 else "legitimate")
            key = {"Authorization": f"Bearer {KEYS[round_no]}"}
            assert (
                c.post(
                    f"{healthy}/v1/classify", json={"texts": [SCAM, LEGIT, LEGIT]}, headers=key
                ).status_code
                == 200
            )
            r = c.post(f"{healthy}/predict", content=SCAM, headers={**key, "Content-Type": "text/plain"})
            assert r.status_code == 200, r.text
            v2 = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": [SCAM, LEGIT]}]}
            r = c.post(f"{healthy}/v2/models/scam-classifier/infer", json=v2, headers=key)
            assert r.status_code == 200, r.text
            # Client errors: every one is a rejection with its reason, none a 5xx.
            big = {"text": "x" * 8000}
            assert c.post(f"{healthy}/v1/classify", json=big, headers=key).status_code == 413
            r = c.post(f"{healthy}/v1/classify", content=b"<a/>", headers={**key, "Content-Type": "text/xml"})
            assert r.status_code == 415
            assert c.post(f"{healthy}/v1/classify", json={"text": ""}, headers=key).status_code == 422
            assert c.post(f"{healthy}/v1/classify", json={"text": LEGIT}).status_code == 401
            assert c.get(f"{healthy}/no/such/path").status_code == 404
            assert c.get(f"{healthy}/readyz").status_code == 200
            # One client hammering: the rate limiter answers 429.
            statuses = [
                c.post(
                    f"{healthy}/v1/classify", json={"text": LEGIT}, headers={"X-API-Key": ABUSER}
                ).status_code
                for _ in range(40)
            ]
            assert 429 in statuses
            # The instance without a model: 503 not_ready, the 5xx of the availability SLO.
            for _ in range(5):
                r = c.post(f"{broken}/v1/classify", json={"text": SCAM}, headers=key)
                assert r.status_code == 503, r.text
            time.sleep(1.2 * SCRAPE_SECONDS)


@pytest.fixture(scope="module")
def stack(prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tools.require_tool("haproxy")  # the healthy instance runs behind its admission proxy
    tmp = tmp_path_factory.mktemp("monitoring-integration")
    healthy_port, broken_port, prom_port = free_port(), free_port(), free_port()
    config = MonitoringConfig(
        environment="local",
        scrape_targets=(f"127.0.0.1:{healthy_port}", f"127.0.0.1:{broken_port}"),
        prometheus_url=f"http://127.0.0.1:{prom_port}",
        alert_on_no_traffic=True,
        scrape_interval_seconds=SCRAPE_SECONDS,
    )
    write(config, tmp / "rendered")
    empty_model_dir = tmp / "no-model"
    empty_model_dir.mkdir()
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith("SCAMGUARD_") and k not in {"HOST", "PORT"}
    }
    service_env = {
        **base_env,
        "HOST": "127.0.0.1",
        "SCAMGUARD_API_KEYS": ",".join([*KEYS, ABUSER]),
        "SCAMGUARD_RATE_LIMIT": "20/second",
        "SCAMGUARD_MAX_BODY_BYTES": "4096",
        "SCAMGUARD_LOG_LEVEL": "warning",
    }
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp / "healthy.log", tmp / "broken.log", tmp / "prometheus.log"]
    try:
        procs.append(
            _start(
                [tools.service_python(), "-m", "service"],
                # Behind its admission proxy, as the image runs it (its metrics are the proxy's too).
                {**service_env, "PORT": str(healthy_port), "SCAMGUARD_ADMISSION_PROXY": "haproxy"},
                logs[0],
            )
        )
        procs.append(
            _start(
                [tools.service_python(), "-m", "service"],
                {**service_env, "PORT": str(broken_port), "SCAMGUARD_MODEL_DIR": str(empty_model_dir)},
                logs[1],
            )
        )
        procs.append(
            _start(
                [
                    prometheus_bin,
                    f"--config.file={tmp / 'rendered' / 'prometheus' / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=warn",
                ],
                base_env,
                logs[2],
            )
        )
        healthy, broken = f"http://127.0.0.1:{healthy_port}", f"http://127.0.0.1:{broken_port}"
        prometheus = f"http://127.0.0.1:{prom_port}"

        def alive() -> None:
            for proc, log in zip(procs, logs, strict=True):
                assert proc.poll() is None, f"{log.name} exited:\n{log.read_text()[-3000:]}"

        def ok(url: str) -> Callable[[], bool]:
            def check() -> bool:
                alive()
                return httpx.get(url, timeout=2).status_code == 200

            return check

        wait_for("the healthy API to be ready", ok(f"{healthy}/readyz"), 45)
        wait_for("the broken API to be live", ok(f"{broken}/healthz"), 45)
        wait_for("Prometheus to be ready", ok(f"{prometheus}/-/ready"), 30)
        s = Stack(prometheus, healthy, broken, config, time.time(), logs)
        wait_for("both targets to be scraped", lambda: len(s.query('up{job="scamguard"} == 1')) == 2, 20)
        s.traffic_start = time.time()
        _drive_traffic(healthy, broken)
        alive()
        yield s
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _recorded(config: MonitoringConfig) -> list[str]:
    return [r["record"] for g in rule_groups(config) for r in g["rules"] if "record" in r]


def test_every_rule_evaluates_without_error(stack: Stack) -> None:
    expected = {r.get("record") or r.get("alert") for g in rule_groups(stack.config) for r in g["rules"]}

    def loaded() -> bool:
        groups = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return {r["name"] for r in rules} == expected and all(
            r.get("lastEvaluation", "").startswith("2") for r in rules
        )

    wait_for("every rule to be loaded and evaluated", loaded, 20)
    groups = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    unhealthy = {r["name"]: r.get("lastError") for g in groups for r in g["rules"] if r["health"] != "ok"}
    assert not unhealthy


def test_every_recording_rule_returns_data(stack: Stack) -> None:
    missing: list[str] = []

    def all_present() -> bool:
        missing[:] = [name for name in _recorded(stack.config) if not _has_finite(stack.query(name))]
        return not missing

    with contextlib.suppress(AssertionError):
        wait_for("recording rules to have values", all_present, 20)
    assert not missing, f"recording rules without a finite value: {missing}"


def test_every_dashboard_panel_query_returns_data(stack: Stack) -> None:
    queries = [
        (uid, title, substitute_grafana_variables(expr, RATE_INTERVAL))
        for uid, model in dashboards(stack.config).items()
        for title, expr in iter_panel_queries(model)
    ]
    assert len(queries) >= 30
    empty: list[str] = []

    def all_have_data() -> bool:
        empty[:] = [
            f"{uid} / {title}: {expr}"
            for uid, title, expr in queries
            if not _has_finite(stack.query_range(expr))
        ]
        return not empty

    with contextlib.suppress(AssertionError):
        wait_for("every panel query to return data", all_have_data, 20, interval=1)
    assert not empty, "panel queries without data:\n" + "\n".join(empty)


def _exported_names(*urls: str) -> set[str]:
    names: set[str] = set()
    for url in urls:
        text = httpx.get(f"{url}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_name_used_is_exported_by_the_service(stack: Stack) -> None:
    exported = _exported_names(stack.healthy, stack.broken)
    recorded = set(_recorded(stack.config))
    used: dict[str, str] = {}
    for group in rule_groups(stack.config):
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                used.setdefault(name, rule.get("record") or rule.get("alert"))
    for uid, model in dashboards(stack.config).items():
        for title, expr in iter_panel_queries(model):
            for name in metric_names(expr):
                used.setdefault(name, f"{uid} / {title}")
    prometheus_made = {"up"}  # synthesised by Prometheus for every target
    dangling = {n: where for n, where in used.items() if n not in exported | recorded | prometheus_made}
    assert not dangling, f"metric names no instance exports: {dangling}"
    stored = set(httpx.get(f"{stack.prometheus}/api/v1/label/__name__/values", timeout=5).json()["data"])
    assert set(used) <= stored, f"used but never stored by Prometheus: {set(used) - stored}"
    assert {
        "scamguard_predictions_total",
        "scamguard_requests_rejected_total",
        "process_cpu_seconds_total",
    } <= set(used)


def test_real_failures_trip_the_alerts(stack: Stack) -> None:
    """The not-ready instance and its 503s put the matching alerts into pending/firing state."""
    broken_instance = stack.broken.removeprefix("http://")

    def active(alertname: str, **labels: str) -> bool:
        matchers = "".join(f',{k}="{v}"' for k, v in labels.items())
        return bool(stack.query(f'ALERTS{{alertname="{alertname}"{matchers}}}'))

    wait_for(
        "ScamguardModelNotReady on the broken instance",
        lambda: active("ScamguardModelNotReady", instance=broken_instance),
        15,
    )
    wait_for("ScamguardErrorBudgetBurnFast", lambda: active("ScamguardErrorBudgetBurnFast"), 15)
    healthy_instance = stack.healthy.removeprefix("http://")
    assert not active("ScamguardModelNotReady", instance=healthy_instance)
    assert not active("ScamguardInstanceDown")
