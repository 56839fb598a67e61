"""Monitoring on AWS: an Amazon Managed Service for Prometheus workspace with the project's rules and an
Alertmanager definition that notifies through SNS, and Amazon Managed Grafana with the project's data
source and dashboards provisioned through Grafana's API.

Managed Grafana rather than Grafana on ECS: it queries the workspace with SigV4 through its own IAM
role (nothing to sign in our code), users sign in with IAM Identity Center, and there is no Grafana to
patch or persist. Its API takes the dashboards as code (pulumiverse-grafana) with a service-account token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumiverse_grafana as grafana
import yaml

from infra.monitoring.dashboards import DATASOURCE_UID
from infra.platform import Monitoring
from infra.targets.aws.policies import allow, document, service_trust

# Managed Grafana's service-account tokens live at most 30 days; `up` replaces an expired one.
GRAFANA_TOKEN_SECONDS = 30 * 24 * 3600
GRAFANA_VERSION = "10.4"
AMP_QUERY_ACTIONS = (
    "aps:GetLabels",
    "aps:GetMetricMetadata",
    "aps:GetSeries",
    "aps:QueryMetrics",
    "aps:DescribeWorkspace",
)


def alertmanager_definition(topic_arn: str, region: str) -> str:
    """The workspace's Alertmanager: every alert to the SNS topic, grouped per alert name."""
    config = {
        "route": {
            "receiver": "sns",
            "group_by": ["alertname"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "sns",
                "sns_configs": [{"topic_arn": topic_arn, "sigv4": {"region": region}, "send_resolved": True}],
            }
        ],
    }
    return yaml.safe_dump({"alertmanager_config": yaml.safe_dump(config, sort_keys=False)}, sort_keys=False)


@dataclass
class PrometheusWorkspaceArgs:
    alias: str
    tags: Mapping[str, str]


