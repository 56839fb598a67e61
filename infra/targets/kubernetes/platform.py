"""KubernetesPlatform: any conformant cluster (GKE, EKS, AKS, on-premises) behind the Platform interface.

The cluster is the default provider's: ``kubernetes:context`` / ``kubernetes:kubeconfig`` in the
stack config, else the KUBECONFIG of the machine running Pulumi.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import pulumi
import yaml

from infra.config import KubernetesSettings, Settings
from infra.image import ServiceImage
from infra.monitoring import rule_groups
from infra.monitoring.render import dashboard_files, grafana_datasource
from infra.platform import Platform, monitoring_config
from infra.targets.kubernetes.identity import ServiceAccountIdentity, ServiceAccountIdentityArgs
from infra.targets.kubernetes.meta import APP, labels, selector
from infra.targets.kubernetes.monitoring import (
    PROMETHEUS_SERVICE,
    KubernetesMonitoring,
    KubernetesMonitoringArgs,
    alertmanager_config,
)
from infra.targets.kubernetes.network import NamespaceNetwork, NamespaceNetworkArgs
from infra.targets.kubernetes.registry import OciRegistry, OciRegistryArgs
from infra.targets.kubernetes.service import KubernetesService, KubernetesServiceArgs

REDIS_DEFAULT_PORT = 6379
# ingress-nginx keeps idle connections to upstreams this long (its `upstream-keepalive-timeout`).
INGRESS_NGINX_UPSTREAM_IDLE_SECONDS = 60


def redis_port(storage_uri: str) -> int | None:
    """The TCP port of a Redis rate-limit store URI; None for in-memory limits."""
    if not storage_uri.startswith("async+redis"):
        return None
    return urllib.parse.urlsplit(storage_uri.removeprefix("async+")).port or REDIS_DEFAULT_PORT


class KubernetesPlatform(
    Platform[OciRegistry, NamespaceNetwork, ServiceAccountIdentity, KubernetesService, KubernetesMonitoring],
):
    target = "kubernetes"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.k8s: KubernetesSettings = settings.require_kubernetes()
        self.selector = selector(settings.stack)

    def labels(self, component: str) -> dict[str, str]:
        return labels(self.settings.stack, component)

    def registry(self) -> OciRegistry:
        return OciRegistry(
            f"{self.prefix}-registry",
            OciRegistryArgs(
                registry=self.k8s.registry,
                host=self.k8s.registry_host,
                image_name=self.settings.image.name,
                username=self.k8s.registry_username,
                password=self.k8s.registry_password,
            ),
        )

    def network(self) -> NamespaceNetwork:
        return NamespaceNetwork(
            f"{self.prefix}-network",
            NamespaceNetworkArgs(
                namespace=self.k8s.namespace,
                labels=self.labels("network"),
                api_selector=self.selector,
                api_port=self.settings.service.port,
                ingress_controller_namespace=self.k8s.ingress_controller_namespace,
                monitoring_namespace=self.k8s.monitoring_namespace,
                redis_port=redis_port(self.settings.service.rate_limit_storage_uri),
            ),
        )

    def identity(self, registry: OciRegistry, network: NamespaceNetwork) -> ServiceAccountIdentity:
        return ServiceAccountIdentity(
            f"{self.prefix}-identity",
            ServiceAccountIdentityArgs(
                namespace=network.network_id,
                account_name=APP,
                labels=self.labels("identity"),
                registry_credentials=registry.credentials,
            ),
        )

    def service(
        self, image: ServiceImage, network: NamespaceNetwork, identity: ServiceAccountIdentity
    ) -> KubernetesService:
        settings, scaling = self.settings, self.settings.scaling
        # The ingress controller appends to X-Forwarded-For (and each balancer in front of it that
        # does); ingress-nginx keeps idle upstream connections 60 s (`upstream-keepalive-timeout`).
        environment = settings.service.environment_behind(
            proxies=self.k8s.forwarded_hops, idle_timeout_seconds=INGRESS_NGINX_UPSTREAM_IDLE_SECONDS
        )
        return KubernetesService(
            f"{self.prefix}-service",
            KubernetesServiceArgs(
                namespace=network.network_id,
                name=APP,
                labels=self.labels("api"),
                selector=self.selector,
                image=image.ref,
                service_account_name=identity.principal,
                environment=environment,
                api_keys=settings.service.api_keys_file(),
                min_replicas=scaling.min_instances,
                max_replicas=scaling.max_instances,
                cpu=scaling.cpu,
                memory=scaling.memory,
                shutdown_grace_seconds=settings.service.shutdown_grace_seconds,
                max_body_bytes=settings.service.max_body_bytes,
                docs_enabled=settings.service.docs_enabled,
                port=settings.service.port,
                host=self.k8s.host,
                ingress_class=self.k8s.ingress_class,
                tls_secret=self.k8s.tls_secret,
                cluster_issuer=self.k8s.cluster_issuer,
            ),
        )

    def prometheus_url(self) -> str:
        if self.k8s.prometheus_url:
            return self.k8s.prometheus_url
        return f"http://{PROMETHEUS_SERVICE}.{self.k8s.monitoring_namespace}.svc.cluster.local:9090"

    def monitoring(self, service: KubernetesService, network: NamespaceNetwork) -> KubernetesMonitoring:
        alerting = self.settings.alerting
        config = monitoring_config(
            self.settings,
            # Informational (prometheus.yml is not used here): the ServiceMonitor finds the pods.
            [f"{APP}.{self.k8s.namespace}.svc:80"],
            self.prometheus_url(),
            series_selector=f'namespace="{self.k8s.namespace}"',
        )
        # Not the default data source: the chart's own (or an existing Grafana's) is, and Grafana
        # refuses to provision two defaults. The dashboards name theirs by uid.
        provisioning = grafana_datasource(config)
        for source in provisioning["datasources"]:
            source["isDefault"] = False
        datasource = yaml.safe_dump(provisioning, sort_keys=False)
        boards = dashboard_files(config)
        return KubernetesMonitoring(
            f"{self.prefix}-monitoring",
            KubernetesMonitoringArgs(
                namespace=network.network_id,
                monitoring_namespace=self.k8s.monitoring_namespace,
                install_chart=self.k8s.installs_monitoring,
                stack=self.settings.stack,
                labels=self.labels("monitoring"),
                selector=self.selector,
                datasource_yaml=datasource,
                dashboards=boards,
                rule_groups=rule_groups(config),
                scrape_interval_seconds=alerting.scrape_interval_seconds,
                prometheus_url=self.prometheus_url(),
                release_label=self.k8s.monitoring_release_label,
                prometheus_storage=self.k8s.prometheus_storage,
                grafana_host=self.k8s.grafana_host,
                ingress_class=self.k8s.ingress_class,
                tls_secret=self.k8s.tls_secret,
                cluster_issuer=self.k8s.cluster_issuer,
                alertmanager=alertmanager_config(
                    alerting.notification_email,
                    self.k8s.smtp_smarthost,
                    self.k8s.smtp_from,
                    self.k8s.smtp_username,
                ),
                smtp_password=self.k8s.smtp_password,
            ),
            # The ServiceMonitor selects the Service's pods by label: create it with them.
            opts=pulumi.ResourceOptions(depends_on=[service]),
        )

    def extra_outputs(
        self,
        image: ServiceImage,
        service: KubernetesService,
        monitoring: KubernetesMonitoring,
        edge: pulumi.ComponentResource | None = None,
    ) -> Mapping[str, pulumi.Input[Any]]:
        outputs: dict[str, pulumi.Input[Any]] = {
            "image_digest": image.digest,
            "namespace": self.k8s.namespace,
            "api_keys_secret": service.api_keys_secret_name,
            "in_cluster_url": service.in_cluster_url,
        }
        if monitoring.grafana_admin_password is not None:
            outputs["grafana_admin_password"] = pulumi.Output.secret(monitoring.grafana_admin_password)
        return outputs
