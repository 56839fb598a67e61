"""The Google APIs the stack needs, enabled by the program itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

# Every API a resource of this target talks to. Cloud Run pulls from Artifact Registry, the GMP
# sidecar and Grafana use Monitoring, the rule evaluator and dashboards live in Cloud Storage.
REQUIRED_APIS: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
)
# Identity-Aware Proxy, in front of Grafana on the edge load balancer (gcpGrafanaDomain).
IAP_API = "iap.googleapis.com"


@dataclass
class ProjectApisArgs:
    project: pulumi.Input[str]
    services: Sequence[str] = field(default_factory=lambda: REQUIRED_APIS)


class ProjectApis(pulumi.ComponentResource):
    """Enables the APIs; other components list it in depends_on so nothing races the enablement."""

    services: list[gcp.projects.Service]

    def __init__(self, name: str, args: ProjectApisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:gcp:ProjectApis", name, None, opts)
        self.services = [
            gcp.projects.Service(
                f"{name}-{api.split('.')[0]}",
                project=args.project,
                service=api,
                # Never switch an API off on destroy: other workloads in the project may use it.
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in args.services
        ]
        self.register_outputs({"services": [s.service for s in self.services]})
