"""Prometheus recording and alerting rules for scamguard, as data (one source for every target).

What counts as an error for the availability SLO: a response with a 5xx status on an inference route
(``/v1/classify``, ``/predict``, ``/v2/models/<name>/infer``). That includes the 503s the service sends
when it sheds load (``overloaded``), has no model (``not_ready``) or is draining: the caller did not get
an answer, whatever the reason, so those requests spend error budget. So do the inference requests the
admission proxy in front of the service answered 503 itself (``scamguard_admission_shed_total``,
service/admission.py): they never reached the service's own counters, so the SLO adds them to both
the requests and the errors (0 where no proxy runs). 4xx answers (bad input,
unauthorised, payload too large, rate limited 429) are the client's doing and are not errors; a surge
of 429s has its own alert. Probes, ``/metrics``, metadata endpoints and unknown paths are not part of
the SLO (they are not what users pay for, and scanners must not dilute the ratio).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from infra.monitoring.config import MonitoringConfig
from infra.monitoring.promql import inline

JOB = "scamguard"
JOB_MATCHER = f'job="{JOB}"'
# Route templates of the inference endpoints (contract B); "[^/]+" covers the v2 model-name segment
# whether the service labels it with the template or the model name.
SLO_ROUTES = "/v1/classify|/predict|/v2/models/[^/]+/infer"


@dataclass(frozen=True)
class Series:
    """The selectors of the service's series for one stack: `job="scamguard"` plus the stack's own
    matchers (MonitoringConfig.series_selector, e.g. the Cloud Run service's namespace where two
    stacks share one Managed Prometheus project), and the labels every aggregation keeps, so that
    recorded series of two stacks never merge."""

    matcher: str
    group: str
    extra: str = ""

    @classmethod
    def of(cls, config: MonitoringConfig) -> Series:
        extra = config.series_selector
        labels = [matcher.split("=", 1)[0].strip() for matcher in extra.split(",")] if extra else []
        return cls(JOB_MATCHER + (f",{extra}" if extra else ""), ", ".join(["job", *labels]), extra)

    def metric(self, name: str, matchers: str = "") -> str:
        """`name{job=...,<stack matchers>,<matchers>}`."""
        return f"{name}{{{self.matcher}{',' + matchers if matchers else ''}}}"

    def recorded(self, name: str) -> str:
        """A recorded series, read by a dashboard: the stack's matchers select this stack's."""
        return f"{name}{{{self.extra}}}" if self.extra else name

    @property
    def slo_requests(self) -> str:
        return self.metric("scamguard_http_requests_total", f'route=~"{SLO_ROUTES}"')

    @property
    def slo_errors(self) -> str:
        return self.metric("scamguard_http_requests_total", f'route=~"{SLO_ROUTES}",status=~"5.."')

    @property
    def predictions(self) -> str:
        return self.metric("scamguard_predictions_total")

    @property
    def scam_predictions(self) -> str:
        return self.metric("scamguard_predictions_total", 'label="scam"')

    @property
    def shed(self) -> str:
        """Inference requests the admission proxy answered 503 itself (no route label)."""
        return self.metric("scamguard_admission_shed_total")

    @property
    def overloaded(self) -> str:
        return self.metric("scamguard_requests_rejected_total", 'reason="overloaded"')

    @property
    def rate_limited(self) -> str:
        return self.metric("scamguard_requests_rejected_total", 'reason="rate_limited"')

    @property
    def slo_duration_buckets(self) -> str:
        return self.metric("scamguard_http_request_duration_seconds_bucket", f'route=~"{SLO_ROUTES}"')


# Multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs", table 5-8):
# (name suffix, long window, short window, burn rate, for, severity)
BURN_RATE_ALERTS = (
    ("Fast", "1h", "5m", 14.4, "2m", "critical"),  # 2 % of a 30-day budget in 1 hour
    ("Medium", "6h", "30m", 6.0, "15m", "critical"),  # 5 % of the budget in 6 hours
    ("Slow", "3d", "6h", 1.0, "1h", "warning"),  # 10 % of the budget in 3 days: a ticket
)
ERROR_RATIO_WINDOWS = ("5m", "30m", "1h", "6h", "3d")
LATENCY_QUANTILES = (0.5, 0.9, 0.99)
# Saturation: sustained average use of the inference slots above this share of the limit.
SATURATION_THRESHOLD = 0.8
# Load shedding worth a look: more than this share of inference requests rejected as overloaded.
OVERLOAD_THRESHOLD = 0.01
# Abuse: more than this share of requests rate limited, and at least this many per second (so that a
# single client retrying on a quiet service does not page anyone).
RATE_LIMIT_SHARE_THRESHOLD = 0.1
RATE_LIMIT_MIN_PER_SECOND = 0.5


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str

    def to_dict(self) -> dict[str, object]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class Alert:
    alert: str
    expr: str
    for_: str
    severity: str  # "critical" pages, "warning" opens a ticket
    summary: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self, config: MonitoringConfig) -> dict[str, object]:
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": self.for_,
            "labels": {
                "severity": self.severity,
                "service": JOB,
                "environment": config.environment,
                **self.labels,
            },
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": runbook_url(config, self.alert),
            },
        }


RUNBOOK_DIR = "docs/monitoring/runbooks"


def runbook_page(alert_name: str) -> str:
    """The repository path of an alert's runbook page (one page per alert in the docs site)."""
    return f"{RUNBOOK_DIR}/{alert_name}.md"


