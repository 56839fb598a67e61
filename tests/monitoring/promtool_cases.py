"""Synthetic series for `promtool test rules`: for every alert, a case that fires it and cases that must not.

The cases are data; :func:`unit_test_file` turns them into promtool's unit-test YAML for a given set of
rule files, so the same cases run against the rendered rules and against the inlined (cloud) form.

Run by hand::

    uv run python -m tests.monitoring.promtool_cases OUTDIR && promtool test rules OUTDIR/tests.yml
"""

from __future__ import annotations

import pathlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from infra.monitoring import MonitoringConfig, rule_groups
from infra.monitoring.render import write

JOB = "scamguard"
INSTANCE = "10.0.0.1:8080"
CONFIG = MonitoringConfig(
    environment="prod",
    scrape_targets=("10.0.0.1:8080",),
    prometheus_url="http://prometheus:9090",
    alert_on_no_traffic=True,  # so that every alert exists in the rules under test
)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def req(status: str, route: str = "/v1/classify") -> str:
    return "scamguard_http_requests_total" + _labels(
        job=JOB, instance=INSTANCE, route=route, method="POST", status=status
    )


def metric(name: str, **labels: str) -> str:
    return name + _labels(job=JOB, instance=INSTANCE, **labels)


def counter(*segments: tuple[float, int]) -> str:
    """A counter growing by ``per_step`` for ``steps`` steps, segment after segment (continuous)."""
    parts: list[str] = []
    value = 0.0
    first = True
    for per_step, steps in segments:
        start = value if first else value + per_step
        n = steps if first else steps - 1
        parts.append(f"{start:g}+{per_step:g}x{n}")
        value = start + per_step * n
        first = False
    return " ".join(parts)


def latency_buckets(seconds: float, per_step: float, steps: int) -> list[tuple[str, str]]:
    """Histogram bucket series for requests that all take ``seconds``."""
    out = []
    for le in (*LATENCY_BUCKETS, float("inf")):
        le_text = "+Inf" if le == float("inf") else f"{float(le)}"
        name = metric(
            "scamguard_http_request_duration_seconds_bucket", route="/v1/classify", method="POST", le=le_text
        )
        out.append((name, counter((per_step if seconds <= le else 0, steps))))
    return out


@dataclass(frozen=True)
class Case:
    alert: str
    name: str
    series: Sequence[tuple[str, str]]
    eval_time: str
    # Labels the expression keeps on a firing alert (rule labels are added); None: must stay silent.
    fires_with: dict[str, str] | None
    interval: str = "1m"
    # Rule evaluation step of promtool; cases over many hours use a coarser one to stay fast (the
    # windows and "for" durations involved are 15 minutes or longer).
    evaluation_interval: str = "1m"


@dataclass(frozen=True)
class ExprCase:
    """A promql_expr_test: the exact samples an expression must return."""

    name: str
    series: Sequence[tuple[str, str]]
    eval_time: str
    expr: str
    samples: Sequence[tuple[str, float]]
    interval: str = "1m"


JOB_ONLY = {"job": JOB}
JOB_INSTANCE = {"job": JOB, "instance": INSTANCE}


def _burn(ok_per_step: float, err_per_step: float, steps: int) -> list[tuple[str, str]]:
    return [(req("200"), counter((ok_per_step, steps))), (req("503"), counter((err_per_step, steps)))]


