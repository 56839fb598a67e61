"""A VPC over two availability zones: public subnets for the load balancer only, private subnets for the
tasks with no route to the internet, and the VPC endpoints the tasks need instead of a NAT gateway."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.platform import Network

AZ_COUNT = 2
# What a task reaches, all through interface endpoints (private DNS) or the S3 gateway:
# ECR (image manifests and auth), S3 (image layers), CloudWatch Logs, Secrets Manager (API keys),
# and Amazon Managed Service for Prometheus (the collector's remote write).
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "aps-workspaces")
HTTPS = 443


def subnet_cidrs(vpc_cidr: str) -> tuple[list[str], list[str]]:
    """Public and private subnets: the VPC split in four equal parts (2 AZs x public/private)."""
    quarters = [str(s) for s in ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=2)]
    return quarters[:AZ_COUNT], quarters[AZ_COUNT:]


@dataclass
class AwsNetworkArgs:
    name_prefix: str
    region: str
    vpc_cidr: str
    tags: Mapping[str, str]
    api_port: int
    public: bool  # the load balancer is internet-facing
    allowed_cidrs: Sequence[str] = ()  # besides the VPC, who may reach an internal load balancer


class AwsNetwork(Network):
    """``network_id`` is the VPC id; the security groups connect by reference: load balancer -> task
    port, task -> endpoints 443. No rule lets 0.0.0.0/0 reach a task."""

    vpc: aws.ec2.Vpc
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    lb_security_group: aws.ec2.SecurityGroup
    task_security_group: aws.ec2.SecurityGroup

    def __init__(self, name: str, args: AwsNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def tags(role: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{args.name_prefix}-{role}"}

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_support=True,  # interface endpoints answer under the services' own names
            enable_dns_hostnames=True,
            tags=tags("vpc"),
            opts=child,
        )
        zones = aws.get_availability_zones_output(state="available")
        public_cidrs, private_cidrs = subnet_cidrs(args.vpc_cidr)
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=tags("igw"), opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public-routes",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            tags=tags("public"),
            opts=child,
        )
        # No route to the internet: only the VPC itself and the S3 gateway endpoint.
        private_routes = aws.ec2.RouteTable(
            f"{name}-private-routes", vpc_id=self.vpc.id, tags=tags("private"), opts=child
        )
        self.public_subnet_ids, self.private_subnet_ids = [], []
        for index in range(AZ_COUNT):
            zone = zones.names[index]
            public = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=self.vpc.id,
                cidr_block=public_cidrs[index],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags=tags(f"public-{index}"),
                opts=child,
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                cidr_block=private_cidrs[index],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags=tags(f"private-{index}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}-routes",
                subnet_id=public.id,
                route_table_id=public_routes.id,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}-routes",
                subnet_id=private.id,
                route_table_id=private_routes.id,
                opts=child,
            )
            self.public_subnet_ids.append(public.id)
            self.private_subnet_ids.append(private.id)

        self.lb_security_group = aws.ec2.SecurityGroup(
            f"{name}-lb-sg",
            vpc_id=self.vpc.id,
            description="scamguard load balancer: HTTPS/HTTP from its callers",
            tags=tags("lb"),
            opts=child,
        )
        self.task_security_group = aws.ec2.SecurityGroup(
            f"{name}-task-sg",
            vpc_id=self.vpc.id,
            description="scamguard tasks: the API port from the load balancer only",
            tags=tags("task"),
            opts=child,
        )
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoint-sg",
            vpc_id=self.vpc.id,
            description="scamguard VPC endpoints: HTTPS from the tasks",
            tags=tags("endpoints"),
            opts=child,
        )

        def allow(
            direction: str, rule: str, group: aws.ec2.SecurityGroup, port: int, description: str, **peer: Any
        ) -> None:
            """One TCP port, to or from one peer (a CIDR, a security group or a prefix list)."""
            kind = aws.vpc.SecurityGroupIngressRule if direction == "in" else aws.vpc.SecurityGroupEgressRule
            kind(
                f"{name}-{rule}",
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=description,
                opts=child,
                **peer,
            )

        callers = ["0.0.0.0/0"] if args.public else [args.vpc_cidr, *args.allowed_cidrs]
        for cidr in callers:
            for port in (HTTPS, 80):
                what = "callers of the API" if port == HTTPS else "HTTP, redirected to HTTPS"
                slug = cidr.replace("/", "-").replace(".", "-")
                allow("in", f"lb-in-{port}-{slug}", self.lb_security_group, port, what, cidr_ipv4=cidr)
        tasks, lb = self.task_security_group, self.lb_security_group
        allow(
            "out",
            "lb-out-task",
            lb,
            args.api_port,
            "to the tasks' API port",
            referenced_security_group_id=tasks.id,
        )
        allow(
            "in",
            "task-in-lb",
            tasks,
            args.api_port,
            "the API port, from the load balancer",
            referenced_security_group_id=lb.id,
        )
        allow(
            "out",
            "task-out-endpoints",
            tasks,
            HTTPS,
            "HTTPS to the VPC endpoints",
            referenced_security_group_id=endpoint_sg.id,
        )
        allow(
            "in",
            "endpoint-in-task",
            endpoint_sg,
            HTTPS,
            "HTTPS from the tasks",
            referenced_security_group_id=tasks.id,
        )
        s3 = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[private_routes.id],
            tags=tags("s3"),
            opts=child,
        )
        allow(
            "out",
            "task-out-s3",
            tasks,
            HTTPS,
            "HTTPS to S3 through the gateway endpoint (ECR image layers)",
            prefix_list_id=s3.prefix_list_id,
        )
        for service in INTERFACE_ENDPOINTS:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=self.private_subnet_ids,
                security_group_ids=[endpoint_sg.id],
                tags=tags(service),
                opts=child,
            )
        self.network_id = self.vpc.id
        self.register_outputs({"network_id": self.network_id})
