"""What varies between environments in the monitoring stack (contract D)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9._-]+:[0-9]{1,5}$")
_SELECTOR = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*$')


@dataclass(frozen=True)
class MonitoringConfig:
    """Inputs of :func:`infra.monitoring.render`; every target builds one from its stack settings.

    The first seven fields are the shared contract; the rest have defaults that suit every stack and
    exist so that a stack can tune them without editing the rules.
    """

    environment: str  # stack name, e.g. "local", "staging", "prod"
    scrape_targets: Sequence[str]  # host:port of the API(s) for prometheus.yml
    prometheus_url: str  # what Grafana's data source points at
    availability_slo: float = 0.999  # error budget = 1 - slo
    latency_slo_seconds: float = 0.25  # p99 objective
    alert_on_no_traffic: bool = False  # prod: True
    # False where the platform may scale the API to zero (Cloud Run with min instances 0): no
    # target is then normal when idle, so "no target at all" must not page.
    always_running: bool = True
    scrape_interval_seconds: int = 15
    # Where alert annotations point for the runbooks: the folder of one page per alert
    # ("<base>/<AlertName>.md"). An absolute URL of docs/monitoring/runbooks in the repository's web
    # view makes the link clickable in notifications.
    runbook_base_url: str = "docs/monitoring/runbooks"
    # Model drift: page-free warning when the last hour differs from the 7-day baseline by more than
    # this (absolute, on the 0..1 scale) in scam share or mean score ...
    drift_tolerance: float = 0.15
    # ... and only once the last hour saw enough predictions for the share to mean something.
    drift_min_predictions_per_hour: int = 100
    # Alertmanager(s) Prometheus sends alerts to (host:port); empty = alerts only visible in Prometheus.
    alertmanager_targets: Sequence[str] = field(default_factory=tuple)
    # Label matchers besides job="scamguard" that select this stack's series, e.g.
    # 'namespace="scamguard-prod"' where several stacks write to one Managed Prometheus project
    # (Cloud Run's collector labels every series with its service as `namespace`). Aggregations
    # keep these labels, so recorded series of two stacks stay apart. Empty = job alone.
    series_selector: str = ""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _ENVIRONMENT.match(self.environment):
            problems.append(
                f"environment={self.environment!r}: use a stack name of lowercase letters, digits and '-'"
            )
        if isinstance(self.scrape_targets, str):
            problems.append(f"scrape_targets={self.scrape_targets!r}: pass a list of host:port strings")
        else:
            problems.extend(
                f"scrape_targets entry {t!r}: expected host:port, e.g. 127.0.0.1:8080"
                for t in self.scrape_targets
                if not _HOST_PORT.match(t)
            )
            if not self.scrape_targets:
                problems.append("scrape_targets is empty: give at least one host:port of the API")
        if self.series_selector and not _SELECTOR.match(self.series_selector):
            problems.append(
                f'series_selector={self.series_selector!r}: expected label="value" matchers separated '
                'by commas, e.g. namespace="scamguard-prod"'
            )
        problems.extend(
            f"alertmanager_targets entry {t!r}: expected host:port"
            for t in self.alertmanager_targets
            if isinstance(t, str) and not _HOST_PORT.match(t)
        )
        if not self.prometheus_url.startswith(("http://", "https://")):
            problems.append(f"prometheus_url={self.prometheus_url!r}: expected an http(s):// URL")
        if not (0.5 <= self.availability_slo < 1):
            problems.append(
                f"availability_slo={self.availability_slo!r}: expected a fraction in [0.5, 1), e.g. 0.999"
            )
        if not (math.isfinite(self.latency_slo_seconds) and 0 < self.latency_slo_seconds <= 60):
            problems.append(f"latency_slo_seconds={self.latency_slo_seconds!r}: expected seconds in (0, 60]")
        if not (1 <= self.scrape_interval_seconds <= 300):
            problems.append(
                f"scrape_interval_seconds={self.scrape_interval_seconds!r}: expected 1..300 seconds"
            )
        if not (0 < self.drift_tolerance < 1):
            problems.append(f"drift_tolerance={self.drift_tolerance!r}: expected a fraction in (0, 1)")
        if self.drift_min_predictions_per_hour < 1:
            problems.append(
                f"drift_min_predictions_per_hour={self.drift_min_predictions_per_hour!r}: expected >= 1"
            )
        if problems:
            raise ValueError("invalid MonitoringConfig: " + "; ".join(problems))

    @property
    def error_budget(self) -> float:
        """Allowed fraction of failed requests (1 - SLO)."""
        return round(1 - self.availability_slo, 12)
