"""Local target: Prometheus and Grafana containers with the project's rendered monitoring files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from infra.monitoring.render import GRAFANA_DASHBOARDS_DIR
from infra.platform import Monitoring
from infra.targets.local.containers import local_container_options

PROMETHEUS_CONFIG_DIR = "/etc/prometheus"
PROMETHEUS_DATA_DIR = "/prometheus"
GRAFANA_PROVISIONING_DIR = "/etc/grafana/provisioning"  # Grafana's default
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000


def container_path(rendered_path: str) -> str:
    """Where a file of infra.monitoring.render() goes in its container.

    ``prometheus/X`` -> ``/etc/prometheus/X`` (prometheus.yml finds ``rules/`` beside it),
    ``grafana/provisioning/X`` -> Grafana's provisioning directory, and ``grafana/dashboards/X``
    -> the directory the rendered dashboard provider points at.
    """
    top, _, rest = rendered_path.partition("/")
    if top == "prometheus" and rest:
        return f"{PROMETHEUS_CONFIG_DIR}/{rest}"
    if top == "grafana":
        kind, _, name = rest.partition("/")
        if kind == "provisioning" and name:
            return f"{GRAFANA_PROVISIONING_DIR}/{name}"
        if kind == "dashboards" and name:
            return f"{GRAFANA_DASHBOARDS_DIR}/{name}"
    raise ValueError(
        f"rendered monitoring file {rendered_path!r} is not under prometheus/, grafana/provisioning/ "
        "or grafana/dashboards/"
    )


def uploads(files: Mapping[str, str], prefix: str) -> list[docker.ContainerUploadArgs]:
    return [
        docker.ContainerUploadArgs(file=container_path(path), content=text, permissions="0644")
        for path, text in sorted(files.items())
        if path.startswith(prefix)
    ]


@dataclass
class LocalMonitoringArgs:
    files: Mapping[str, str]  # infra.monitoring.render() output
    network_name: pulumi.Input[str]
    prometheus_image: str
    grafana_image: str
    prometheus_container_name: str
    grafana_container_name: str
    prometheus_host_port: int
    grafana_host_port: int
    bind_address: str = "127.0.0.1"
    retention: str = "15d"
    labels: Mapping[str, str] = field(default_factory=dict)


class LocalMonitoring(Monitoring):
    grafana_admin_password: pulumi.Output[str]

    def __init__(
        self, name: str, args: LocalMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:local:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Pulled once and kept: `pulumi destroy` must not delete images other projects may use.
        prometheus_image = docker.RemoteImage(
            f"{name}-prometheus-image", name=args.prometheus_image, keep_locally=True, opts=child
        )
        grafana_image = docker.RemoteImage(
            f"{name}-grafana-image", name=args.grafana_image, keep_locally=True, opts=child
        )
        prometheus_data = docker.Volume(f"{name}-prometheus-data", opts=child)

        # The images' own unprivileged users (nobody / grafana) run them.  Their root file
        # systems stay writable only because the engine cannot copy the rendered files
        # (`uploads`) into a read-only one; nothing else is granted.
        self.prometheus = docker.Container(
            f"{name}-prometheus",
            name=args.prometheus_container_name,
            image=prometheus_image.image_id,
            command=[
                f"--config.file={PROMETHEUS_CONFIG_DIR}/prometheus.yml",
                f"--storage.tsdb.path={PROMETHEUS_DATA_DIR}",
                f"--storage.tsdb.retention.time={args.retention}",
                f"--web.external-url=http://{args.bind_address}:{args.prometheus_host_port}",
            ],
            uploads=uploads(args.files, "prometheus/"),
            volumes=[
                docker.ContainerVolumeArgs(
                    volume_name=prometheus_data.name, container_path=PROMETHEUS_DATA_DIR
                )
            ],
            **local_container_options(
                network_name=args.network_name,
                alias="prometheus",
                internal_port=PROMETHEUS_PORT,
                host_port=args.prometheus_host_port,
                bind_address=args.bind_address,
                health_test=[
                    "CMD",
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready",
                ],
                start_period="20s",
                wait_timeout=120,
                labels={**args.labels, "component": "prometheus"},
            ),
            opts=child,
        )

        admin_password = random.RandomPassword(f"{name}-grafana-admin", length=24, special=False, opts=child)
        grafana_url = f"http://{args.bind_address}:{args.grafana_host_port}"
        grafana_env = admin_password.result.apply(
            lambda password: [
                f"GF_SECURITY_ADMIN_PASSWORD={password}",
                f"GF_SERVER_ROOT_URL={grafana_url}",
                # Anyone on this machine may look at the dashboards; editing needs the admin login.
                "GF_AUTH_ANONYMOUS_ENABLED=true",
                "GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer",
                "GF_USERS_ALLOW_SIGN_UP=false",
                # A local stack must work offline and not phone home.
                "GF_ANALYTICS_REPORTING_ENABLED=false",
                "GF_ANALYTICS_CHECK_FOR_UPDATES=false",
                "GF_PLUGINS_PREINSTALL_DISABLED=true",
            ]
        )
        self.grafana = docker.Container(
            f"{name}-grafana",
            name=args.grafana_container_name,
            image=grafana_image.image_id,
            envs=pulumi.Output.secret(grafana_env),
            # No data volume: data source and dashboards are provisioned on every start, and the
            # rest of Grafana's state (sessions) is disposable on a local stack.
            uploads=uploads(args.files, "grafana/"),
            **local_container_options(
                network_name=args.network_name,
                alias="grafana",
                internal_port=GRAFANA_PORT,
                host_port=args.grafana_host_port,
                bind_address=args.bind_address,
                health_test=[
                    "CMD",
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    f"http://127.0.0.1:{GRAFANA_PORT}/api/health",
                ],
                start_period="30s",
                wait_timeout=180,
                labels={**args.labels, "component": "grafana"},
            ),
            # Grafana's data source must find Prometheus up.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.prometheus]),
        )
        self.prometheus_url = pulumi.Output.from_input(
            f"http://{args.bind_address}:{args.prometheus_host_port}"
        )
        self.grafana_url = pulumi.Output.from_input(grafana_url)
        self.grafana_admin_password = pulumi.Output.secret(admin_password.result)
        self.register_outputs(
            {
                "prometheus_url": self.prometheus_url,
                "grafana_url": self.grafana_url,
                "grafana_admin_password": self.grafana_admin_password,
            }
        )
