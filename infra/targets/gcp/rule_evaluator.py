"""Recording rules on Managed Service for Prometheus: GMP's standalone rule evaluator on Cloud Run.

Cloud Monitoring alert policies evaluate PromQL alerting conditions but have no recording rules
(alerts therefore inline them, see alerting.py). Dashboards still read the recorded series, so a
single always-on rule evaluator computes them from the GMP query API and writes them back to GMP.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.targets.gcp.cloudrun import CloudRunApp, CloudRunAppArgs, bucket_volume
from infra.targets.gcp.identity import RULE_EVALUATOR_PROJECT_ROLES, ServiceIdentity, ServiceIdentityArgs

run = gcp.cloudrunv2

RULE_EVALUATOR_IMAGE = "gke.gcr.io/prometheus-engine/rule-evaluator:v0.17.2-gke.2"
RULE_EVALUATOR_PORT = 9091
MOUNT_DIR = "/mnt/scamguard-monitoring"
CONFIG_OBJECT = "rule-evaluator/config.yaml"


@dataclass
class RuleEvaluatorArgs:
    project: pulumi.Input[str]
    region: pulumi.Input[str]
    service_name: str
    account_id: str
    labels: dict[str, str]
    bucket: pulumi.Input[str]  # holds CONFIG_OBJECT and the rule files it lists
    deletion_protection: bool = False
    # sha256 of the files it reads from the bucket at start: a change rolls a new revision, or the
    # running one would keep serving the old rules/dashboards (it reads them only at start).
    files_sha256: str = ""
    image: str = RULE_EVALUATOR_IMAGE


class RuleEvaluator(pulumi.ComponentResource):
    """Exactly one instance, CPU always allocated (it works between requests), no ingress."""

    identity: ServiceIdentity
    service: run.Service

    def __init__(
        self, name: str, args: RuleEvaluatorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:gcp:RuleEvaluator", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.identity = ServiceIdentity(
            f"{name}-identity",
            ServiceIdentityArgs(
                project=args.project,
                account_id=args.account_id,
                display_name=f"scamguard GMP rule evaluator ({args.service_name})",
                project_roles=RULE_EVALUATOR_PROJECT_ROLES,
                read_bucket=args.bucket,
            ),
            opts=child,
        )
        evaluator = run.ServiceTemplateContainerArgs(
            name="rule-evaluator",
            image=args.image,
            args=[
                f"--config.file={MOUNT_DIR}/{CONFIG_OBJECT}",
                f"--web.listen-address=:{RULE_EVALUATOR_PORT}",
                pulumi.Output.concat("--query.project-id=", args.project),
                pulumi.Output.concat("--export.label.project-id=", args.project),
                pulumi.Output.concat("--export.label.location=", args.region),
                # The cluster label Cloud Run's GMP collector writes, so recorded series line up.
                "--export.label.cluster=__run__",
            ],
            ports=run.ServiceTemplateContainerPortsArgs(name="http1", container_port=RULE_EVALUATOR_PORT),
            resources=run.ServiceTemplateContainerResourcesArgs(
                limits={"cpu": "1", "memory": "512Mi"}, cpu_idle=False
            ),
            startup_probe=run.ServiceTemplateContainerStartupProbeArgs(
                tcp_socket=run.ServiceTemplateContainerStartupProbeTcpSocketArgs(port=RULE_EVALUATOR_PORT),
                period_seconds=3,
                failure_threshold=20,
            ),
            volume_mounts=[
                run.ServiceTemplateContainerVolumeMountArgs(name="monitoring", mount_path=MOUNT_DIR)
            ],
        )
        self.app = CloudRunApp(
            name,
            CloudRunAppArgs(
                project=args.project,
                region=args.region,
                service_name=args.service_name,
                description="scamguard recording rules (GMP rule evaluator)",
                labels=args.labels,
                service_account_email=self.identity.email,
                containers=[evaluator],
                # Nothing calls it; internal-only and no invoker bindings.
                ingress="internal",
                # Two evaluators would write every recorded sample twice.
                min_instances=1,
                max_instances=1,
                deletion_protection=args.deletion_protection,
                volumes=[bucket_volume("monitoring", args.bucket)],
                files_sha256=args.files_sha256,
                needs=[self.identity],
            ),
            opts=child,
        )
        self.service = self.app.service
        self.register_outputs({"service": self.service.name, "service_account": self.identity.email})
