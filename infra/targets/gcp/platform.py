"""GcpPlatform: the Google Cloud target behind the Platform interface (Cloud Run, GMP, Grafana)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from infra.config import GcpSettings, Settings
from infra.image import ServiceImage
from infra.monitoring import render, rule_groups
from infra.platform import Platform, monitoring_config
from infra.targets.gcp.apis import IAP_API, REQUIRED_APIS, ProjectApis, ProjectApisArgs
from infra.targets.gcp.edge import EdgeArgs, EdgeLoadBalancer
from infra.targets.gcp.identity import (
    RUNTIME_PROJECT_ROLES,
    ServiceIdentity,
    ServiceIdentityArgs,
)
from infra.targets.gcp.monitoring import GRAFANA_PROMETHEUS_URL, GcpMonitoring, GcpMonitoringArgs
from infra.targets.gcp.network import VpcNetwork, VpcNetworkArgs
from infra.targets.gcp.registry import ArtifactRepository, ArtifactRepositoryArgs
from infra.targets.gcp.service import CloudRunService, CloudRunServiceArgs

# Cloud Run sets PORT itself (and rejects it as a user variable); the container listens on it.
RESERVED_ENV = frozenset({"PORT"})
# Idle connections to the container: from Cloud Run's front end, and on the backend side of
# Google's external load balancer (its HTTP keep-alive timeout, fixed at 600 s).
FRONT_END_IDLE_SECONDS = 60
LB_BACKEND_IDLE_SECONDS = 600


def after_apis(apis: ProjectApis) -> pulumi.ResourceOptions:
    """Options for a component whose every resource must wait for the APIs to be enabled.

    depends_on on a component is not inherited by its children; a transformation is, so it adds the
    dependency to each child resource as it is registered. Not `transforms` (which replace
    transformations): the SDK's mock monitor records transforms but never runs them (pulumi 3.272,
    `pulumi.runtime.mocks`), so tests/infra/test_gcp.py could no longer prove that every resource
    waits for the APIs; move when the mocks run them.
    """

    def add_dependency(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not isinstance(args.resource, pulumi.CustomResource):
            return None
        return pulumi.ResourceTransformationResult(
            props=args.props,
            opts=pulumi.ResourceOptions.merge(
                args.opts, pulumi.ResourceOptions(depends_on=list(apis.services))
            ),
        )

    return pulumi.ResourceOptions(transformations=[add_dependency])


class GcpPlatform(
    Platform[ArtifactRepository, VpcNetwork, ServiceIdentity, CloudRunService, GcpMonitoring],
):
    target = "gcp"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.gcp: GcpSettings = settings.require_gcp()
        # Names of cloud resources carry the stack, so staging and prod can share a project.
        self.resource_prefix = f"{settings.project}-{settings.stack}"
        self._apis: ProjectApis | None = None

    def labels(self, component: str) -> dict[str, str]:
        """project, stack and component labels (plus managed-by) for every labelable resource."""
        return {**self.settings.labels, "component": component}

    @property
    def apis(self) -> ProjectApis:
        if self._apis is None:
            services = (*REQUIRED_APIS, IAP_API) if self.gcp.grafana_domain else REQUIRED_APIS
            self._apis = ProjectApis(
                f"{self.prefix}-apis", ProjectApisArgs(project=self.gcp.project, services=services)
            )
        return self._apis

    def registry(self) -> ArtifactRepository:
        return ArtifactRepository(
            f"{self.prefix}-registry",
            ArtifactRepositoryArgs(
                project=self.gcp.project,
                region=self.gcp.region,
                repository_id=self.resource_prefix,
                image_name=self.settings.image.name,
                labels=self.labels("registry"),
                keep_count=self.gcp.registry_keep_versions,
            ),
            opts=after_apis(self.apis),
        )

    def network(self) -> VpcNetwork:
        return VpcNetwork(
            f"{self.prefix}-network",
            VpcNetworkArgs(
                project=self.gcp.project,
                region=self.gcp.region,
                network_name=self.resource_prefix,
                subnet_cidr=self.gcp.subnet_cidr,
            ),
            opts=after_apis(self.apis),
        )

    def identity(self, registry: ArtifactRepository, network: VpcNetwork) -> ServiceIdentity:
        return ServiceIdentity(
            f"{self.prefix}-identity",
            ServiceIdentityArgs(
                project=self.gcp.project,
                account_id=f"{self.resource_prefix}-run"[:30],
                display_name=f"scamguard API runtime ({self.settings.stack})",
                # No registry role: Cloud Run's service agent imports the image of a same-project
                # repository at deploy time (Artifact Registry's "Deploying to Cloud Run"); the
                # running service never pulls.
                project_roles=RUNTIME_PROJECT_ROLES,
            ),
            opts=after_apis(self.apis),
        )

    def service(self, image: ServiceImage, network: VpcNetwork, identity: ServiceIdentity) -> CloudRunService:
        settings, scaling = self.settings, self.settings.scaling
        # Rate limits key on the client address that the proxies in front appended to
        # X-Forwarded-For, counted from the right: Cloud Run's front end appends one entry, Google's
        # external load balancer "<client>, <load balancer>" (docs/infrastructure/gcp.md). The
        # server's idle timeout stays above that of the connections in front of it: 60 s from
        # Cloud Run's front end, 600 s on the load balancer's backend side.
        behind = settings.service.environment_behind(
            proxies=2 if self.gcp.has_edge else 1,
            idle_timeout_seconds=LB_BACKEND_IDLE_SECONDS if self.gcp.has_edge else FRONT_END_IDLE_SECONDS,
        )
        environment = {k: v for k, v in behind.items() if k not in RESERVED_ENV}
        return CloudRunService(
            f"{self.prefix}-service",
            CloudRunServiceArgs(
                project=self.gcp.project,
                region=self.gcp.region,
                service_name=self.resource_prefix,
                labels=self.labels("service"),
                image=image.ref,
                service_account_email=identity.email,
                service_account_member=identity.member,
                network=network.network_id,
                subnetwork=network.subnetwork_id,
                vpc_egress=self.gcp.vpc_egress,
                ingress=self.gcp.ingress,
                min_instances=scaling.min_instances,
                max_instances=scaling.max_instances,
                concurrency=scaling.concurrency,
                cpu=scaling.cpu,
                memory=scaling.memory,
                cpu_always_allocated=self.gcp.cpu_always_allocated,
                environment=environment,
                api_keys=settings.service.api_keys_file(),
                deletion_protection=settings.deletion_protection,
                scrape_interval_seconds=settings.alerting.scrape_interval_seconds,
                canary_percent=settings.service.canary_percent,
                stable_revision=self.gcp.stable_revision,
                public=settings.service.public,
                invokers=self.gcp.invokers,
                port=settings.service.port,
                edge_url=f"https://{self.gcp.domain}" if self.gcp.has_edge else None,
            ),
            opts=after_apis(self.apis),
        )

    def monitoring(self, service: CloudRunService, network: VpcNetwork) -> GcpMonitoring:
        # The sidecar scrapes each instance on localhost; Grafana reads GMP through its frontend.
        # It labels every series with its Cloud Run service as `namespace`: selecting on it keeps
        # this stack's series apart from another stack's in the same project.
        config = monitoring_config(
            self.settings,
            [f"127.0.0.1:{self.settings.service.port}"],
            GRAFANA_PROMETHEUS_URL,
            series_selector=f'namespace="{self.resource_prefix}"',
        )
        monitoring = GcpMonitoring(
            f"{self.prefix}-monitoring",
            GcpMonitoringArgs(
                project=self.gcp.project,
                region=self.gcp.region,
                environment=self.settings.stack,
                resource_prefix=self.resource_prefix,
                labels=self.settings.labels,
                rendered=render(config),
                recording_groups=rule_groups(config),
                alert_groups=rule_groups(config, inline_recording_rules=True),
                grafana_image=self.settings.monitoring.grafana_image,
                # Behind IAP on the load balancer, or else reachable for `gcloud run services
                # proxy` by its viewers only (never allUsers either way).
                ingress="internal-and-cloud-load-balancing" if self.gcp.grafana_domain else "all",
                invokers=() if self.gcp.grafana_domain else self.gcp.grafana_viewers,
                public_grafana_url=f"https://{self.gcp.grafana_domain}" if self.gcp.grafana_domain else None,
                notification_email=self.settings.alerting.notification_email,
                evaluation_interval_seconds=max(30, self.settings.alerting.scrape_interval_seconds),
                deletion_protection=self.settings.deletion_protection,
            ),
            opts=after_apis(self.apis),
        )
        return monitoring

    def edge(self, service: CloudRunService, monitoring: GcpMonitoring) -> EdgeLoadBalancer | None:
        """The external HTTPS load balancer, where the stack names a domain (production)."""
        if not self.gcp.has_edge:
            return None
        return EdgeLoadBalancer(
            f"{self.prefix}-edge",
            EdgeArgs(
                project=self.gcp.project,
                region=self.gcp.region,
                name_prefix=self.resource_prefix,
                api_service=service.name,
                api_domain=self.gcp.domain,
                rate_limit_per_minute=self.gcp.edge_rate_limit_per_minute,
                grafana_service=monitoring.grafana.service.name if self.gcp.grafana_domain else None,
                grafana_domain=self.gcp.grafana_domain,
                grafana_viewers=self.gcp.grafana_viewers,
                labels=self.labels("edge"),
            ),
            opts=after_apis(self.apis),
        )

    def extra_outputs(
        self,
        image: ServiceImage,
        service: CloudRunService,
        monitoring: GcpMonitoring,
        edge: pulumi.ComponentResource | None = None,
    ) -> Mapping[str, pulumi.Input[Any]]:
        outputs: dict[str, pulumi.Input[Any]] = {
            "image_digest": image.digest,
            "canary_url": service.canary_url,
            "api_keys_secret": service.api_keys.secret_id,
            "run_url": service.run_url,
        }
        if isinstance(edge, EdgeLoadBalancer):
            outputs["edge_ip_address"] = edge.ip_address
        return outputs