class PrometheusWorkspace(pulumi.ComponentResource):
    """The stack's AMP workspace: the service's collector writes to it, monitoring adds rules to it."""

    workspace: aws.amp.Workspace
    arn: pulumi.Output[str]
    remote_write_url: pulumi.Output[str]
    query_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: PrometheusWorkspaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:aws:PrometheusWorkspace", name, None, opts)
        self.workspace = aws.amp.Workspace(
            f"{name}-workspace",
            alias=args.alias,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.workspace.arn
        endpoint = (
            self.workspace.prometheus_endpoint
        )  # https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>/
        self.remote_write_url = endpoint.apply(lambda e: e.rstrip("/") + "/api/v1/remote_write")
        self.query_url = endpoint.apply(lambda e: e.rstrip("/"))
        self.register_outputs({"arn": self.arn, "remote_write_url": self.remote_write_url})


@dataclass
class AwsMonitoringArgs:
    name_prefix: str
    region: str
    account_id: pulumi.Output[str]
    tags: Mapping[str, str]
    workspace_id: pulumi.Input[str]
    workspace_arn: pulumi.Input[str]
    query_url: pulumi.Input[str]
    rule_groups: Sequence[Mapping[str, Any]]
    dashboards: Mapping[str, str]  # uid -> dashboard JSON
    notification_email: str
    scrape_interval_seconds: int
    grafana_admin_groups: Sequence[str] = ()


class AwsMonitoring(Monitoring):
    topic: aws.sns.Topic

    def __init__(
        self, name: str, args: AwsMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:aws:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        aws.amp.RuleGroupNamespace(
            f"{name}-rules",
            name=args.name_prefix,
            workspace_id=args.workspace_id,
            data=yaml.safe_dump({"groups": [dict(g) for g in args.rule_groups]}, sort_keys=False),
            opts=child,
        )
        account_id = args.account_id
        self.topic = aws.sns.Topic(
            f"{name}-alerts",
            name=f"{args.name_prefix}-alerts",
            kms_master_key_id="alias/aws/sns",
            tags=tags,
            opts=child,
        )
        # Only this workspace may publish (the service principal, on behalf of this account and workspace).
        aws.sns.TopicPolicy(
            f"{name}-alerts-policy",
            arn=self.topic.arn,
            policy=pulumi.Output.all(self.topic.arn, account_id, args.workspace_arn).apply(
                lambda v: json.dumps(
                    document(
                        {
                            "Sid": "WorkspacePublishes",
                            "Effect": "Allow",
                            "Principal": {"Service": "aps.amazonaws.com"},
                            "Action": ["sns:GetTopicAttributes", "sns:Publish"],
                            "Resource": [v[0]],
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": v[1]},
                                "ArnEquals": {"aws:SourceArn": v[2]},
                            },
                        }
                    )
                )
            ),
            opts=child,
        )
        if args.notification_email:
            aws.sns.TopicSubscription(
                f"{name}-alerts-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=args.notification_email,
                opts=child,
            )
        aws.amp.AlertManagerDefinition(
            f"{name}-alertmanager",
            workspace_id=args.workspace_id,
            definition=self.topic.arn.apply(lambda arn: alertmanager_definition(arn, args.region)),
            opts=child,
        )

        # Managed Grafana reads the workspace with its own role: query actions on this workspace only.
        grafana_role = aws.iam.Role(
            f"{name}-grafana-role",
            name=f"{args.name_prefix}-grafana",
            description="Amazon Managed Grafana queries the scamguard Prometheus workspace",
            assume_role_policy=account_id.apply(
                lambda account: json.dumps(
                    service_trust(
                        "grafana.amazonaws.com",
                        account,
                        f"arn:aws:grafana:{args.region}:{account}:/workspaces/*",
                    )
                )
            ),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-grafana-query",
            role=grafana_role.name,
            policy=pulumi.Output.from_input(args.workspace_arn).apply(
                lambda arn: json.dumps(document(allow("QueryWorkspace", AMP_QUERY_ACTIONS, arn)))
            ),
            opts=child,
        )
        workspace = aws.grafana.Workspace(
            f"{name}-grafana",
            name=args.name_prefix,
            account_access_type="CURRENT_ACCOUNT",
            authentication_providers=["AWS_SSO"],
            permission_type="CUSTOMER_MANAGED",
            role_arn=grafana_role.arn,
            data_sources=["PROMETHEUS"],
            grafana_version=GRAFANA_VERSION,
            tags=tags,
            opts=child,
        )
        if args.grafana_admin_groups:
            aws.grafana.RoleAssociation(
                f"{name}-grafana-admins",
                role="ADMIN",
                group_ids=list(args.grafana_admin_groups),
                workspace_id=workspace.id,
                opts=child,
            )
        account = aws.grafana.WorkspaceServiceAccount(
            f"{name}-grafana-provisioner",
            name="pulumi-provisioner",
            grafana_role="ADMIN",
            workspace_id=workspace.id,
            opts=child,
        )
        token = aws.grafana.WorkspaceServiceAccountToken(
            f"{name}-grafana-token",
            name="pulumi",
            service_account_id=account.service_account_id,
            seconds_to_live=GRAFANA_TOKEN_SECONDS,
            workspace_id=workspace.id,
            opts=child,
        )
        provider = grafana.Provider(
            f"{name}-grafana-api",
            url=workspace.endpoint.apply(lambda e: f"https://{e}"),
            auth=pulumi.Output.secret(token.key),
            opts=child,
        )
        in_grafana = pulumi.ResourceOptions(parent=self, provider=provider)
        grafana.oss.DataSource(
            f"{name}-grafana-datasource",
            name="Prometheus",
            uid=DATASOURCE_UID,  # the dashboards refer to this uid
            type="prometheus",
            url=args.query_url,
            is_default=True,
            json_data_encoded=json.dumps(
                {
                    "httpMethod": "POST",
                    "sigV4Auth": True,
                    "sigV4AuthType": "ec2_iam_role",  # Managed Grafana's workspace role
                    "sigV4Region": args.region,
                    "timeInterval": f"{args.scrape_interval_seconds}s",
                }
            ),
            opts=in_grafana,
        )
        folder = grafana.oss.Folder(
            f"{name}-grafana-folder", title="scamguard", uid="scamguard", opts=in_grafana
        )
        for uid, model in sorted(args.dashboards.items()):
            grafana.oss.Dashboard(
                f"{name}-dashboard-{uid}",
                folder=folder.uid,
                config_json=model,
                overwrite=True,
                opts=in_grafana,
            )
        self.prometheus_url = pulumi.Output.from_input(args.query_url)
        self.grafana_url = workspace.endpoint.apply(lambda e: f"https://{e}")
        self.register_outputs({"prometheus_url": self.prometheus_url, "grafana_url": self.grafana_url})