def runbook_url(config: MonitoringConfig, alert_name: str) -> str:
    return f"{config.runbook_base_url.rstrip('/')}/{alert_name}.md"


def _fmt(x: float) -> str:
    """A PromQL number literal without float noise (0.0144, not 0.014400000000000001)."""
    return f"{x:.10g}"


def _pct(x: float) -> str:
    return f"{x * 100:.4g}%"


def _served(s: Series, window: str) -> str:
    return f"sum by ({s.group}) (rate({s.slo_requests}[{window}]))"


def _shed(s: Series, window: str) -> str:
    """Per second, what the admission proxy shed; 0 with the served requests' labels where none runs
    (and while it has shed nothing: its counter then exists at 0)."""
    return f"(sum by ({s.group}) (rate({s.shed}[{window}])) or 0 * {_served(s, window)})"


def slo_requests_rate(s: Series, window: str) -> str:
    """Inference requests per second: those the service answered plus those its proxy shed."""
    return f"{_served(s, window)}\n+ on ({s.group}) {_shed(s, window)}"


def _error_ratio(s: Series, window: str) -> str:
    # When there is traffic but not a single 5xx series yet, the ratio is 0, not "no data": the
    # "or" falls back to zero with the same labels as the denominator.
    errors = f"sum by ({s.group}) (rate({s.slo_errors}[{window}]))"
    served = _served(s, window)
    return (
        f"(({errors} or 0 * {served})\n+ on ({s.group}) {_shed(s, window)})\n/\n"
        f"({slo_requests_rate(s, window)})"
    )


def recording_rules(config: MonitoringConfig) -> list[tuple[str, list[Recording]]]:
    """Recording rule groups, in evaluation order (a group may use the ones before it)."""
    s = Series.of(config)
    availability = [
        Recording(f"job:scamguard_slo_requests:rate{w}", slo_requests_rate(s, w)) for w in ("5m",)
    ] + [
        Recording(f"job:scamguard_slo_errors:ratio_rate{w}", _error_ratio(s, w)) for w in ERROR_RATIO_WINDOWS
    ]
    latency = [
        Recording(
            f"job:scamguard_http_request_duration_seconds:p{round(q * 100)}_5m",
            f"histogram_quantile({q}, sum by ({s.group}, le) (rate({s.slo_duration_buckets}[5m])))",
        )
        for q in LATENCY_QUANTILES
    ]
    model: list[Recording] = []
    for w in ("1h", "7d"):
        scam = f"sum by ({s.group}) (rate({s.scam_predictions}[{w}]))"
        total = f"sum by ({s.group}) (rate({s.predictions}[{w}]))"
        model.append(
            Recording(f"job:scamguard_predictions_scam:ratio_rate{w}", f"({scam} or 0 * {total})\n/\n{total}")
        )
        model.append(
            Recording(
                f"job:scamguard_prediction_score:mean_rate{w}",
                f"sum by ({s.group}) (rate({s.metric('scamguard_prediction_score_sum')}[{w}]))\n/\n"
                f"sum by ({s.group}) (rate({s.metric('scamguard_prediction_score_count')}[{w}]))",
            )
        )
    return [
        ("scamguard-availability.recording", availability),
        ("scamguard-latency.recording", latency),
        ("scamguard-model.recording", model),
    ]


