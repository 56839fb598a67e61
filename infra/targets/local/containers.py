"""What every container of the local stack shares: hardening, loopback-only ports, a health check
that `pulumi up` waits for, the stack's network, labels and bounded logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_docker as docker

# Docker keeps json-file logs forever by default; a local stack must not fill the disk.
LOG_OPTS = {"max-size": "10m", "max-file": "3"}


def container_labels(labels: Mapping[str, pulumi.Input[str]]) -> list[docker.ContainerLabelArgs]:
    return [docker.ContainerLabelArgs(label=f"io.scamguard.{k}", value=v) for k, v in sorted(labels.items())]


def local_container_options(
    *,
    network_name: pulumi.Input[str],
    alias: str,
    internal_port: int,
    host_port: int,
    bind_address: str,
    health_test: Sequence[str],
    start_period: str,
    wait_timeout: int,
    labels: Mapping[str, pulumi.Input[str]],
    start_interval: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for docker.Container common to the API, Prometheus and Grafana."""
    return {
        "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        "security_opts": ["no-new-privileges:true"],
        "restart": "unless-stopped",
        "must_run": True,
        # `pulumi up` fails if the container never becomes healthy.
        "wait": True,
        "wait_timeout": wait_timeout,
        "healthcheck": docker.ContainerHealthcheckArgs(
            tests=list(health_test),
            interval="10s",
            timeout="3s",
            start_period=start_period,
            start_interval=start_interval,
            retries=3,
        ),
        "ports": [docker.ContainerPortArgs(internal=internal_port, external=host_port, ip=bind_address)],
        "networks_advanced": [docker.ContainerNetworksAdvancedArgs(name=network_name, aliases=[alias])],
        "labels": container_labels(labels),
        "log_driver": "json-file",
        "log_opts": LOG_OPTS,
    }
