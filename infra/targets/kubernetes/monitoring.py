"""Monitoring on Kubernetes: kube-prometheus-stack (or an existing Prometheus Operator), a ServiceMonitor
for the API, the project's rules as a PrometheusRule, and its dashboards and data source as ConfigMaps
that Grafana's sidecar loads.

The shared rules and dashboards (infra/monitoring) are used unchanged; the operator labels every
scraped series with its ``namespace``, which keeps this stack's series apart from another's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.monitoring.rules import JOB
from infra.platform import Monitoring
from infra.targets.kubernetes.meta import APP, HTTP_PORT_NAME

# kube-prometheus-stack 88.x ships prometheus-operator v0.93 (the CRD schemas the tests validate
# the custom resources against: ../shared/schemas/prometheus-operator-v0.93.1).
CHART = "kube-prometheus-stack"
CHART_VERSION = "88.6.4"
CHART_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
# The chart's object names derive from this (kps-prometheus, kps-alertmanager, kps-grafana).
RELEASE_NAME = "kps"
PROMETHEUS_SERVICE = f"{RELEASE_NAME}-prometheus"
GRAFANA_SERVICE = f"{RELEASE_NAME}-grafana"
# Grafana's sidecars load every ConfigMap with these labels in Grafana's namespace.
DASHBOARD_LABEL = "grafana_dashboard"
DATASOURCE_LABEL = "grafana_datasource"
GRAFANA_ADMIN_SECRET = "scamguard-grafana-admin"  # noqa: S105 - a Secret object name
# The job label of the scraped series: the value of the Service's app.kubernetes.io/name (contract C).
JOB_LABEL = "app.kubernetes.io/name"
assert APP == JOB, "the Service's name label must be the job the rules select"


def alertmanager_config(
    notification_email: str, smtp_smarthost: str, smtp_from: str, smtp_username: str
) -> dict[str, Any]:
    """Alertmanager's configuration: every alert to e-mail (when an address is set), the chart's
    always-firing Watchdog to nowhere. The SMTP password is added by the caller (a secret)."""
    receivers: list[dict[str, Any]] = [{"name": "null"}]
    config: dict[str, Any] = {
        "route": {
            "receiver": "null",
            "group_by": ["alertname", "namespace"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [{"receiver": "null", "matchers": ['alertname = "Watchdog"']}],
        },
        "receivers": receivers,
    }
    if notification_email:
        config["global"] = {
            "smtp_smarthost": smtp_smarthost,
            "smtp_from": smtp_from,
            "smtp_require_tls": True,
        }
        if smtp_username:
            config["global"]["smtp_auth_username"] = smtp_username
        receivers.append(
            {"name": "email", "email_configs": [{"to": notification_email, "send_resolved": True}]}
        )
        config["route"]["routes"].append(
            {"receiver": "email", "matchers": ['severity =~ "critical|warning"']}
        )
    return config


@dataclass
class KubernetesMonitoringArgs:
    namespace: pulumi.Input[str]  # the stack's (ServiceMonitor, PrometheusRule)
    monitoring_namespace: str  # Prometheus' and Grafana's (ConfigMaps, the chart)
    install_chart: bool
    stack: str
    labels: Mapping[str, str]
    selector: Mapping[str, str]  # the API Service's labels
    datasource_yaml: str  # Grafana provisioning file (infra.monitoring.render)
    dashboards: Mapping[str, str]  # uid -> dashboard JSON
    rule_groups: Sequence[Mapping[str, Any]]
    scrape_interval_seconds: int
    prometheus_url: str  # in-cluster URL Grafana queries
    release_label: str = ""  # `release` label an existing operator selects by
    prometheus_storage: str = ""
    grafana_host: str = ""
    ingress_class: str = "nginx"
    tls_secret: str = ""
    cluster_issuer: str = ""
    alertmanager: Mapping[str, Any] = field(default_factory=dict)
    smtp_password: pulumi.Input[str] | None = None  # secret


class KubernetesMonitoring(Monitoring):
    grafana_admin_password: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: KubernetesMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:kubernetes:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        monitoring_labels = {**args.labels, "app.kubernetes.io/component": "monitoring"}
        selected = {**monitoring_labels, **({"release": args.release_label} if args.release_label else {})}
        chart_dependencies: list[pulumi.Resource] = []
        self.grafana_admin_password = None

        if args.install_chart:
            # The chart's node-exporter needs host namespaces and hostPath: this namespace cannot
            # be "restricted" (the API's namespace is).
            namespace = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata={
                    "name": args.monitoring_namespace,
                    "labels": {**monitoring_labels, "pod-security.kubernetes.io/enforce": "privileged"},
                },
                opts=child,
            )
            monitoring_namespace: pulumi.Input[str] = namespace.metadata.apply(
                lambda m: m.name or args.monitoring_namespace
            )
            password = random.RandomPassword(
                f"{name}-grafana-admin-password", length=32, special=False, opts=child
            )
            self.grafana_admin_password = password.result
            admin = k8s.core.v1.Secret(
                f"{name}-grafana-admin",
                metadata={
                    "name": GRAFANA_ADMIN_SECRET,
                    "namespace": monitoring_namespace,
                    "labels": monitoring_labels,
                },
                type="Opaque",
                string_data={"admin-user": "admin", "admin-password": password.result},
                opts=child,
            )
            chart_dependencies.append(admin)
        else:
            monitoring_namespace = args.monitoring_namespace

        def config_map(suffix: str, label: str, data: Mapping[str, str]) -> k8s.core.v1.ConfigMap:
            return k8s.core.v1.ConfigMap(
                f"{name}-{suffix}",
                metadata={
                    "name": f"{APP}-{args.stack}-{suffix}",
                    "namespace": monitoring_namespace,
                    "labels": {**monitoring_labels, label: "1"},
                },
                data=dict(data),
                opts=child,
            )

        chart_dependencies.append(
            config_map("datasource", DATASOURCE_LABEL, {f"{APP}-{args.stack}.yaml": args.datasource_yaml})
        )
        for uid, model in sorted(args.dashboards.items()):
            chart_dependencies.append(config_map(f"dashboard-{uid}", DASHBOARD_LABEL, {f"{uid}.json": model}))

        release: k8s.helm.v3.Release | None = None
        if args.install_chart:
            release = k8s.helm.v3.Release(
                f"{name}-stack",
                name=RELEASE_NAME,
                chart=CHART,
                version=CHART_VERSION,
                repository_opts={"repo": CHART_REPOSITORY},
                namespace=monitoring_namespace,
                values=self._values(args),
                # The chart installs the CRDs the ServiceMonitor and PrometheusRule need; wait for
                # its pods so `up` reports a monitoring stack that runs.
                skip_await=False,
                timeout=900,
                opts=pulumi.ResourceOptions(parent=self, depends_on=chart_dependencies),
            )
        crd_opts = pulumi.ResourceOptions(parent=self, depends_on=[release] if release is not None else None)
        k8s.apiextensions.CustomResource(
            f"{name}-service-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": APP, "namespace": args.namespace, "labels": selected},
            spec={
                "jobLabel": JOB_LABEL,
                "selector": {"matchLabels": dict(args.selector)},
                "endpoints": [
                    {
                        "port": HTTP_PORT_NAME,
                        "path": "/metrics",
                        "scheme": "http",
                        "interval": f"{args.scrape_interval_seconds}s",
                        "scrapeTimeout": f"{min(10, args.scrape_interval_seconds)}s",
                    }
                ],
            },
            opts=crd_opts,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": APP, "namespace": args.namespace, "labels": selected},
            spec={"groups": [dict(group) for group in args.rule_groups]},
            opts=crd_opts,
        )
        self.prometheus_url = pulumi.Output.from_input(args.prometheus_url)
        self.grafana_url = pulumi.Output.from_input(
            f"https://{args.grafana_host}"
            if args.grafana_host
            else f"http://{GRAFANA_SERVICE}.{args.monitoring_namespace}.svc.cluster.local"
        )
        self.register_outputs({"prometheus_url": self.prometheus_url, "grafana_url": self.grafana_url})

    @staticmethod
    def _values(args: KubernetesMonitoringArgs) -> pulumi.Input[Mapping[str, Any]]:
        """The chart's values: select every ServiceMonitor and rule without release labels, load the
        sidecar ConfigMaps, route alerts to e-mail."""
        interval = f"{args.scrape_interval_seconds}s"
        prometheus_spec: dict[str, Any] = {
            "serviceMonitorSelectorNilUsesHelmValues": False,
            "podMonitorSelectorNilUsesHelmValues": False,
            "ruleSelectorNilUsesHelmValues": False,
            "probeSelectorNilUsesHelmValues": False,
            "scrapeInterval": interval,
            "evaluationInterval": interval,
            "retention": "15d",
        }
        if args.prometheus_storage:
            prometheus_spec["storageSpec"] = {
                "volumeClaimTemplate": {
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": args.prometheus_storage}},
                    }
                }
            }
        grafana: dict[str, Any] = {
            "fullnameOverride": GRAFANA_SERVICE,
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "sidecar": {
                "dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1"},
                "datasources": {"enabled": True, "label": DATASOURCE_LABEL, "labelValue": "1"},
            },
            "grafana.ini": {"users": {"allow_sign_up": False}, "auth.anonymous": {"enabled": False}},
        }
        if args.grafana_host:
            annotations = (
                {"cert-manager.io/cluster-issuer": args.cluster_issuer} if args.cluster_issuer else {}
            )
            grafana["ingress"] = {
                "enabled": True,
                "ingressClassName": args.ingress_class,
                "annotations": annotations,
                "hosts": [args.grafana_host],
                "tls": [
                    {"hosts": [args.grafana_host], "secretName": args.tls_secret or f"{GRAFANA_SERVICE}-tls"}
                ],
            }
            grafana["grafana.ini"]["server"] = {"root_url": f"https://{args.grafana_host}"}
        values: dict[str, Any] = {
            "fullnameOverride": RELEASE_NAME,
            "prometheus": {"prometheusSpec": prometheus_spec},
            "alertmanager": {"config": dict(args.alertmanager)},
            "grafana": grafana,
        }
        if args.smtp_password is None:
            return values

        def with_password(password: str) -> Mapping[str, Any]:
            config = {**values["alertmanager"]["config"]}
            config["global"] = {**config.get("global", {}), "smtp_auth_password": password}
            return {**values, "alertmanager": {"config": config}}

        return pulumi.Output.secret(pulumi.Output.from_input(args.smtp_password).apply(with_password))
