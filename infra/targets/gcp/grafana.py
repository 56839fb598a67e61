"""Grafana on Cloud Run with its own service account, provisioned from a Cloud Storage bucket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from infra.targets.gcp.cloudrun import CloudRunApp, CloudRunAppArgs, bucket_volume
from infra.targets.gcp.identity import GRAFANA_PROJECT_ROLES, ServiceIdentity, ServiceIdentityArgs
from infra.targets.gcp.secrets import MountedSecret, MountedSecretArgs

run = gcp.cloudrunv2

# GMP's query frontend: a Prometheus-compatible HTTP API on localhost that forwards to the
# project's Managed Prometheus with the service account's credentials. Grafana cannot sign
# Google OAuth requests from a Prometheus data source itself, so it queries this sidecar.
GMP_FRONTEND_IMAGE = "gke.gcr.io/prometheus-engine/frontend:v0.15.3-gke.0"
FRONTEND_PORT = 9090
GRAFANA_PORT = 3000
# Where the monitoring bucket (dashboards, provisioning, rule files) is mounted, read-only.
MOUNT_DIR = "/mnt/scamguard-monitoring"


@dataclass
class GrafanaArgs:
    project: pulumi.Input[str]
    region: pulumi.Input[str]
    service_name: str
    account_id: str
    labels: dict[str, str]
    image: str
    bucket: pulumi.Input[str]  # monitoring bucket with grafana/provisioning and grafana/dashboards
    ingress: str
    invokers: Sequence[str] = field(default_factory=tuple)
    deletion_protection: bool = False
    # sha256 of the files it reads from the bucket at start: a change rolls a new revision, or the
    # running one would keep serving the old rules/dashboards (it reads them only at start).
    files_sha256: str = ""
    frontend_image: str = GMP_FRONTEND_IMAGE


class Grafana(pulumi.ComponentResource):
    """Grafana (stateless: everything it shows is provisioned) plus the GMP query frontend sidecar.

    Never public: reach it with `gcloud run services proxy` as one of the invokers.
    """

    identity: ServiceIdentity
    service: run.Service
    url: pulumi.Output[str]

    def __init__(self, name: str, args: GrafanaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:gcp:Grafana", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.identity = ServiceIdentity(
            f"{name}-identity",
            ServiceIdentityArgs(
                project=args.project,
                account_id=args.account_id,
                display_name=f"scamguard Grafana ({args.service_name})",
                project_roles=GRAFANA_PROJECT_ROLES,
                read_bucket=args.bucket,
            ),
            opts=child,
        )
        password = random.RandomPassword(f"{name}-admin-password", length=32, special=False, opts=child)
        self.admin_password = MountedSecret(
            f"{name}-admin",
            MountedSecretArgs(
                project=args.project,
                secret_id=f"{args.service_name}-admin-password",
                data=password.result,
                accessor=self.identity.member,
                labels=args.labels,
            ),
            opts=child,
        )
        env = {
            "GF_PATHS_PROVISIONING": f"{MOUNT_DIR}/grafana/provisioning",
            "GF_SECURITY_ADMIN_USER": "admin",
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
            "GF_LOG_MODE": "console",
        }
        grafana = run.ServiceTemplateContainerArgs(
            name="grafana",
            image=args.image,
            ports=run.ServiceTemplateContainerPortsArgs(name="http1", container_port=GRAFANA_PORT),
            depends_ons=["gmp-frontend"],
            envs=[
                *(run.ServiceTemplateContainerEnvArgs(name=k, value=v) for k, v in env.items()),
                run.ServiceTemplateContainerEnvArgs(
                    name="GF_SECURITY_ADMIN_PASSWORD",
                    value_source=run.ServiceTemplateContainerEnvValueSourceArgs(
                        secret_key_ref=run.ServiceTemplateContainerEnvValueSourceSecretKeyRefArgs(
                            secret=self.admin_password.secret_id, version=self.admin_password.version
                        )
                    ),
                ),
            ],
            resources=run.ServiceTemplateContainerResourcesArgs(limits={"cpu": "1", "memory": "512Mi"}),
            startup_probe=run.ServiceTemplateContainerStartupProbeArgs(
                http_get=run.ServiceTemplateContainerStartupProbeHttpGetArgs(
                    path="/api/health", port=GRAFANA_PORT
                ),
                period_seconds=3,
                failure_threshold=40,
            ),
            volume_mounts=[
                run.ServiceTemplateContainerVolumeMountArgs(name="monitoring", mount_path=MOUNT_DIR)
            ],
        )
        frontend = run.ServiceTemplateContainerArgs(
            name="gmp-frontend",
            image=args.frontend_image,
            args=[
                f"--web.listen-address=:{FRONTEND_PORT}",
                pulumi.Output.concat("--query.project-id=", args.project),
            ],
            resources=run.ServiceTemplateContainerResourcesArgs(limits={"cpu": "500m", "memory": "256Mi"}),
            startup_probe=run.ServiceTemplateContainerStartupProbeArgs(
                http_get=run.ServiceTemplateContainerStartupProbeHttpGetArgs(
                    path="/-/ready", port=FRONTEND_PORT
                ),
                period_seconds=2,
                failure_threshold=30,
            ),
        )
        self.app = CloudRunApp(
            name,
            CloudRunAppArgs(
                project=args.project,
                region=args.region,
                service_name=args.service_name,
                description="scamguard Grafana (dashboards as code, GMP data source)",
                labels=args.labels,
                service_account_email=self.identity.email,
                containers=[grafana, frontend],
                ingress=args.ingress,
                # Grafana keeps sessions in its local SQLite: one instance so a login sticks.
                min_instances=0,
                max_instances=1,
                deletion_protection=args.deletion_protection,
                volumes=[bucket_volume("monitoring", args.bucket)],
                files_sha256=args.files_sha256,
                invokers=args.invokers,
                needs=[self.identity, self.admin_password.accessor_binding],
            ),
            opts=child,
        )
        self.service = self.app.service
        self.url = self.service.uri
        self.register_outputs({"url": self.url, "service_account": self.identity.email})
