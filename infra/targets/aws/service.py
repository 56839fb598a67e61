"""The model API on ECS Fargate: cluster, task definition (the API plus a metrics collector), service in
the private subnets, Application Load Balancer with WAF, and Application Auto Scaling."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random
import yaml

from infra.platform import Service
from infra.targets.aws.policies import allow, document

API_CONTAINER = "api"
COLLECTOR_CONTAINER = "collector"
# Prometheus `job` label of the scraped series (contract C: "scamguard").
SCRAPE_JOB = "scamguard"
# AWS Distro for OpenTelemetry: scrapes the API on localhost and remote-writes to the workspace with
# SigV4 (the task role). Pulled through the ECR pull-through cache (no internet from the tasks).
COLLECTOR_UPSTREAM = "aws-observability/aws-otel-collector"
COLLECTOR_TAG = "v0.48.0"
# ECS sends SIGKILL stopTimeout seconds after SIGTERM (at most 120 on Fargate): the drain plus a margin.
EXIT_MARGIN_SECONDS = 2
# The load balancer keeps sending to a deregistering task for a moment: wait for that, then the drain.
DEREGISTRATION_EXTRA_SECONDS = 5
CPU_TARGET_UTILIZATION = 70
SCALE_IN_COOLDOWN_SECONDS = 300
SCALE_OUT_COOLDOWN_SECONDS = 60
HEALTH_CHECK_GRACE_SECONDS = 30
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
PredefinedMetric = (
    aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgsDict
)
# The load balancer closes idle connections after this; the container is told to keep them longer
# so the server never closes a connection the balancer is about to reuse.
LB_IDLE_TIMEOUT_SECONDS = 60
# Requests ECS's health check makes inside the container (the image has Python, no curl).
HEALTH_COMMAND = (
    "import os, urllib.request as u; "
    "u.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/readyz', timeout=2)"
)


def collector_config(remote_write_url: str, region: str, port: int, interval_seconds: int) -> str:
    """The collector's configuration (OpenTelemetry Collector YAML, passed as AOT_CONFIG_CONTENT).

    Scrapes the API's /metrics as job "scamguard". Each task labels its series with its own host name
    as `instance`, so the series of two tasks never merge; the metric names and labels stay those of
    the API (the rules and dashboards select them unchanged).
    """
    config = {
        "extensions": {"sigv4auth": {"region": region, "service": "aps"}, "health_check": {}},
        "receivers": {
            "prometheus": {
                "config": {
                    "global": {"scrape_interval": f"{interval_seconds}s", "scrape_timeout": "10s"},
                    "scrape_configs": [
                        {
                            "job_name": SCRAPE_JOB,
                            "metrics_path": "/metrics",
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                            "relabel_configs": [
                                {"target_label": "instance", "replacement": "${env:HOSTNAME}"},
                            ],
                        }
                    ],
                }
            }
        },
        "processors": {"batch": {"timeout": "10s"}},
        "exporters": {
            "prometheusremotewrite": {
                "endpoint": remote_write_url,
                "auth": {"authenticator": "sigv4auth"},
                "resource_to_telemetry_conversion": {"enabled": False},
            }
        },
        "service": {
            "extensions": ["sigv4auth", "health_check"],
            "pipelines": {
                "metrics": {
                    "receivers": ["prometheus"],
                    "processors": ["batch"],
                    "exporters": ["prometheusremotewrite"],
                }
            },
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


def container_definitions(
    *,
    image: str,
    collector_image: str,
    environment: Mapping[str, str],
    api_keys_secret_arn: str,
    log_group: str,
    region: str,
    port: int,
    stop_timeout: int,
    collector_config_yaml: str,
) -> list[dict[str, Any]]:
    """The task's containers, as ECS's RegisterTaskDefinition takes them.

    No key is ever None: the provider would send null, ECS would drop it, and every `up` would see a
    difference and replace the task definition.
    """

    def logs(stream_prefix: str) -> dict[str, Any]:
        return {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": stream_prefix,
                # A slow CloudWatch must not block the API's stdout: buffer, and drop when full.
                "mode": "non-blocking",
                "max-buffer-size": "25m",
            },
        }

    hardened = {
        "user": "10001:10001",
        "readonlyRootFilesystem": True,
        "privileged": False,
        "linuxParameters": {"capabilities": {"drop": ["ALL"]}, "initProcessEnabled": False},
    }
    return [
        {
            "name": API_CONTAINER,
            "image": image,
            "essential": True,
            "portMappings": [{"name": "http", "containerPort": port, "hostPort": port, "protocol": "tcp"}],
            "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
            "secrets": [{"name": "SCAMGUARD_API_KEYS", "valueFrom": api_keys_secret_arn}],
            "healthCheck": {
                "command": ["CMD", "/opt/venv/bin/python", "-c", HEALTH_COMMAND],
                "interval": 10,
                "timeout": 3,
                "retries": 3,
                "startPeriod": 15,
            },
            "stopTimeout": stop_timeout,
            "mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}],  # noqa: S108
            "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
            "logConfiguration": logs(API_CONTAINER),
            **hardened,
        },
        {
            "name": COLLECTOR_CONTAINER,
            "image": collector_image,
            # Metrics are not worth taking the API down for: a failing collector is restarted with the task
            # only when the API itself fails.
            "essential": False,
            "environment": [{"name": "AOT_CONFIG_CONTENT", "value": collector_config_yaml}],
            "dependsOn": [{"containerName": API_CONTAINER, "condition": "START"}],
            "memoryReservation": 64,
            "logConfiguration": logs(COLLECTOR_CONTAINER),
            **hardened,
        },
    ]


def waf_rules(rate_limit: int, metric_prefix: str) -> list[dict[str, Any]]:
    """WAF rules in the API's own JSON (CreateWebACL's Rules): a per-IP rate limit and AWS's managed
    rule groups. The common rule set's 8 KB body limit would block the API's batches (up to
    maxBodyBytes): it only counts; the API enforces its own limit."""

    def visibility(name: str) -> dict[str, Any]:
        return {
            "SampledRequestsEnabled": True,
            "CloudWatchMetricsEnabled": True,
            "MetricName": f"{metric_prefix}-{name}",
        }

    def managed(priority: int, name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
        statement: dict[str, Any] = {"VendorName": "AWS", "Name": name}
        if overrides:
            statement["RuleActionOverrides"] = [
                {"Name": rule, "ActionToUse": {"Count": {}}} for rule in overrides
            ]
        return {
            "Name": name,
            "Priority": priority,
            "Statement": {"ManagedRuleGroupStatement": statement},
            "OverrideAction": {"None": {}},
            "VisibilityConfig": visibility(name),
        }

    rules: list[dict[str, Any]] = []
    if rate_limit:
        rules.append(
            {
                "Name": "per-ip-rate",
                "Priority": 0,
                "Statement": {
                    "RateBasedStatement": {
                        "Limit": rate_limit,
                        "AggregateKeyType": "IP",
                        "EvaluationWindowSec": 300,
                    }
                },
                "Action": {"Block": {"CustomResponse": {"ResponseCode": 429}}},
                "VisibilityConfig": visibility("per-ip-rate"),
            }
        )
    rules += [
        managed(1, "AWSManagedRulesAmazonIpReputationList"),
        managed(2, "AWSManagedRulesCommonRuleSet", overrides=("SizeRestrictions_BODY",)),
        managed(3, "AWSManagedRulesKnownBadInputsRuleSet"),
    ]
    return rules


@dataclass
class AwsServiceArgs:
    name_prefix: str
    region: str
    tags: Mapping[str, str]
    image: pulumi.Input[str]  # by digest
    collector_image: pulumi.Input[str]
    execution_role_name: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    task_role_name: pulumi.Input[str]
    task_role_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    lb_subnet_ids: Sequence[pulumi.Input[str]]
    task_subnet_ids: Sequence[pulumi.Input[str]]
    lb_security_group_id: pulumi.Input[str]
    task_security_group_id: pulumi.Input[str]
    public: bool
    certificate_arn: str
    domain: str
    # Secret, comma-separated (SCAMGUARD_API_KEYS); None: one random key is generated.
    api_keys: pulumi.Input[str] | None
    environment: Mapping[str, str]
    cpu_units: int
    memory_mib: int
    min_tasks: int
    max_tasks: int
    requests_per_target: int
    shutdown_grace_seconds: int
    log_retention_days: int
    waf_rate_limit: int
    workspace_arn: pulumi.Input[str]
    remote_write_url: pulumi.Input[str]
    scrape_interval_seconds: int = 15
    deletion_protection: bool = False
    port: int = 8080


class AwsService(Service):
    """``url``: https://<domain or load balancer> (http:// only on a staging stack without a certificate)."""

    task_definition: aws.ecs.TaskDefinition
    ecs_service: aws.ecs.Service
    load_balancer: aws.lb.LoadBalancer
    api_keys_secret: aws.secretsmanager.Secret

    def __init__(self, name: str, args: AwsServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:aws:Service", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        prefix = args.name_prefix

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/ecs/{prefix}",
            retention_in_days=args.log_retention_days,
            tags=tags,
            opts=child,
        )
        keys = args.api_keys
        if keys is None:
            keys = random.RandomPassword(f"{name}-api-key", length=40, special=False, opts=child).result
        self.api_keys_secret = aws.secretsmanager.Secret(
            f"{name}-api-keys",
            name=f"{prefix}/api-keys",
            description="scamguard API keys, comma-separated (SCAMGUARD_API_KEYS)",
            recovery_window_in_days=7,
            tags=tags,
            opts=child,
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-api-keys-version",
            secret_id=self.api_keys_secret.id,
            secret_string=pulumi.Output.secret(keys),
            opts=child,
        )
        # The execution role reads exactly this secret and writes exactly this log group.
        aws.iam.RolePolicy(
            f"{name}-execution-runtime",
            role=args.execution_role_name,
            policy=pulumi.Output.all(log_group.arn, self.api_keys_secret.arn).apply(
                lambda arns: json.dumps(
                    document(
                        allow("WriteLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], f"{arns[0]}:*"),
                        allow("ReadApiKeys", ["secretsmanager:GetSecretValue"], arns[1]),
                    )
                )
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-task-remote-write",
            role=args.task_role_name,
            policy=pulumi.Output.from_input(args.workspace_arn).apply(
                lambda arn: json.dumps(document(allow("RemoteWriteMetrics", ["aps:RemoteWrite"], arn)))
            ),
            opts=child,
        )

        cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=prefix,
            settings=[{"name": "containerInsights", "value": "enabled"}],
            tags=tags,
            opts=child,
        )
        stop_timeout = min(120, args.shutdown_grace_seconds + EXIT_MARGIN_SECONDS)
        definitions = pulumi.Output.all(
            args.image, args.collector_image, self.api_keys_secret.arn, log_group.name, args.remote_write_url
        ).apply(
            lambda v: json.dumps(
                container_definitions(
                    image=v[0],
                    collector_image=v[1],
                    environment=args.environment,
                    api_keys_secret_arn=v[2],
                    log_group=v[3],
                    region=args.region,
                    port=args.port,
                    stop_timeout=stop_timeout,
                    collector_config_yaml=collector_config(
                        v[4], args.region, args.port, args.scrape_interval_seconds
                    ),
                )
            )
        )
        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=prefix,
            cpu=str(args.cpu_units),
            memory=str(args.memory_mib),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
            execution_role_arn=args.execution_role_arn,
            task_role_arn=args.task_role_arn,
            container_definitions=definitions,
            volumes=[{"name": "tmp"}],  # task storage for /tmp: the root filesystem is read-only
            tags=tags,
            opts=child,
        )

        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-lb",
            name=f"{prefix}"[:32],
            load_balancer_type="application",
            internal=not args.public,
            subnets=list(args.lb_subnet_ids),
            security_groups=[args.lb_security_group_id],
            drop_invalid_header_fields=True,
            idle_timeout=LB_IDLE_TIMEOUT_SECONDS,
            enable_deletion_protection=args.deletion_protection,
            tags=tags,
            opts=child,
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-targets",
            name=f"{prefix}"[:32],
            port=args.port,
            protocol="HTTP",
            target_type="ip",
            vpc_id=args.vpc_id,
            # A task leaving the service keeps its connections this long: the drain, plus the time
            # the load balancer still needs to stop sending to it.
            deregistration_delay=args.shutdown_grace_seconds + DEREGISTRATION_EXTRA_SECONDS,
            health_check={
                "path": "/readyz",
                "protocol": "HTTP",
                "matcher": "200",
                "interval": 10,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            tags=tags,
            opts=child,
        )
        forward: list[aws.lb.ListenerDefaultActionArgsDict] = [
            {"type": "forward", "target_group_arn": target_group.arn}
        ]
        if args.certificate_arn:
            listener = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=self.load_balancer.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=TLS_POLICY,
                certificate_arn=args.certificate_arn,
                default_actions=forward,
                tags=tags,
                opts=child,
            )
            aws.lb.Listener(
                f"{name}-http-redirect",
                load_balancer_arn=self.load_balancer.arn,
                port=80,
                protocol="HTTP",
                default_actions=[
                    {
                        "type": "redirect",
                        "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"},
                    }
                ],
                tags=tags,
                opts=child,
            )
        else:
            # Staging without a certificate: an internal load balancer, reachable from the VPC only.
            listener = aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=self.load_balancer.arn,
                port=80,
                protocol="HTTP",
                default_actions=forward,
                tags=tags,
                opts=child,
            )
        web_acl = aws.wafv2.WebAcl(
            f"{name}-waf",
            name=prefix,
            scope="REGIONAL",
            default_action={"allow": {}},
            visibility_config={
                "cloudwatch_metrics_enabled": True,
                "metric_name": prefix,
                "sampled_requests_enabled": True,
            },
            rule_json=json.dumps(waf_rules(args.waf_rate_limit, prefix)),
            tags=tags,
            opts=child,
        )
        aws.wafv2.WebAclAssociation(
            f"{name}-waf-association",
            resource_arn=self.load_balancer.arn,
            web_acl_arn=web_acl.arn,
            opts=child,
        )

        self.ecs_service = aws.ecs.Service(
            f"{name}-service",
            name=prefix,
            cluster=cluster.arn,
            task_definition=self.task_definition.arn,
            launch_type="FARGATE",
            platform_version="LATEST",
            desired_count=args.min_tasks,
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            health_check_grace_period_seconds=HEALTH_CHECK_GRACE_SECONDS,
            wait_for_steady_state=True,
            network_configuration={
                "subnets": list(args.task_subnet_ids),
                "security_groups": [args.task_security_group_id],
                "assign_public_ip": False,
            },
            load_balancers=[
                {
                    "target_group_arn": target_group.arn,
                    "container_name": API_CONTAINER,
                    "container_port": args.port,
                }
            ],
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            enable_execute_command=False,
            tags=tags,
            # The autoscaler owns the count: an `up` must not reset it to the minimum.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[listener], ignore_changes=["desiredCount"]),
        )
        resource_id = pulumi.Output.concat("service/", cluster.name, "/", self.ecs_service.name)
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=resource_id,
            min_capacity=args.min_tasks,
            max_capacity=args.max_tasks,
            opts=child,
        )

        def tracking(
            suffix: str,
            metric: PredefinedMetric,
            value: float,
        ) -> None:
            aws.appautoscaling.Policy(
                f"{name}-scale-{suffix}",
                name=f"{prefix}-{suffix}",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration={
                    "predefined_metric_specification": metric,
                    "target_value": value,
                    "scale_in_cooldown": SCALE_IN_COOLDOWN_SECONDS,
                    "scale_out_cooldown": SCALE_OUT_COOLDOWN_SECONDS,
                },
                opts=child,
            )

        tracking("cpu", {"predefined_metric_type": "ECSServiceAverageCPUUtilization"}, CPU_TARGET_UTILIZATION)
        tracking(
            "requests",
            {
                "predefined_metric_type": "ALBRequestCountPerTarget",
                # app/<lb>/<id>/targetgroup/<tg>/<id>: without it the policy is refused.
                "resource_label": pulumi.Output.concat(
                    self.load_balancer.arn_suffix, "/", target_group.arn_suffix
                ),
            },
            args.requests_per_target,
        )

        host = args.domain or None
        scheme = "https" if args.certificate_arn else "http"
        self.url = (
            pulumi.Output.from_input(f"{scheme}://{host}")
            if host
            else self.load_balancer.dns_name.apply(lambda dns: f"{scheme}://{dns}")
        )
        self.scrape_targets = pulumi.Output.from_input([])  # the collector in each task scrapes it
        self.register_outputs({"url": self.url})
