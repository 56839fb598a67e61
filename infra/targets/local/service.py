"""Local target: the API as one hardened container on the stack's network, published on loopback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from infra.platform import Service
from infra.targets.local.containers import local_container_options

READY_PROBE = (
    "import os, urllib.request as u; "
    "u.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/readyz', timeout=2)"
)


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
            memory=args.memory_mib,
            cpus=str(args.cpus),
            # SIGTERM, then the service drains for stop_grace_seconds; Docker kills only after that.
            stop_signal="SIGTERM",
            stop_timeout=args.stop_grace_seconds + 5,
            destroy_grace_seconds=args.stop_grace_seconds + 5,
            **local_container_options(
                network_name=args.network_name,
                alias="api",
                internal_port=args.container_port,
                host_port=args.host_port,
                bind_address=args.bind_address,
                health_test=["CMD", "/opt/venv/bin/python", "-c", READY_PROBE],
                start_period="20s",
                start_interval="1s",
                wait_timeout=120,
                labels={**args.labels, "component": "api", "image.digest": args.image_digest},
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = pulumi.Output.from_input(f"http://{args.bind_address}:{args.host_port}")
        self.scrape_targets = pulumi.Output.from_input([f"{args.container_name}:{args.container_port}"])
        self.register_outputs({"url": self.url, "scrape_targets": self.scrape_targets})
