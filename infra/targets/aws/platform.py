"""AwsPlatform: ECS Fargate, ALB + WAF, AMP and Amazon Managed Grafana behind the Platform interface.

The account and credentials are the AWS provider's (environment, profile or the workflow's OIDC role);
``aws:region`` in the stack config must equal ``scamguard:region``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.config import AwsSettings, Settings
from infra.image import ServiceImage
from infra.monitoring import rule_groups
from infra.monitoring.render import dashboard_files
from infra.platform import Platform, monitoring_config
from infra.targets.aws.identity import TaskIdentity, TaskIdentityArgs
from infra.targets.aws.monitoring import (
    AwsMonitoring,
    AwsMonitoringArgs,
    PrometheusWorkspace,
    PrometheusWorkspaceArgs,
)
from infra.targets.aws.network import AwsNetwork, AwsNetworkArgs
from infra.targets.aws.registry import PUBLIC_CACHE_PREFIX, EcrRegistry, EcrRegistryArgs
from infra.targets.aws.service import (
    COLLECTOR_TAG,
    COLLECTOR_UPSTREAM,
    LB_IDLE_TIMEOUT_SECONDS,
    AwsService,
    AwsServiceArgs,
)


class AwsPlatform(Platform[EcrRegistry, AwsNetwork, TaskIdentity, AwsService, AwsMonitoring]):
    target = "aws"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.aws: AwsSettings = settings.require_aws()
        # Names carry the stack, so staging and prod can share an account.
        self.resource_prefix = f"{settings.project}-{settings.stack}"
        self.cache_prefix = f"{self.resource_prefix}-{PUBLIC_CACHE_PREFIX}"
        self._workspace: PrometheusWorkspace | None = None
        # Looked up once: the trust policies, the cache path and the topic policy all name it.
        self.account_id = aws.get_caller_identity_output().account_id

    def tags(self, component: str) -> dict[str, str]:
        return {**self.settings.labels, "component": component}

    @property
    def workspace(self) -> PrometheusWorkspace:
        """The stack's Prometheus workspace, shared by the service (remote write) and monitoring (rules)."""
        if self._workspace is None:
            self._workspace = PrometheusWorkspace(
                f"{self.prefix}-prometheus",
                PrometheusWorkspaceArgs(alias=self.resource_prefix, tags=self.tags("monitoring")),
            )
        return self._workspace

    def registry(self) -> EcrRegistry:
        return EcrRegistry(
            f"{self.prefix}-registry",
            EcrRegistryArgs(
                repository_name=self.resource_prefix,
                image_name=self.settings.image.name,
                keep_images=self.aws.registry_keep_images,
                tags=self.tags("registry"),
                force_delete=not self.settings.deletion_protection,
            ),
        )

    def network(self) -> AwsNetwork:
        return AwsNetwork(
            f"{self.prefix}-network",
            AwsNetworkArgs(
                name_prefix=self.resource_prefix,
                region=self.aws.region,
                vpc_cidr=self.aws.vpc_cidr,
                tags=self.tags("network"),
                api_port=self.settings.service.port,
                public=self.settings.service.public,
                allowed_cidrs=self.aws.allowed_cidrs,
            ),
        )

    def identity(self, registry: EcrRegistry, network: AwsNetwork) -> TaskIdentity:
        return TaskIdentity(
            f"{self.prefix}-identity",
            TaskIdentityArgs(
                name_prefix=self.resource_prefix,
                region=self.aws.region,
                account_id=self.account_id,
                repository_arn=registry.repository_arn,
                cache_prefix=self.cache_prefix,
                tags=self.tags("identity"),
            ),
        )

    def service(self, image: ServiceImage, network: AwsNetwork, identity: TaskIdentity) -> AwsService:
        settings, scaling = self.settings, self.settings.scaling
        # The load balancer appends the client's address to X-Forwarded-For.
        environment = settings.service.environment_behind(
            proxies=1, idle_timeout_seconds=LB_IDLE_TIMEOUT_SECONDS
        )
        collector_image = self.account_id.apply(
            lambda account: (
                f"{account}.dkr.ecr.{self.aws.region}.amazonaws.com/"
                f"{self.cache_prefix}/{COLLECTOR_UPSTREAM}:{COLLECTOR_TAG}"
            )
        )
        return AwsService(
            f"{self.prefix}-service",
            AwsServiceArgs(
                name_prefix=self.resource_prefix,
                region=self.aws.region,
                tags=self.tags("service"),
                image=image.ref,
                collector_image=collector_image,
                execution_role_name=identity.execution_role.name,
                execution_role_arn=identity.execution_role.arn,
                task_role_name=identity.task_role.name,
                task_role_arn=identity.task_role.arn,
                vpc_id=network.network_id,
                lb_subnet_ids=network.public_subnet_ids
                if settings.service.public
                else network.private_subnet_ids,
                task_subnet_ids=network.private_subnet_ids,
                lb_security_group_id=network.lb_security_group.id,
                task_security_group_id=network.task_security_group.id,
                public=settings.service.public,
                certificate_arn=self.aws.certificate_arn,
                domain=self.aws.domain,
                api_keys=settings.service.api_keys,
                environment=environment,
                cpu_units=self.aws.cpu_units,
                memory_mib=self.aws.memory_mib,
                min_tasks=max(1, scaling.min_instances),
                max_tasks=scaling.max_instances,
                requests_per_target=self.aws.requests_per_target,
                shutdown_grace_seconds=settings.service.shutdown_grace_seconds,
                log_retention_days=self.aws.log_retention_days,
                waf_rate_limit=self.aws.waf_rate_limit,
                workspace_arn=self.workspace.arn,
                remote_write_url=self.workspace.remote_write_url,
                scrape_interval_seconds=settings.alerting.scrape_interval_seconds,
                deletion_protection=settings.deletion_protection,
                port=settings.service.port,
            ),
        )

    def monitoring(self, service: AwsService, network: AwsNetwork) -> AwsMonitoring:
        # One workspace per stack: its series need no stack selector. The config's data-source URL is
        # not used here (Managed Grafana's data source takes the workspace's URL, an Output).
        config = monitoring_config(
            self.settings, [f"127.0.0.1:{self.settings.service.port}"], "https://aps-workspaces.invalid"
        )
        boards = dashboard_files(config)
        workspace = self.workspace
        return AwsMonitoring(
            f"{self.prefix}-monitoring",
            AwsMonitoringArgs(
                name_prefix=self.resource_prefix,
                region=self.aws.region,
                account_id=self.account_id,
                tags=self.tags("monitoring"),
                workspace_id=workspace.workspace.id,
                workspace_arn=workspace.arn,
                query_url=workspace.query_url,
                rule_groups=rule_groups(config),
                dashboards=boards,
                notification_email=self.settings.alerting.notification_email,
                scrape_interval_seconds=self.settings.alerting.scrape_interval_seconds,
                grafana_admin_groups=self.aws.grafana_admin_groups,
            ),
            opts=pulumi.ResourceOptions(depends_on=[service]),
        )

    def extra_outputs(
        self,
        image: ServiceImage,
        service: AwsService,
        monitoring: AwsMonitoring,
        edge: pulumi.ComponentResource | None = None,
    ) -> Mapping[str, pulumi.Input[Any]]:
        return {
            "image_digest": image.digest,
            "api_keys_secret": service.api_keys_secret.arn,
            "load_balancer_dns": service.load_balancer.dns_name,
            "alerts_topic": monitoring.topic.arn,
        }
