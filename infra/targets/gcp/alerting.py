"""The project's Prometheus alerting rules as Cloud Monitoring alert policies (PromQL conditions)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra.monitoring.promql import inline

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "y": 31_536_000}
_LABEL_TEMPLATE = re.compile(r"\{\{\s*\$labels\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_OTHER_TEMPLATE = re.compile(r"\{\{[^}]*\}\}")
SEVERITY = {
    "critical": "CRITICAL",
    "page": "CRITICAL",
    "error": "ERROR",
    "warning": "WARNING",
    "ticket": "WARNING",
    "info": "WARNING",
}
# Cloud Monitoring evaluates PromQL conditions at most every 30 s.
MIN_EVALUATION_SECONDS = 30


def duration_seconds(text: str) -> int:
    """Prometheus duration ("5m", "1h30m", "30s") in whole seconds."""
    text = text.strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return int(sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(text)))


def documentation_text(text: str) -> str:
    """Prometheus annotation templates -> Cloud Monitoring documentation variables."""
    text = _LABEL_TEMPLATE.sub(lambda m: "${metric.label." + m.group(1) + "}", text)
    return _OTHER_TEMPLATE.sub("(see the chart)", text)


@dataclass(frozen=True)
class AlertPolicySpec:
    """One alerting rule, converted; pure data so tests can check the conversion directly."""

    group: str
    alert: str
    query: str  # recording rules inlined: Cloud Monitoring does not evaluate them
    duration: str
    evaluation_interval: str
    severity: str
    labels: Mapping[str, str]
    subject: str
    content: str


def alert_policy_specs(rule_groups: Sequence[Mapping[str, Any]], environment: str) -> list[AlertPolicySpec]:
    """Every alerting rule of `rule_groups` (contract D), with recorded series replaced by their
    defining expressions so each policy stands alone."""
    recorded: dict[str, str] = {
        str(rule["record"]): str(rule["expr"])
        for group in rule_groups
        for rule in group.get("rules", [])
        if "record" in rule
    }
    specs: list[AlertPolicySpec] = []
    for group in rule_groups:
        interval = max(MIN_EVALUATION_SECONDS, duration_seconds(str(group.get("interval", "30s"))))
        for rule in group.get("rules", []):
            if "alert" not in rule:
                continue
            labels = {str(k): str(v) for k, v in dict(rule.get("labels", {})).items()}
            annotations = {str(k): str(v) for k, v in dict(rule.get("annotations", {})).items()}
            summary = documentation_text(annotations.get("summary", str(rule["alert"])))
            body = [summary]
            if "description" in annotations:
                body.append(documentation_text(annotations["description"]))
            if "runbook_url" in annotations:
                body.append(f"Runbook: {annotations['runbook_url']}")
            specs.append(
                AlertPolicySpec(
                    group=str(group["name"]),
                    alert=str(rule["alert"]),
                    query=inline(str(rule["expr"]), recorded),
                    duration=f"{duration_seconds(str(rule.get('for', '0s')))}s",
                    evaluation_interval=f"{interval}s",
                    severity=SEVERITY.get(labels.get("severity", "").lower(), "ERROR"),
                    labels=labels,
                    subject=f"[scamguard {environment}] {rule['alert']}: {summary}"[:255],
                    content="\n\n".join(body),
                )
            )
    return specs


@dataclass
class AlertingArgs:
    project: pulumi.Input[str]
    environment: str
    rule_groups: Sequence[Mapping[str, Any]]
    labels: dict[str, str]
    notification_email: str = ""  # empty: policies fire in the console, nobody is e-mailed


class Alerting(pulumi.ComponentResource):
    """E-mail notification channel and one alert policy per alerting rule."""

    channel: gcp.monitoring.NotificationChannel | None
    policies: list[gcp.monitoring.AlertPolicy]

    def __init__(self, name: str, args: AlertingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:gcp:Alerting", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.channel = None
        if args.notification_email:
            self.channel = gcp.monitoring.NotificationChannel(
                f"{name}-email",
                project=args.project,
                type="email",
                display_name=f"scamguard {args.environment} alerts ({args.notification_email})",
                labels={"email_address": args.notification_email},
                user_labels=args.labels,
                force_delete=True,
                opts=child,
            )
        channels = [self.channel.id] if self.channel is not None else []
        self.policies = []
        for spec in alert_policy_specs(args.rule_groups, args.environment):
            self.policies.append(
                gcp.monitoring.AlertPolicy(
                    f"{name}-{_slug(spec.alert)}",
                    project=args.project,
                    display_name=f"scamguard {args.environment}: {spec.alert}",
                    combiner="OR",
                    severity=spec.severity,
                    enabled=True,
                    notification_channels=channels,
                    user_labels={**args.labels, "severity": spec.severity.lower()},
                    documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                        subject=spec.subject, content=spec.content, mime_type="text/markdown"
                    ),
                    alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close="1800s"),
                    conditions=[
                        gcp.monitoring.AlertPolicyConditionArgs(
                            display_name=spec.alert,
                            condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                                query=spec.query,
                                duration=spec.duration,
                                evaluation_interval=spec.evaluation_interval,
                                labels=dict(spec.labels),
                                rule_group=spec.group,
                                alert_rule=spec.alert,
                                # The metrics appear only once the service has been scraped; without
                                # this the first `pulumi up` would fail on unknown metric names.
                                disable_metric_validation=True,
                            ),
                        )
                    ],
                    opts=child,
                )
            )
        self.register_outputs({"policies": [p.name for p in self.policies]})


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"(?<!^)(?=[A-Z])", "-", text).lower()).strip("-")
