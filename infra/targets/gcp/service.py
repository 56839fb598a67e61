"""The model API on Cloud Run v2, with the Managed Service for Prometheus sidecar collector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random
import yaml

from infra.platform import Service
from infra.targets.gcp.cloudrun import CloudRunApp, CloudRunAppArgs, secret_volume
from infra.targets.gcp.secrets import MountedSecret, MountedSecretArgs

run = gcp.cloudrunv2

# Google's collector for Cloud Run (an OpenTelemetry Collector distribution writing to GMP).
GMP_SIDECAR_IMAGE = (
    "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"
)
# The sidecar reads its RunMonitoring config from this file (mounted from Secret Manager).
GMP_CONFIG_DIR = "/etc/rungmp"
GMP_CONFIG_FILE = "config.yaml"
# Prometheus `job` label of the scraped series: the RunMonitoring name (contract C: "scamguard").
SCRAPE_JOB = "scamguard"
API_KEYS_DIR = "/secrets/api-keys"
API_KEYS_FILE = "keys"
# Cloud Run mounts secret volumes owned by root (gen2, and always with sidecars): the file must be
# readable by others for the API's uid 10001, or the service refuses to start (an unreadable key
# file is a startup error by design). tests/container proves both modes against the real image.
API_KEYS_FILE_MODE = 0o444

LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"


def run_monitoring_config(port: int, scrape_interval_seconds: int) -> str:
    """The GMP sidecar's RunMonitoring config: scrape the API's /metrics as job "scamguard"."""
    config: dict[str, Any] = {
        "apiVersion": "monitoring.googleapis.com/v1beta",
        "kind": "RunMonitoring",
        "metadata": {"name": SCRAPE_JOB},
        "spec": {
            "endpoints": [
                {"port": str(port), "path": "/metrics", "interval": f"{scrape_interval_seconds}s"},
            ],
            "targetLabels": {"metadata": ["instance", "revision", "service", "configuration"]},
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


def traffic_split(canary_percent: int, stable_revision: str) -> list[run.ServiceTrafficArgs]:
    """Revision traffic: all to the latest revision, or a split with a tagged canary.

    With a stable revision named, it keeps 100 - canary_percent of the traffic (tag "stable") and
    the newest revision gets canary_percent (tag "canary", also reachable at its own tag URL even
    at 0 %). Promoting the canary = clearing the stable revision; rolling back = canary 0.
    """
    if not 0 <= canary_percent <= 100:
        raise ValueError(f"canary_percent must be 0..100, got {canary_percent}")
    if not stable_revision:
        if canary_percent:
            raise ValueError("a canary split needs the stable revision that keeps the rest of the traffic")
        return [run.ServiceTrafficArgs(type=LATEST, percent=100)]
    return [
        run.ServiceTrafficArgs(
            type=REVISION, revision=stable_revision, percent=100 - canary_percent, tag="stable"
        ),
        run.ServiceTrafficArgs(type=LATEST, percent=canary_percent, tag="canary"),
    ]


@dataclass
class CloudRunServiceArgs:
    project: pulumi.Input[str]
    region: pulumi.Input[str]
    service_name: pulumi.Input[str]
    labels: pulumi.Input[dict[str, str]]
    image: pulumi.Input[str]  # by digest: REPO/NAME@sha256:...
    service_account_email: pulumi.Input[str]
    service_account_member: pulumi.Input[str]  # "serviceAccount:EMAIL": the secrets' accessor
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str]
    vpc_egress: str  # PRIVATE_RANGES_ONLY | ALL_TRAFFIC
    ingress: str  # key of cloudrun.INGRESS
    min_instances: int
    max_instances: int
    concurrency: int
    cpu: str
    memory: str
    cpu_always_allocated: bool
    environment: Mapping[str, str]
    # Secret, one key per line (SCAMGUARD_API_KEYS_FILE format); None: one random key is generated,
    # so a cloud deployment is never an open API by omission.
    api_keys: pulumi.Input[str] | None
    deletion_protection: bool
    scrape_interval_seconds: int = 15
    canary_percent: int = 0
    stable_revision: str = ""
    public: bool = False
    invokers: Sequence[str] = field(default_factory=tuple)
    port: int = 8080
    gmp_sidecar_image: str = GMP_SIDECAR_IMAGE
    # The https:// address of the external load balancer in front (infra/targets/gcp/edge.py): the
    # service's public URL then, and its serverless NEG needs unauthenticated invocation (ingress
    # keeps everything but the load balancer and the VPC out). None = no load balancer.
    edge_url: str | None = None


class CloudRunService(Service):
    """Cloud Run v2 service: autoscaling bounds, probes, secrets as files, Direct VPC egress,
    revision traffic split, and invoker IAM (allUsers only when the stack is explicitly public).

    Its secrets (API keys, the collector's config) are children: readable by this service's
    account only, mounted at a pinned version.
    """

    service: run.Service
    url: pulumi.Output[str]
    name: pulumi.Output[str]
    latest_revision: pulumi.Output[str]
    canary_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: CloudRunServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:gcp:CloudRunService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        api_keys = args.api_keys
        if api_keys is None:
            generated = random.RandomPassword(f"{name}-api-key", length=40, special=False, opts=child)
            api_keys = generated.result.apply(lambda key: key + "\n")
        self.api_keys = MountedSecret(
            f"{name}-api-keys",
            MountedSecretArgs(
                project=args.project,
                secret_id=pulumi.Output.concat(args.service_name, "-api-keys"),
                data=api_keys,
                accessor=args.service_account_member,
                labels=args.labels,
                deletion_protection=args.deletion_protection,
            ),
            opts=child,
        )
        self.gmp_config = MountedSecret(
            f"{name}-gmp-config",
            MountedSecretArgs(
                project=args.project,
                secret_id=pulumi.Output.concat(args.service_name, "-gmp-config"),
                data=run_monitoring_config(args.port, args.scrape_interval_seconds),
                accessor=args.service_account_member,
                labels=args.labels,
            ),
            opts=child,
        )

        env = [
            run.ServiceTemplateContainerEnvArgs(name=k, value=v) for k, v in sorted(args.environment.items())
        ]
        env.append(
            run.ServiceTemplateContainerEnvArgs(
                name="SCAMGUARD_API_KEYS_FILE", value=f"{API_KEYS_DIR}/{API_KEYS_FILE}"
            )
        )
        api = run.ServiceTemplateContainerArgs(
            name="api",
            image=args.image,
            ports=run.ServiceTemplateContainerPortsArgs(name="http1", container_port=args.port),
            envs=env,
            resources=run.ServiceTemplateContainerResourcesArgs(
                limits={"cpu": args.cpu, "memory": args.memory},
                cpu_idle=not args.cpu_always_allocated,
                startup_cpu_boost=True,
            ),
            # Traffic only once the model is loaded (readyz); restart if the process wedges (healthz).
            startup_probe=run.ServiceTemplateContainerStartupProbeArgs(
                http_get=run.ServiceTemplateContainerStartupProbeHttpGetArgs(path="/readyz", port=args.port),
                period_seconds=2,
                timeout_seconds=1,
                failure_threshold=45,
            ),
            liveness_probe=run.ServiceTemplateContainerLivenessProbeArgs(
                http_get=run.ServiceTemplateContainerLivenessProbeHttpGetArgs(
                    path="/healthz", port=args.port
                ),
                period_seconds=10,
                timeout_seconds=2,
                failure_threshold=3,
            ),
            volume_mounts=[
                run.ServiceTemplateContainerVolumeMountArgs(name="api-keys", mount_path=API_KEYS_DIR)
            ],
        )
        collector = run.ServiceTemplateContainerArgs(
            name="gmp-collector",
            image=args.gmp_sidecar_image,
            # Start after the API so the first scrape finds /metrics.
            depends_ons=["api"],
            resources=run.ServiceTemplateContainerResourcesArgs(
                limits={"cpu": "500m", "memory": "256Mi"}, cpu_idle=not args.cpu_always_allocated
            ),
            volume_mounts=[
                run.ServiceTemplateContainerVolumeMountArgs(name="gmp-config", mount_path=GMP_CONFIG_DIR)
            ],
        )
        self.app = CloudRunApp(
            name,
            CloudRunAppArgs(
                project=args.project,
                region=args.region,
                service_name=args.service_name,
                description="scamguard scam/phishing email classifier API",
                labels=args.labels,
                service_account_email=args.service_account_email,
                containers=[api, collector],
                ingress=args.ingress,
                min_instances=args.min_instances,
                max_instances=args.max_instances,
                deletion_protection=args.deletion_protection,
                concurrency=args.concurrency,
                vpc_access=run.ServiceTemplateVpcAccessArgs(
                    egress=args.vpc_egress,
                    network_interfaces=[
                        run.ServiceTemplateVpcAccessNetworkInterfaceArgs(
                            network=args.network, subnetwork=args.subnetwork
                        )
                    ],
                ),
                volumes=[
                    secret_volume(
                        "api-keys",
                        self.api_keys.secret_id,
                        self.api_keys.version,
                        API_KEYS_FILE,
                        mode=API_KEYS_FILE_MODE,
                    ),
                    secret_volume(
                        "gmp-config", self.gmp_config.secret_id, self.gmp_config.version, GMP_CONFIG_FILE
                    ),
                ],
                traffics=traffic_split(args.canary_percent, args.stable_revision),
                invokers=["allUsers"] if args.public or args.edge_url else list(args.invokers),
                # A new revision must be able to read its secrets the moment it starts.
                needs=[self.api_keys.accessor_binding, self.gmp_config.accessor_binding],
            ),
            opts=child,
        )
        self.service = self.app.service

        self.run_url = self.service.uri
        self.url = pulumi.Output.from_input(args.edge_url) if args.edge_url else self.service.uri
        self.name = self.service.name
        self.latest_revision = self.service.latest_ready_revision
        self.canary_url = self.service.traffic_statuses.apply(
            lambda statuses: next((s.uri or "" for s in statuses or [] if s.tag == "canary"), "")
        )
        # Prometheus never scrapes Cloud Run from outside: the sidecar collector does, per instance.
        self.scrape_targets = pulumi.Output.from_input([])
        self.register_outputs(
            {"url": self.url, "run_url": self.run_url, "name": self.name, "canary_url": self.canary_url}
        )