CASES: list[Case] = [
    # Availability, 99.9 % SLO: error budget 0.1 %.
    Case("ScamguardErrorBudgetBurnFast", "4.8% errors for 2h", _burn(100, 5, 120), "90m", JOB_ONLY),
    Case("ScamguardErrorBudgetBurnFast", "1% errors is below 14.4x", _burn(100, 1, 120), "90m", None),
    Case(
        "ScamguardErrorBudgetBurnFast",
        "4xx and failing probes are not errors",
        [
            (req("200"), counter((100, 120))),
            (req("429"), counter((30, 120))),
            (req("422"), counter((30, 120))),
            (req("503", route="/readyz"), counter((50, 120))),
        ],
        "90m",
        None,
    ),
    Case(
        "ScamguardErrorBudgetBurnMedium",
        "1% errors for 8h",
        _burn(100, 1, 480),
        "7h",
        JOB_ONLY,
        evaluation_interval="5m",
    ),
    Case(
        "ScamguardErrorBudgetBurnMedium",
        "0.3% errors",
        _burn(1000, 3, 480),
        "7h",
        None,
        evaluation_interval="5m",
    ),
    Case(
        "ScamguardErrorBudgetBurnSlow",
        "0.3% errors for 5h",
        _burn(1000, 3, 300),
        "4h",
        JOB_ONLY,
        evaluation_interval="5m",
    ),
    Case(
        "ScamguardErrorBudgetBurnSlow",
        "0.05% errors",
        _burn(2000, 1, 300),
        "4h",
        None,
        evaluation_interval="5m",
    ),
    # Latency SLO: p99 objective 0.25 s.
    Case(
        "ScamguardLatencySLOBreach",
        "every request takes 0.4s",
        latency_buckets(0.4, 100, 40),
        "30m",
        JOB_ONLY,
    ),
    Case(
        "ScamguardLatencySLOBreach", "every request takes 20ms", latency_buckets(0.02, 100, 40), "30m", None
    ),
    # Targets.
    Case("ScamguardInstanceDown", "down for 10m", [(metric("up"), "1x5 0x15")], "15m", JOB_INSTANCE),
    Case("ScamguardInstanceDown", "always up", [(metric("up"), "1x20")], "15m", None),
    Case("ScamguardInstanceDown", "a one-minute blip", [(metric("up"), "1x5 0 1x14")], "15m", None),
    Case(
        "ScamguardTargetMissing",
        "only another job is scraped",
        [('up{job="node",instance="10.0.0.9:9100"}', "1x10")],
        "10m",
        JOB_ONLY,
    ),
    Case("ScamguardTargetMissing", "the target exists but is down", [(metric("up"), "0x10")], "10m", None),
    # Saturation.
    Case(
        "ScamguardInferenceSaturated",
        "9 of 10 slots busy",
        [
            (metric("scamguard_inferences_in_flight"), "9x20"),
            (metric("scamguard_inference_concurrency_limit"), "10x20"),
        ],
        "15m",
        JOB_INSTANCE,
    ),
    Case(
        "ScamguardInferenceSaturated",
        "5 of 10 slots busy",
        [
            (metric("scamguard_inferences_in_flight"), "5x20"),
            (metric("scamguard_inference_concurrency_limit"), "10x20"),
        ],
        "15m",
        None,
    ),
    Case(
        "ScamguardInferenceSaturated",
        "limit 0 means unlimited",
        [
            (metric("scamguard_inferences_in_flight"), "9x20"),
            (metric("scamguard_inference_concurrency_limit"), "0x20"),
        ],
        "15m",
        None,
    ),
    Case(
        "ScamguardOverloadShedding",
        "5% shed",
        [
            (req("200"), counter((95, 20))),
            (req("503"), counter((5, 20))),
            (metric("scamguard_requests_rejected_total", reason="overloaded"), counter((5, 20))),
        ],
        "15m",
        JOB_ONLY,
    ),
    Case(
        "ScamguardOverloadShedding",
        "5% shed by the admission proxy, none by the service",
        [
            (req("200"), counter((95, 20))),
            (metric("scamguard_admission_shed_total"), counter((5, 20))),
        ],
        "15m",
        JOB_ONLY,
    ),
    Case(
        "ScamguardOverloadShedding",
        "the admission proxy runs and sheds nothing",
        [
            (req("200"), counter((100, 20))),
            (metric("scamguard_admission_shed_total"), "0x20"),
        ],
        "15m",
        None,
    ),
    Case(
        "ScamguardOverloadShedding",
        "0.5% shed",
        [
            (req("200"), counter((199, 20))),
            (req("503"), counter((1, 20))),
            (metric("scamguard_requests_rejected_total", reason="overloaded"), counter((1, 20))),
        ],
        "15m",
        None,
    ),
    Case(
        "ScamguardRateLimitSurge",
        "37% rate limited at 1/s",
        [
            (req("200"), counter((100, 20))),
            (req("429"), counter((60, 20))),
            (metric("scamguard_requests_rejected_total", reason="rate_limited"), counter((60, 20))),
        ],
        "18m",
        JOB_ONLY,
    ),
    Case(
        "ScamguardRateLimitSurge",
        "3% rate limited",
        [
            (req("200"), counter((160, 20))),
            (req("429"), counter((5, 20))),
            (metric("scamguard_requests_rejected_total", reason="rate_limited"), counter((5, 20))),
        ],
        "18m",
        None,
    ),
    Case(
        "ScamguardRateLimitSurge",
        "one client retrying on a quiet service",
        [
            (req("200"), counter((1, 20))),
            (req("429"), counter((6, 20))),
            (metric("scamguard_requests_rejected_total", reason="rate_limited"), counter((6, 20))),
        ],
        "18m",
        None,
    ),
    # Model.
    Case(
        "ScamguardModelNotReady",
        "never ready",
        [(metric("scamguard_model_ready"), "0x10")],
        "10m",
        JOB_INSTANCE,
    ),
    Case("ScamguardModelNotReady", "ready", [(metric("scamguard_model_ready"), "1x10")], "10m", None),
    Case(
        "ScamguardModelNotReady",
        "ready after a slow start",
        [(metric("scamguard_model_ready"), "0x2 1x8")],
        "10m",
        None,
    ),
    Case(
        "ScamguardScamShareDrift",
        "scam share jumps from 10% to 50%",
        [
            (metric("scamguard_predictions_total", label="scam"), counter((10, 360), (50, 120))),
            (metric("scamguard_predictions_total", label="legitimate"), counter((90, 360), (50, 120))),
        ],
        "7h45m",
        JOB_ONLY,
        evaluation_interval="5m",
    ),
    Case(
        "ScamguardScamShareDrift",
        "steady 10%",
        [
            (metric("scamguard_predictions_total", label="scam"), counter((10, 480))),
            (metric("scamguard_predictions_total", label="legitimate"), counter((90, 480))),
        ],
        "7h45m",
        None,
        evaluation_interval="5m",
    ),
    Case(
        "ScamguardScamShareDrift",
        "share jumps but under 100 predictions an hour",
        [
            (metric("scamguard_predictions_total", label="scam"), counter((0, 360), (1, 120))),
            (metric("scamguard_predictions_total", label="legitimate"), counter((1, 360), (0, 120))),
        ],
        "7h45m",
        None,
        evaluation_interval="5m",
    ),
    Case(
        "ScamguardScoreDrift",
        "mean score moves from 0.2 to 0.8",
        [
            (metric("scamguard_predictions_total", label="legitimate"), counter((100, 480))),
            (metric("scamguard_prediction_score_count"), counter((100, 480))),
            (metric("scamguard_prediction_score_sum"), counter((20, 360), (80, 120))),
        ],
        "7h45m",
        JOB_ONLY,
        evaluation_interval="5m",
    ),
    Case(
        "ScamguardScoreDrift",
        "mean score steady at 0.2",
        [
            (metric("scamguard_predictions_total", label="legitimate"), counter((100, 480))),
            (metric("scamguard_prediction_score_count"), counter((100, 480))),
            (metric("scamguard_prediction_score_sum"), counter((20, 480))),
        ],
        "7h45m",
        None,
        evaluation_interval="5m",
    ),
    # No traffic (prod).
    Case("ScamguardNoTraffic", "counter stops growing", [(req("200"), "100x70")], "65m", JOB_ONLY),
    Case("ScamguardNoTraffic", "no request ever", [(metric("up"), "1x70")], "65m", {}),
    Case("ScamguardNoTraffic", "steady traffic", [(req("200"), counter((10, 70)))], "65m", None),
    Case(
        "ScamguardNoTraffic",
        "only probes",
        [(req("200"), "100x70"), (req("200", route="/healthz"), counter((10, 70)))],
        "65m",
        JOB_ONLY,
    ),
]