def alert_rules(config: MonitoringConfig) -> list[tuple[str, list[Alert]]]:
    s = Series.of(config)
    budget = config.error_budget
    slo = _pct(config.availability_slo)
    slo_alerts: list[Alert] = []
    for suffix, long_w, short_w, burn, for_, severity in BURN_RATE_ALERTS:
        threshold = burn * budget
        slo_alerts.append(
            Alert(
                alert=f"ScamguardErrorBudgetBurn{suffix}",
                expr=(
                    f"job:scamguard_slo_errors:ratio_rate{long_w} > {_fmt(threshold)}\n"
                    f"and\njob:scamguard_slo_errors:ratio_rate{short_w} > {_fmt(threshold)}"
                ),
                for_=for_,
                severity=severity,
                summary=f"scamguard ({config.environment}) is burning its error budget {burn:g}x too fast",
                description=(
                    f"More than {_pct(threshold)} of inference requests failed with a 5xx over the last "
                    f"{long_w} and the last {short_w} ({burn:g}x the error budget of the {slo} "
                    f"availability SLO). At this pace the 30-day budget lasts {30 / burn:.3g} days."
                ),
                labels={"slo": "availability", "long_window": long_w, "short_window": short_w},
            )
        )
    latency_slo = _fmt(config.latency_slo_seconds)
    slo_alerts.append(
        Alert(
            alert="ScamguardLatencySLOBreach",
            expr=f"job:scamguard_http_request_duration_seconds:p99_5m > {latency_slo}",
            for_="10m",
            severity="critical",
            summary=f"scamguard ({config.environment}) p99 latency is above {latency_slo}s",
            description=(
                f"The 99th percentile of inference request latency over 5 minutes has been above the "
                f"{latency_slo}s objective for 10 minutes."
            ),
            labels={"slo": "latency"},
        )
    )

    target_alerts = [
        Alert(
            alert="ScamguardInstanceDown",
            expr=f"up{{{s.matcher}}} == 0",
            for_="2m",
            severity="critical",
            summary="scamguard instance {{ $labels.instance }} cannot be scraped",
            description=(
                "Prometheus has failed to scrape {{ $labels.instance }} for 2 minutes: the process is "
                "down, hung, or unreachable from Prometheus."
            ),
        ),
    ]

    saturation_alerts = [
        Alert(
            alert="ScamguardInferenceSaturated",
            expr=(
                f"avg_over_time(scamguard_inferences_in_flight{{{s.matcher}}}[5m])\n"
                f"/ on ({s.group}, instance)\nscamguard_inference_concurrency_limit{{{s.matcher}}}\n"
                f"> {_fmt(SATURATION_THRESHOLD)}\n"
                # A limit of 0 would mean "no limit": nothing to saturate.
                f"and on ({s.group}, instance)\nscamguard_inference_concurrency_limit{{{s.matcher}}} > 0"
            ),
            for_="10m",
            severity="warning",
            summary="scamguard instance {{ $labels.instance }} is near its inference concurrency limit",
            description=(
                f"On average more than {_pct(SATURATION_THRESHOLD)} of the inference slots "
                "(SCAMGUARD_MAX_INFLIGHT) of {{ $labels.instance }} have been busy for 10 minutes; "
                "new requests will soon be shed with 503."
            ),
        ),
        Alert(
            alert="ScamguardOverloadShedding",
            expr=(
                f"((sum by ({s.group}) (rate({s.overloaded}[5m])) or 0 * {_served(s, '5m')})\n"
                f"+ on ({s.group}) {_shed(s, '5m')})\n"
                f"/ on ({s.group})\njob:scamguard_slo_requests:rate5m\n> {_fmt(OVERLOAD_THRESHOLD)}"
            ),
            for_="5m",
            severity="warning",
            summary=f"scamguard ({config.environment}) is shedding load",
            description=(
                f"More than {_pct(OVERLOAD_THRESHOLD)} of inference requests were rejected with 503 "
                "because every inference slot was busy (in the service, or in the admission proxy's "
                "queue), for 5 minutes. These count against the availability SLO."
            ),
        ),
        Alert(
            alert="ScamguardRateLimitSurge",
            expr=(
                f"sum by ({s.group}) (rate({s.rate_limited}[5m]))\n"
                f"/ on ({s.group})\njob:scamguard_slo_requests:rate5m\n> {_fmt(RATE_LIMIT_SHARE_THRESHOLD)}\n"
                f"and on ({s.group})\n"
                f"sum by ({s.group}) (rate({s.rate_limited}[5m]))\n"
                f"> {_fmt(RATE_LIMIT_MIN_PER_SECOND)}"
            ),
            for_="10m",
            severity="warning",
            summary=f"scamguard ({config.environment}) is rate limiting a surge of requests",
            description=(
                f"More than {_pct(RATE_LIMIT_SHARE_THRESHOLD)} of inference requests (and over "
                f"{_fmt(RATE_LIMIT_MIN_PER_SECOND)}/s) were answered 429 for 10 minutes: a client is "
                "misbehaving or the service is being abused."
            ),
        ),
    ]

    tol = _fmt(config.drift_tolerance)
    enough = f"sum by ({s.group}) (increase({s.predictions}[1h])) >= {config.drift_min_predictions_per_hour}"
    model_alerts = [
        Alert(
            alert="ScamguardModelNotReady",
            expr=f"scamguard_model_ready{{{s.matcher}}} == 0",
            for_="5m",
            severity="critical",
            summary="scamguard instance {{ $labels.instance }} has no usable model",
            description=(
                "{{ $labels.instance }} has reported model_ready=0 for 5 minutes: it answers 503 to "
                "every prediction. scamguard_model_load_failures_total{reason} says why."
            ),
        ),
        Alert(
            alert="ScamguardScamShareDrift",
            expr=(
                "abs(\n  job:scamguard_predictions_scam:ratio_rate1h\n  -\n"
                f"  job:scamguard_predictions_scam:ratio_rate7d\n) > {tol}\nand on ({s.group})\n{enough}"
            ),
            for_="15m",
            severity="warning",
            summary=f"scamguard ({config.environment}) flags a very different share of mail as scam",
            description=(
                f"The share of emails predicted scam over the last hour differs by more than {tol} from "
                "its 7-day average: the incoming mail or the model changed."
            ),
        ),
        Alert(
            alert="ScamguardScoreDrift",
            expr=(
                "abs(\n  job:scamguard_prediction_score:mean_rate1h\n  -\n"
                f"  job:scamguard_prediction_score:mean_rate7d\n) > {tol}\nand on ({s.group})\n{enough}"
            ),
            for_="15m",
            severity="warning",
            summary=f"scamguard ({config.environment}) mean scam score moved away from its baseline",
            description=(
                f"The mean predicted scam probability over the last hour differs by more than {tol} "
                "from its 7-day average: the input distribution or the model changed."
            ),
        ),
    ]
    if config.always_running:
        target_alerts.append(
            Alert(
                alert="ScamguardTargetMissing",
                expr=f"absent(up{{{s.matcher}}})",
                for_="5m",
                severity="critical",
                summary=f"no scamguard scrape target exists in {config.environment}",
                description=(
                    'Prometheus has had no target in job "scamguard" for 5 minutes: service discovery or '
                    "the scrape configuration lost the API, so no other scamguard alert can fire."
                ),
            )
        )
    if config.alert_on_no_traffic:
        target_alerts.append(
            Alert(
                alert="ScamguardNoTraffic",
                expr=f"(sum by ({s.group}) (rate({s.slo_requests}[30m])) or on () vector(0)) == 0",
                for_="30m",
                severity="warning",
                summary=f"scamguard ({config.environment}) has received no inference requests for an hour",
                description=(
                    "Not a single inference request reached the API in the last 30 minutes, for 30 "
                    "minutes: clients cannot reach it (DNS, ingress, auth) or stopped calling it."
                ),
            )
        )
    return [
        ("scamguard-slo.alerts", slo_alerts),
        ("scamguard-targets.alerts", target_alerts),
        ("scamguard-saturation.alerts", saturation_alerts),
        ("scamguard-model.alerts", model_alerts),
    ]


def rule_groups(config: MonitoringConfig, *, inline_recording_rules: bool = False) -> list[dict]:
    """The rules as Prometheus rule-group dicts (``{"name", "rules"}``), as rendered to YAML.

    ``inline_recording_rules=True`` is for targets that evaluate alert conditions but not recording
    rules (Cloud Monitoring alert policies with PromQL conditions on Managed Service for Prometheus):
    only the alert groups are returned, each expression self-contained with every recorded series
    replaced by its definition. The tests run the same promtool unit tests on both forms.
    """
    recordings = recording_rules(config)
    groups: list[dict] = []
    if not inline_recording_rules:
        groups.extend({"name": name, "rules": [r.to_dict() for r in rules]} for name, rules in recordings)
    recorded = {r.record: r.expr for _, rules in recordings for r in rules}
    for name, alerts in alert_rules(config):
        rules = [a.to_dict(config) for a in alerts]
        if inline_recording_rules:
            for rule in rules:
                rule["expr"] = inline(str(rule["expr"]), recorded)
        groups.append({"name": name, "rules": rules})
    return groups


def alert_names(config: MonitoringConfig) -> list[str]:
    return [a.alert for _, alerts in alert_rules(config) for a in alerts]
