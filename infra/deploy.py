"""Wires one target's components in order; the same for every target."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from infra.config import Settings
from infra.image import ServiceImage, ServiceImageArgs
from infra.platform import IdentityT, MonitoringT, NetworkT, Platform, RegistryT, ServiceT


@dataclass(frozen=True)
class DeployOutputs:
    service_url: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    grafana_url: pulumi.Output[str]
    extra: Mapping[str, pulumi.Input[Any]] = field(default_factory=dict)

    def export(self) -> None:
        pulumi.export("service_url", self.service_url)
        pulumi.export("image_ref", self.image_ref)
        pulumi.export("prometheus_url", self.prometheus_url)
        pulumi.export("grafana_url", self.grafana_url)
        for key, value in sorted(self.extra.items()):
            pulumi.export(key, value)


def deploy(
    platform: Platform[RegistryT, NetworkT, IdentityT, ServiceT, MonitoringT], settings: Settings
) -> DeployOutputs:
    """registry -> network -> identity -> image -> service -> monitoring -> edge."""
    registry = platform.registry()
    network = platform.network()
    identity = platform.identity(registry, network)
    image = ServiceImage(
        f"{platform.prefix}-image",
        ServiceImageArgs(
            repository=registry.repository,
            tag=settings.image.revision_tag if registry.immutable_tags else settings.image.version,
            push=registry.push,
            credentials=registry.credentials,
            build_args=settings.image.build_args(),
            platform=settings.image.platform,
        ),
        # The repository must exist (and the pusher be allowed to write) before the push.
        opts=pulumi.ResourceOptions(depends_on=[registry]),
    )
    service = platform.service(image, network, identity)
    monitoring = platform.monitoring(service, network)
    edge = platform.edge(service, monitoring)
    return DeployOutputs(
        service_url=service.url,
        image_ref=image.ref,
        prometheus_url=monitoring.prometheus_url,
        grafana_url=monitoring.grafana_url,
        extra=platform.extra_outputs(image, service, monitoring, edge),
    )