EXPR_CASES: list[ExprCase] = [
    ExprCase(
        "error ratio is 0, not empty, while there are no 5xx series",
        [(req("200"), counter((100, 10)))],
        "10m",
        "job:scamguard_slo_errors:ratio_rate5m",
        [('job:scamguard_slo_errors:ratio_rate5m{job="scamguard"}', 0)],
    ),
    ExprCase(
        "error ratio counts 5xx of inference routes only",
        [
            (req("200"), counter((90, 10))),
            (req("500"), counter((10, 10))),
            (req("429"), counter((100, 10))),
            (req("503", route="/readyz"), counter((100, 10))),
        ],
        "10m",
        "job:scamguard_slo_errors:ratio_rate5m",
        [('job:scamguard_slo_errors:ratio_rate5m{job="scamguard"}', 10 / 200)],
    ),
    ExprCase(
        "requests the admission proxy shed are requests and errors of the SLO",
        [(req("200"), counter((60, 10))), (metric("scamguard_admission_shed_total"), counter((20, 10)))],
        "10m",
        "job:scamguard_slo_errors:ratio_rate5m",
        [('job:scamguard_slo_errors:ratio_rate5m{job="scamguard"}', 20 / 80)],
    ),
    ExprCase(
        "the SLO's request rate adds what the admission proxy shed",
        [(req("200"), counter((90, 10))), (metric("scamguard_admission_shed_total"), counter((30, 10)))],
        "10m",
        "job:scamguard_slo_requests:rate5m",
        [('job:scamguard_slo_requests:rate5m{job="scamguard"}', 2.0)],
    ),
    ExprCase(
        "scam share is 0 when only legitimate mail was seen",
        [(metric("scamguard_predictions_total", label="legitimate"), counter((10, 70)))],
        "65m",
        "job:scamguard_predictions_scam:ratio_rate1h",
        [('job:scamguard_predictions_scam:ratio_rate1h{job="scamguard"}', 0)],
    ),
]


