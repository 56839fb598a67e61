"""VPC and subnet per stack, used by Cloud Run Direct VPC egress.

`pulumi destroy` cannot delete the subnet right after the Cloud Run service: Direct VPC egress
keeps the instances' addresses reserved for one to two hours after a service or revision is gone
(Google's "Direct VPC egress" docs, "Delete the subnet"), and deletion fails until then. So the
network and subnet are retained on delete (a VPC and subnet cost nothing) and carry a random
suffix, so that a later `up` of the same stack creates fresh ones instead of colliding with the
retained pair. docs/infrastructure/gcp.md gives the command that removes them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from infra.platform import Network


@dataclass
class VpcNetworkArgs:
    project: pulumi.Input[str]
    region: pulumi.Input[str]
    network_name: pulumi.Input[str]
    # Direct VPC egress takes instance IPs from this range: /26 is the smallest Cloud Run accepts,
    # and each instance (during a rollout, twice the max) needs one address.
    subnet_cidr: pulumi.Input[str]


class VpcNetwork(Network):
    """Custom-mode VPC with one regional subnet; Private Google Access lets instances reach
    Google APIs (Monitoring, Secret Manager) even when all egress is routed into the VPC."""

    network: gcp.compute.Network
    subnetwork: gcp.compute.Subnetwork
    subnetwork_id: pulumi.Output[str]

    def __init__(self, name: str, args: VpcNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:gcp:VpcNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # A new suffix per network generation: destroyed with the stack (unlike the network).
        suffix = random.RandomId(f"{name}-suffix", byte_length=2, opts=child)
        network_name = pulumi.Output.concat(args.network_name, "-", suffix.hex)
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        self.network = gcp.compute.Network(
            f"{name}-vpc",
            project=args.project,
            name=network_name,
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            description="scamguard: Cloud Run Direct VPC egress",
            opts=retained,
        )
        self.subnetwork = gcp.compute.Subnetwork(
            f"{name}-subnet",
            project=args.project,
            region=args.region,
            name=pulumi.Output.concat(network_name, "-run"),
            network=self.network.id,
            ip_cidr_range=args.subnet_cidr,
            private_ip_google_access=True,
            stack_type="IPV4_ONLY",
            log_config=gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_10_MIN",
                flow_sampling=0.5,
                metadata="INCLUDE_ALL_METADATA",
            ),
            opts=retained,
        )
        self.network_id = self.network.id
        self.subnetwork_id = self.subnetwork.id
        self.network_name = self.network.name
        self.register_outputs(
            {
                "network_id": self.network_id,
                "subnetwork_id": self.subnetwork_id,
                "network_name": self.network_name,
            }
        )
