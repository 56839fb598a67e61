"""Monitoring of the GCP target: GMP (collected by the service's sidecar), recording rules,
Cloud Monitoring alert policies, and Grafana with the project's dashboards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp
import yaml

from infra.platform import Monitoring
from infra.targets.gcp.alerting import Alerting, AlertingArgs
from infra.targets.gcp.cloudrun import files_sha256
from infra.targets.gcp.grafana import FRONTEND_PORT, MOUNT_DIR, Grafana, GrafanaArgs
from infra.targets.gcp.rule_evaluator import CONFIG_OBJECT, RuleEvaluator, RuleEvaluatorArgs

# What Grafana's data source points at: the GMP query frontend sidecar in the Grafana service.
GRAFANA_PROMETHEUS_URL = f"http://127.0.0.1:{FRONTEND_PORT}"
RULES_PREFIX = "rule-evaluator/rules"


def gmp_query_url(project: str) -> str:
    """The Prometheus-compatible query API of the project's Managed Service for Prometheus."""
    return f"https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"


def grafana_files(rendered: Mapping[str, str]) -> dict[str, str]:
    """The Grafana part of `infra.monitoring.render(...)`, adjusted to where Cloud Run mounts it."""
    files: dict[str, str] = {}
    for path, text in rendered.items():
        if not path.startswith("grafana/"):
            continue
        if path.startswith("grafana/provisioning/dashboards/"):
            doc = yaml.safe_load(text)
            for provider in doc.get("providers", []):
                provider.setdefault("options", {})["path"] = f"{MOUNT_DIR}/grafana/dashboards"
            text = yaml.safe_dump(doc, sort_keys=False)
        elif path.startswith("grafana/provisioning/datasources/"):
            doc = yaml.safe_load(text)
            for source in doc.get("datasources", []):
                if source.get("type") == "prometheus":
                    source["url"] = GRAFANA_PROMETHEUS_URL
                    # The GMP query API is read with GET (what Google's datasource-syncer sets).
                    source.setdefault("jsonData", {})["httpMethod"] = "GET"
            text = yaml.safe_dump(doc, sort_keys=False)
        files[path] = text
    return files


def rule_evaluator_files(
    rule_groups: Sequence[Mapping[str, Any]], evaluation_interval_seconds: int
) -> dict[str, str]:
    """Config and rule files of the rule evaluator: the recording rules only (alerts are policies)."""
    files: dict[str, str] = {}
    for group in rule_groups:
        records = [rule for rule in group.get("rules", []) if "record" in rule]
        if records:
            files[f"{RULES_PREFIX}/{group['name']}.yml"] = yaml.safe_dump(
                {"groups": [{**group, "rules": records}]}, sort_keys=False
            )
    if files:
        files[CONFIG_OBJECT] = yaml.safe_dump(
            {
                "global": {"evaluation_interval": f"{evaluation_interval_seconds}s"},
                "rule_files": [f"{MOUNT_DIR}/{path}" for path in sorted(files)],
            },
            sort_keys=False,
        )
    return dict(sorted(files.items()))


@dataclass
class GcpMonitoringArgs:
    project: str
    region: str
    environment: str  # stack name
    resource_prefix: str  # e.g. "scamguard-staging": names of services, accounts, bucket
    labels: Mapping[str, str]  # the stack's labels; each child adds its `component`
    rendered: Mapping[str, str]  # infra.monitoring.render(config)
    recording_groups: Sequence[Mapping[str, Any]]  # infra.monitoring.rule_groups(config)
    alert_groups: Sequence[Mapping[str, Any]]  # rule_groups(config, inline_recording_rules=True)
    grafana_image: str
    ingress: str
    invokers: Sequence[str] = field(default_factory=tuple)
    # Grafana's address on the edge load balancer (behind IAP); None = its run.app URL.
    public_grafana_url: str | None = None
    notification_email: str = ""
    evaluation_interval_seconds: int = 30
    deletion_protection: bool = False


class GcpMonitoring(Monitoring):
    """Alert policies + notification channel, the rule evaluator, and Grafana.

    The monitoring files (dashboards, Grafana provisioning, recording rules) are objects in one
    private bucket that Grafana and the rule evaluator mount read-only.
    """

    bucket: gcp.storage.Bucket
    alerting: Alerting
    rule_evaluator: RuleEvaluator | None
    grafana: Grafana

    def __init__(
        self, name: str, args: GcpMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:gcp:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.alerting = Alerting(
            f"{name}-alerting",
            AlertingArgs(
                project=args.project,
                environment=args.environment,
                rule_groups=args.alert_groups,
                labels={**args.labels, "component": "alerting"},
                notification_email=args.notification_email,
            ),
            opts=child,
        )
        self.bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            project=args.project,
            # Bucket names are global: the project id makes it unique.
            name=f"{args.project}-{args.resource_prefix}-monitoring"[:63],
            location=args.region,
            labels={**args.labels, "component": "monitoring"},
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            # Everything in it is generated from the repository: nothing to lose on destroy.
            force_destroy=True,
            opts=child,
        )
        files = {
            **grafana_files(args.rendered),
            **rule_evaluator_files(args.recording_groups, args.evaluation_interval_seconds),
        }
        objects = [
            gcp.storage.BucketObject(
                f"{name}-{path.replace('/', '-').replace('.', '-')}",
                bucket=self.bucket.name,
                name=path,
                content=text,
                content_type="application/json" if path.endswith(".json") else "text/yaml",
                opts=child,
            )
            for path, text in sorted(files.items())
        ]
        grafana_sha = files_sha256({p: t for p, t in files.items() if p.startswith("grafana/")})
        rules_sha = files_sha256({p: t for p, t in files.items() if not p.startswith("grafana/")})
        # Services start only once their files are in the bucket.
        after_files = pulumi.ResourceOptions(parent=self, depends_on=list(objects))

        self.rule_evaluator = None
        if CONFIG_OBJECT in files:
            self.rule_evaluator = RuleEvaluator(
                f"{name}-rules",
                RuleEvaluatorArgs(
                    project=args.project,
                    region=args.region,
                    service_name=f"{args.resource_prefix}-rules",
                    account_id=f"{args.resource_prefix}-rules"[:30],
                    labels={**args.labels, "component": "rule-evaluator"},
                    bucket=self.bucket.name,
                    deletion_protection=args.deletion_protection,
                    files_sha256=rules_sha,
                ),
                opts=after_files,
            )
        self.grafana = Grafana(
            f"{name}-grafana",
            GrafanaArgs(
                project=args.project,
                region=args.region,
                service_name=f"{args.resource_prefix}-grafana",
                account_id=f"{args.resource_prefix}-grafana"[:30],
                labels={**args.labels, "component": "grafana"},
                image=args.grafana_image,
                bucket=self.bucket.name,
                ingress=args.ingress,
                invokers=args.invokers,
                deletion_protection=args.deletion_protection,
                files_sha256=grafana_sha,
            ),
            opts=after_files,
        )
        self.prometheus_url = pulumi.Output.from_input(gmp_query_url(args.project))
        self.grafana_url = (
            pulumi.Output.from_input(args.public_grafana_url) if args.public_grafana_url else self.grafana.url
        )
        self.register_outputs({"prometheus_url": self.prometheus_url, "grafana_url": self.grafana_url})