def _expand(template: str, labels: dict[str, str]) -> str:
    """Expand the only template form the rules use in annotations: {{ $labels.NAME }}."""
    return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: str(labels[m.group(1)]), template)


def _rules_by_alert(config: MonitoringConfig) -> dict[str, dict]:
    return {r["alert"]: r for g in rule_groups(config) for r in g["rules"] if "alert" in r}


def _expected_alert(rule: dict, series_labels: dict[str, str]) -> dict:
    labels = {**series_labels, **rule["labels"]}
    return {
        "exp_labels": labels,
        "exp_annotations": {k: _expand(v, labels) for k, v in rule["annotations"].items()},
    }


def _alert_test(case: Case, rules: dict[str, dict]) -> dict:
    exp = [] if case.fires_with is None else [_expected_alert(rules[case.alert], case.fires_with)]
    return {
        "name": f"{case.alert}: {case.name}",
        "interval": case.interval,
        "input_series": [{"series": s, "values": v} for s, v in case.series],
        "alert_rule_test": [{"eval_time": case.eval_time, "alertname": case.alert, "exp_alerts": exp}],
    }


def _expr_test(ec: ExprCase) -> dict:
    return {
        "name": ec.name,
        "interval": ec.interval,
        "input_series": [{"series": s, "values": v} for s, v in ec.series],
        "promql_expr_test": [
            {
                "expr": ec.expr,
                "eval_time": ec.eval_time,
                "exp_samples": [{"labels": lb, "value": v} for lb, v in ec.samples],
            }
        ],
    }


def unit_test_files(
    rule_files: Sequence[pathlib.Path],
    config: MonitoringConfig = CONFIG,
    cases: Sequence[Case] = tuple(CASES),
    expr_cases: Sequence[ExprCase] = tuple(EXPR_CASES),
) -> dict[str, dict]:
    """promtool unit-test documents, one per evaluation interval (it is a per-file setting)."""
    rules = _rules_by_alert(config)
    by_interval: dict[str, list[dict]] = {}
    for case in cases:
        by_interval.setdefault(case.evaluation_interval, []).append(_alert_test(case, rules))
    for ec in expr_cases:
        by_interval.setdefault("1m", []).append(_expr_test(ec))
    return {
        interval: {
            "rule_files": [str(p) for p in rule_files],
            "evaluation_interval": interval,
            "tests": tests,
        }
        for interval, tests in sorted(by_interval.items())
    }


def write_suite(
    outdir: pathlib.Path, *, inline: bool = False, config: MonitoringConfig = CONFIG
) -> list[pathlib.Path]:
    """Write the rules (rendered, or inlined for cloud targets) and the unit tests; return the test files."""
    if inline:
        rules_file = outdir / "rules-inlined" / "alerts.yml"
        rules_file.parent.mkdir(parents=True, exist_ok=True)
        rules_file.write_text(yaml.safe_dump({"groups": rule_groups(config, inline_recording_rules=True)}))
        rule_files = [rules_file]
    else:
        rule_files = sorted(p for p in write(config, outdir) if p.parent.name == "rules")
    # Expression tests read recording rules, which the inlined form does not have.
    docs = unit_test_files(rule_files, config, expr_cases=() if inline else tuple(EXPR_CASES))
    written = []
    for interval, doc in docs.items():
        path = outdir / f"tests{'-inlined' if inline else ''}-eval{interval}.yml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False, width=200))
        written.append(path)
    return written


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "build/promtool")
    for p in [*write_suite(out), *write_suite(out, inline=True)]:
        print(p)
