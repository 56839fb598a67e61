"""Local target: the API as one hardened container on the stack's network, published on loopback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from infra.platform import Service

READY_PROBE = (
    "import os, urllib.request as u; "
    "u.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/readyz', timeout=2)"
)


def container_labels(labels: Mapping[str, pulumi.Input[str]]) -> list[docker.ContainerLabelArgs]:
    return [docker.ContainerLabelArgs(label=f"io.scamguard.{k}", value=v) for k, v in sorted(labels.items())]


# Docker keeps json-file logs forever by default; a local stack must not fill the disk.
LOG_OPTS = {"max-size": "10m", "max-file": "3"}


@dataclass
class LocalServiceArgs:
    image_ref: pulumi.Input[str]  # tag in the local image store
    image_digest: pulumi.Input[str]  # a new build replaces the container
    network_name: pulumi.Input[str]
    user: pulumi.Input[str]  # uid:gid, never root
    container_name: str
    environment: Mapping[str, str]
    api_keys: pulumi.Input[str] | None  # secret
    host_port: int
    container_port: int
    memory_mib: int
    cpus: float
    stop_grace_seconds: int
    bind_address: str = "127.0.0.1"
    labels: Mapping[str, str] = field(default_factory=dict)


class LocalService(Service):
    def __init__(self, name: str, args: LocalServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:local:Service", name, None, opts)
        base_env = [f"{k}={v}" for k, v in sorted(args.environment.items())]
        envs: pulumi.Input[Sequence[str]] = base_env
        if args.api_keys is not None:
            # The keys stay a secret in the state; the container reads them from its environment.
            envs = pulumi.Output.secret(args.api_keys).apply(
                lambda keys: [*base_env, f"SCAMGUARD_API_KEYS={keys}"]
            )
        self.container = docker.Container(
            f"{name}-api",
            name=args.container_name,
            image=args.image_ref,
            envs=envs,
            user=args.user,
            read_only=True,
            # Nothing is written at run time; a small noexec tmpfs covers libraries that want /tmp.
            tmpfs={"/tmp": "rw,noexec,nosuid,nodev,size=16m"},  # noqa: S108 - a private tmpfs
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            security_opts=["no-new-privileges:true"],
            memory=args.memory_mib,
            cpus=str(args.cpus),
            restart="unless-stopped",
            must_run=True,
            # Wait for the health check to pass: `pulumi up` fails if the API never becomes ready.
            wait=True,
            wait_timeout=120,
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "/opt/venv/bin/python", "-c", READY_PROBE],
                interval="10s",
                timeout="3s",
                start_period="20s",
                start_interval="1s",
                retries=3,
            ),
            # SIGTERM, then the service drains for stop_grace_seconds; Docker kills only after that.
            stop_signal="SIGTERM",
            stop_timeout=args.stop_grace_seconds + 5,
            destroy_grace_seconds=args.stop_grace_seconds + 5,
            ports=[
                docker.ContainerPortArgs(
                    internal=args.container_port, external=args.host_port, ip=args.bind_address
                )
            ],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network_name, aliases=["api"])],
            labels=container_labels({**args.labels, "component": "api", "image.digest": args.image_digest}),
            log_driver="json-file",
            log_opts=LOG_OPTS,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = pulumi.Output.from_input(f"http://{args.bind_address}:{args.host_port}")
        self.scrape_targets = pulumi.Output.from_input([f"{args.container_name}:{args.container_port}"])
        self.register_outputs({"url": self.url, "scrape_targets": self.scrape_targets})
