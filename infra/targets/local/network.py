"""Local target: a user-defined bridge network, so the containers find each other by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from infra.platform import Network


def docker_labels(labels: Mapping[str, str]) -> list[docker.NetworkLabelArgs]:
    return [docker.NetworkLabelArgs(label=f"io.scamguard.{k}", value=v) for k, v in sorted(labels.items())]


@dataclass
class LocalNetworkArgs:
    network_name: pulumi.Input[str]
    labels: Mapping[str, str] = field(default_factory=dict)


class LocalNetwork(Network):
    def __init__(self, name: str, args: LocalNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:local:Network", name, None, opts)
        self.network = docker.Network(
            f"{name}-net",
            name=args.network_name,
            driver="bridge",
            attachable=False,
            labels=docker_labels(args.labels),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.network_id = self.network.name
        self.register_outputs({"network_id": self.network_id})
