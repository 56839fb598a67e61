"""The ``local`` target: everything on the local Docker engine, published on 127.0.0.1 only.

Needs no cloud account: the image is built into the engine's image store, and the stack's state
lives in a local file backend (see Pulumi.yaml and scripts/up-local.sh).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pulumi

from infra.config import LocalSettings, Settings
from infra.image import ServiceImage
from infra.platform import Platform, monitoring_config
from infra.targets.local.identity import LocalIdentity, LocalIdentityArgs
from infra.targets.local.monitoring import PROMETHEUS_PORT, LocalMonitoring, LocalMonitoringArgs
from infra.targets.local.network import LocalNetwork, LocalNetworkArgs
from infra.targets.local.registry import LocalRegistry, LocalRegistryArgs
from infra.targets.local.service import LocalService, LocalServiceArgs

__all__ = ["LocalPlatform"]


class LocalPlatform(Platform[LocalRegistry, LocalNetwork, LocalIdentity, LocalService, LocalMonitoring]):
    target: ClassVar[str] = "local"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.local: LocalSettings = settings.require_local()
        # Engine-wide names: two stacks of the project can run side by side on one engine.
        self.container_prefix = f"{settings.project}-{settings.stack}"

    def registry(self) -> LocalRegistry:
        return LocalRegistry(self.prefix, LocalRegistryArgs(image_name=self.settings.image.name))

    def network(self) -> LocalNetwork:
        return LocalNetwork(
            self.prefix, LocalNetworkArgs(network_name=self.container_prefix, labels=self.settings.labels)
        )

    def identity(self, registry: LocalRegistry, network: LocalNetwork) -> LocalIdentity:
        return LocalIdentity(self.prefix, LocalIdentityArgs())

    def service(self, image: ServiceImage, network: LocalNetwork, identity: LocalIdentity) -> LocalService:
        settings = self.settings
        return LocalService(
            self.prefix,
            LocalServiceArgs(
                image_ref=image.ref,
                image_digest=image.digest,
                network_name=network.network_id,
                user=identity.principal,
                container_name=f"{self.container_prefix}-api",
                environment=settings.service.environment(),
                api_keys=settings.service.api_keys,
                host_port=self.local.api_port,
                container_port=settings.service.port,
                memory_mib=settings.scaling.memory_mib,
                cpus=settings.scaling.cpu_cores,
                stop_grace_seconds=settings.service.shutdown_grace_seconds,
                bind_address=self.local.bind_address,
                labels=settings.labels,
            ),
            opts=pulumi.ResourceOptions(depends_on=[network]),
        )

    def monitoring(self, service: LocalService, network: LocalNetwork) -> LocalMonitoring:
        from infra.monitoring import render

        prometheus_name = f"{self.container_prefix}-prometheus"
        # Scrape targets and the data source URL are names on the stack's network, known now.
        config = monitoring_config(
            self.settings,
            scrape_targets=[f"{self.container_prefix}-api:{self.settings.service.port}"],
            prometheus_url=f"http://{prometheus_name}:{PROMETHEUS_PORT}",
        )
        return LocalMonitoring(
            self.prefix,
            LocalMonitoringArgs(
                files=render(config),
                network_name=network.network_id,
                prometheus_image=self.settings.monitoring.prometheus_image,
                grafana_image=self.settings.monitoring.grafana_image,
                prometheus_container_name=prometheus_name,
                grafana_container_name=f"{self.container_prefix}-grafana",
                prometheus_host_port=self.local.prometheus_port,
                grafana_host_port=self.local.grafana_port,
                bind_address=self.local.bind_address,
                labels=self.settings.labels,
            ),
            opts=pulumi.ResourceOptions(depends_on=[service]),
        )

    def extra_outputs(
        self,
        image: ServiceImage,
        service: LocalService,
        monitoring: LocalMonitoring,
        edge: pulumi.ComponentResource | None = None,
    ) -> Mapping[str, pulumi.Input[Any]]:
        return {"grafana_admin_password": monitoring.grafana_admin_password}
