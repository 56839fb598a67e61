"""Grafana dashboards for scamguard, built with grafana-foundation-sdk (types for Grafana 10.1).

Every panel reads one Prometheus data source with a fixed uid (provisioned by
``grafana/provisioning/datasources/scamguard.yml``), so the dashboards work unchanged on every target.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models import heatmap as heatmap_m
from grafana_foundation_sdk.models import prometheus as prometheus_m

from infra.monitoring.config import MonitoringConfig
from infra.monitoring.rules import SLO_ROUTES, Series

# Dashboard JSON schema version the SDK's Grafana 10.1 types describe; pinned so that a newer SDK
# cannot silently change what Grafana migrates on load.
GRAFANA_SCHEMA_VERSION = 36
DATASOURCE_UID = "scamguard-prometheus"
DATASOURCE = dashboard.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
RATE = "$__rate_interval"

_PanelBuilder = timeseries.Panel | stat.Panel | heatmap.Panel | table.Panel


def _q(expr: str, legend: str = "__auto", ref: str = "A", *, instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return q.instant() if instant else q.range()


def _thresholds(*steps: tuple[float | None, str]) -> dashboard_b.ThresholdsConfig:
    return (
        dashboard_b.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps([dashboard.Threshold(value=v, color=c) for v, c in steps])
    )


def _ts(title: str, description: str, unit: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(12)
        .height(8)
        .fill_opacity(10)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    )
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(q.ref_id(ref))
    return panel


def _with_threshold_line(panel: timeseries.Panel, value: float, color: str = "red") -> timeseries.Panel:
    return panel.thresholds(_thresholds((None, "green"), (value, color))).thresholds_style(
        common_b.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
    )


def _stat(title: str, description: str, unit: str, query: prometheus.Dataquery) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(6)
        .height(4)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(query)
    )


def _dashboard(uid: str, title: str, description: str, config: MonitoringConfig) -> dashboard_b.Dashboard:
    return (
        dashboard_b.Dashboard(f"{title} ({config.environment})")
        .uid(uid)
        .description(description)
        .tags(["scamguard", config.environment])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .readonly()
        .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
    )


def service_overview(config: MonitoringConfig) -> dashboard_b.Dashboard:
    s = Series.of(config)
    budget = config.error_budget
    slo_s = config.latency_slo_seconds
    requests_by = f"sum by (route, status) (rate(scamguard_http_requests_total{{{s.matcher}}}[{RATE}]))"
    d = _dashboard(
        "scamguard-overview",
        "scamguard / Service overview",
        "Is the API answering, correctly and fast enough? Traffic, errors against the availability SLO, "
        "latency against the latency SLO, concurrency and rejected requests.",
        config,
    )
    d = (
        d.with_row(dashboard_b.Row("SLOs"))
        .with_panel(
            _stat(
                "Inference requests/s",
                f"Requests to the inference routes ({SLO_ROUTES}), all statuses.",
                "reqps",
                _q(f"sum(rate({s.slo_requests}[{RATE}]))", "requests/s"),
            )
        )
        .with_panel(
            _stat(
                "5xx error ratio (5m)",
                f"Share of inference requests answered 5xx (503 overload and not-ready included). "
                f"Error budget: {budget:.4%}.",
                "percentunit",
                _q(f"sum({s.recorded('job:scamguard_slo_errors:ratio_rate5m')})", "errors"),
            ).thresholds(_thresholds((None, "green"), (budget, "orange"), (14.4 * budget, "red")))
        )
        .with_panel(
            _stat(
                "p99 latency (5m)",
                f"99th percentile of inference request latency. Objective: {slo_s}s.",
                "s",
                _q(f"max({s.recorded('job:scamguard_http_request_duration_seconds:p99_5m')})", "p99"),
            ).thresholds(_thresholds((None, "green"), (slo_s, "red")))
        )
        .with_panel(
            _stat(
                "Error budget burn rate (1h)",
                "How many times faster than sustainable the error budget is being spent over the last "
                "hour; 1 spends exactly the 30-day budget in 30 days, 14.4 pages.",
                "x",
                _q(
                    f"sum({s.recorded('job:scamguard_slo_errors:ratio_rate1h')}) / {budget:.10g}", "burn rate"
                ),
            ).thresholds(_thresholds((None, "green"), (1, "orange"), (14.4, "red")))
        )
        .with_panel(
            _with_threshold_line(
                _ts(
                    "Error budget burn rate by window",
                    "5xx ratio divided by the error budget, over the windows the burn-rate alerts use. "
                    "Dashed line: 1x (budget spent exactly in 30 days).",
                    "x",
                    *(
                        _q(f"sum({s.recorded(f'job:scamguard_slo_errors:ratio_rate{w}')}) / {budget:.10g}", w)
                        for w in ("5m", "1h", "6h", "3d")
                    ),
                ),
                1,
                "orange",
            )
        )
        .with_panel(
            _with_threshold_line(
                _ts(
                    "Inference latency percentiles",
                    f"p50, p90 and p99 of inference request latency over 5 minutes (from the histogram). "
                    f"Dashed line: the {slo_s}s p99 objective.",
                    "s",
                    *(
                        _q(
                            f"max({s.recorded(f'job:scamguard_http_request_duration_seconds:p{p}_5m')})",
                            f"p{p}",
                        )
                        for p in (50, 90, 99)
                    ),
                ),
                slo_s,
            )
        )
        .with_row(dashboard_b.Row("Traffic"))
        .with_panel(
            _ts(
                "Requests by route and status",
                "Every request the API answered, by route template and HTTP status.",
                "reqps",
                _q(requests_by, "{{route}} {{status}}"),
            )
        )
        .with_panel(
            _ts(
                "Rejected requests by reason",
                "Requests refused before or instead of inference: rate_limited (429), overloaded and "
                "not_ready/draining (503), unauthorized (401), payload_too_large (413), "
                "unsupported_media_type (415), invalid_request (422).",
                "reqps",
                _q(
                    f"sum by (reason) (rate(scamguard_requests_rejected_total{{{s.matcher}}}[{RATE}]))",
                    "{{reason}}",
                ),
            )
        )
        .with_panel(
            _ts(
                "p99 latency by route",
                "99th percentile of request latency per route (every route, probes included).",
                "s",
                _q(
                    "histogram_quantile(0.99, sum by (route, le) "
                    f"(rate(scamguard_http_request_duration_seconds_bucket{{{s.matcher}}}[{RATE}])))",
                    "{{route}}",
                ),
            )
        )
        .with_panel(
            _ts(
                "Model call latency by endpoint (p50, p99)",
                "Time spent in one model call (single text or batch), without HTTP overhead.",
                "s",
                *(
                    _q(
                        f"histogram_quantile({q}, sum by (endpoint, le) "
                        f"(rate(scamguard_inference_duration_seconds_bucket{{{s.matcher}}}[{RATE}])))",
                        f"{{{{endpoint}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ),
            )
        )
        .with_row(dashboard_b.Row("Concurrency"))
        .with_panel(
            _ts(
                "In flight",
                "HTTP requests and model inferences in progress, against the inference concurrency "
                "limit (SCAMGUARD_MAX_INFLIGHT, summed over instances); beyond it requests get 503.",
                "short",
                _q(f"sum(scamguard_http_requests_in_flight{{{s.matcher}}})", "HTTP requests"),
                _q(f"sum(scamguard_inferences_in_flight{{{s.matcher}}})", "inferences"),
                _q(f"sum(scamguard_inference_concurrency_limit{{{s.matcher}}})", "inference limit"),
            )
        )
        .with_panel(
            _ts(
                "5xx responses by route",
                "Server-side failures per route and status.",
                "reqps",
                _q(
                    "sum by (route, status) (rate(scamguard_http_requests_total"
                    f'{{{s.matcher},status=~"5.."}}[{RATE}]))',
                    "{{route}} {{status}}",
                ),
            )
        )
    )
    return d


def model(config: MonitoringConfig) -> dashboard_b.Dashboard:
    s = Series.of(config)
    tol = config.drift_tolerance
    d = _dashboard(
        "scamguard-model",
        "scamguard / Model",
        "Which model is serving, and is it behaving as it did last week? Predictions by label, the score "
        "distribution and drift of the scam share and mean score against their 7-day baseline.",
        config,
    )
    return (
        d.with_panel(
            table.Panel()
            .title("Model version per instance")
            .description("scamguard_model_info: the model name and version each instance has loaded.")
            .datasource(DATASOURCE)
            .span(12)
            .height(6)
            .with_target(
                _q(
                    f"max by (instance, name, version) (scamguard_model_info{{{s.matcher}}})", instant=True
                ).format(prometheus_m.PromQueryFormat.TABLE)
            )
        )
        .with_panel(
            _stat(
                "Instances with a ready model",
                "Instances reporting scamguard_model_ready=1; an instance at 0 answers 503 to predictions.",
                "short",
                _q(f"sum(scamguard_model_ready{{{s.matcher}}})", "ready"),
            )
        )
        .with_panel(
            _stat(
                "Instances reporting",
                "Instances exporting scamguard_model_ready at all.",
                "short",
                _q(f"count(scamguard_model_ready{{{s.matcher}}})", "instances"),
            )
        )
        .with_panel(
            _ts(
                "Predictions by label",
                "Predictions per second, by predicted label (a batch counts each text).",
                "ops",
                _q(
                    f"sum by (label) (rate(scamguard_predictions_total{{{s.matcher}}}[{RATE}]))",
                    "{{label}}",
                ),
            ).stacking(common_b.StackingConfig().mode(common.StackingMode.NORMAL))
        )
        .with_panel(
            heatmap.Panel()
            .title("Score distribution")
            .description("How many predictions fell in each score bucket (P(scam)) per interval.")
            .datasource(DATASOURCE)
            .span(12)
            .height(8)
            .calculate(False)
            .color(heatmap.HeatmapColorOptions().mode(heatmap_m.HeatmapColorMode.SCHEME).scheme("Oranges"))
            .with_target(
                _q(
                    f"sum by (le) (increase(scamguard_prediction_score_bucket{{{s.matcher}}}[{RATE}]))",
                    "{{le}}",
                ).format(prometheus_m.PromQueryFormat.HEATMAP)
            )
        )
        .with_panel(
            _ts(
                "Share predicted scam: last hour vs 7-day baseline",
                f"The ScamguardScamShareDrift alert fires when the two differ by more than {tol:g}.",
                "percentunit",
                _q(f"sum({s.recorded('job:scamguard_predictions_scam:ratio_rate1h')})", "last 1h"),
                _q(f"sum({s.recorded('job:scamguard_predictions_scam:ratio_rate7d')})", "7-day baseline"),
            )
        )
        .with_panel(
            _ts(
                "Mean scam score: last hour vs 7-day baseline",
                f"The ScamguardScoreDrift alert fires when the two differ by more than {tol:g}.",
                "percentunit",
                _q(f"sum({s.recorded('job:scamguard_prediction_score:mean_rate1h')})", "last 1h"),
                _q(f"sum({s.recorded('job:scamguard_prediction_score:mean_rate7d')})", "7-day baseline"),
            )
        )
        .with_panel(
            _ts(
                "Drift against baseline",
                f"Last hour minus 7-day baseline, for the scam share and the mean score; alerts beyond "
                f"±{tol:g}.",
                "percentunit",
                _q(
                    f"sum({s.recorded('job:scamguard_predictions_scam:ratio_rate1h')}) - "
                    f"sum({s.recorded('job:scamguard_predictions_scam:ratio_rate7d')})",
                    "scam share",
                ),
                _q(
                    f"sum({s.recorded('job:scamguard_prediction_score:mean_rate1h')}) - "
                    f"sum({s.recorded('job:scamguard_prediction_score:mean_rate7d')})",
                    "mean score",
                ),
            )
        )
        .with_panel(
            _ts(
                "Model load failures by reason",
                "Failed attempts to load the model artifact (missing, checksum mismatch, corrupt).",
                "short",
                _q(
                    f"sum by (reason) (increase(scamguard_model_load_failures_total{{{s.matcher}}}[{RATE}]))",
                    "{{reason}}",
                ),
            )
        )
    )


def capacity(config: MonitoringConfig) -> dashboard_b.Dashboard:
    s = Series.of(config)
    d = _dashboard(
        "scamguard-capacity",
        "scamguard / Capacity",
        "How many instances serve, and how close is each to its CPU, memory and concurrency limits? "
        "CPU, memory and file descriptors come from prometheus_client's process collector, which every "
        "target exports from inside the container.",
        config,
    )
    by_instance = f"{{{s.matcher}}}"
    return (
        d.with_panel(
            _stat(
                "Instances up",
                "Scrape targets of job scamguard that answered the last scrape.",
                "short",
                _q(f"sum(up{by_instance})", "up"),
            )
        )
        .with_panel(
            _stat(
                "Targets known",
                "Scrape targets of job scamguard (replicas Prometheus knows about).",
                "short",
                _q(f"count(up{by_instance})", "targets"),
            )
        )
        .with_panel(
            _stat(
                "Restarts (1h)",
                "Process restarts seen in the last hour (changes of process_start_time_seconds).",
                "short",
                _q(f"sum(changes(process_start_time_seconds{by_instance}[1h]))", "restarts"),
            )
        )
        .with_panel(
            _stat(
                "Requests/s per instance (avg)",
                "Average request rate per serving instance: what one replica absorbs.",
                "reqps",
                _q(
                    f"sum(rate(scamguard_http_requests_total{by_instance}[{RATE}])) / sum(up{by_instance})",
                    "per instance",
                ),
            )
        )
        .with_panel(
            _ts(
                "Scrape target health",
                "1 = scraped, 0 = down, per instance.",
                "short",
                _q(f"up{by_instance}", "{{instance}}"),
            )
        )
        .with_panel(
            _ts(
                "CPU per instance",
                "CPU cores used by the API process (process_cpu_seconds_total).",
                "short",
                _q(f"rate(process_cpu_seconds_total{by_instance}[{RATE}])", "{{instance}}"),
            )
        )
        .with_panel(
            _ts(
                "Resident memory per instance",
                "Resident set size of the API process.",
                "bytes",
                _q(f"process_resident_memory_bytes{by_instance}", "{{instance}}"),
            )
        )
        .with_panel(
            _ts(
                "Open file descriptors (share of limit)",
                "Sockets and files open, against the process limit.",
                "percentunit",
                _q(f"process_open_fds{by_instance} / process_max_fds{by_instance}", "{{instance}}"),
            )
        )
        .with_panel(
            _ts(
                "Inference slots in use per instance",
                "Inferences in flight divided by the instance's limit; the saturation alert fires "
                "above 80 % sustained.",
                "percentunit",
                _q(
                    f"scamguard_inferences_in_flight{by_instance} / on (instance) "
                    f"scamguard_inference_concurrency_limit{by_instance}",
                    "{{instance}}",
                ),
            )
        )
        .with_panel(
            _ts(
                "Requests/s per instance",
                "How traffic spreads over replicas.",
                "reqps",
                _q(
                    f"sum by (instance) (rate(scamguard_http_requests_total{by_instance}[{RATE}]))",
                    "{{instance}}",
                ),
            )
        )
    )


_BUILDERS = {
    "scamguard-overview": service_overview,
    "scamguard-model": model,
    "scamguard-capacity": capacity,
}


def _to_json_model(builder: dashboard_b.Dashboard) -> dict:
    built = builder.build()
    built.schema_version = GRAFANA_SCHEMA_VERSION
    # Panel ids: Grafana needs them unique for links and "view panel"; the SDK leaves them unset.
    model = json.loads(json.dumps(built, cls=JSONEncoder))
    for i, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = i
    return model


def dashboards(config: MonitoringConfig) -> dict[str, dict]:
    """uid -> dashboard JSON model (what Grafana's file provisioning loads)."""
    return {uid: _to_json_model(build(config)) for uid, build in _BUILDERS.items()}


def iter_panel_queries(model: dict) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, rows included."""
    stack = list(model.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []) or []:
            if "expr" in target:
                yield panel.get("title", ""), target["expr"]
