"""The AWS target under Pulumi's mocks: the real program for aws-staging and aws-prod (and a variant)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from infra import preview
from infra.monitoring import dashboards, rule_groups
from infra.monitoring.dashboards import DATASOURCE_UID
from infra.platform import monitoring_config
from infra.targets.aws.service import API_CONTAINER, COLLECTOR_CONTAINER

from . import mocked_program
from .mocked_program import Record, unwrap

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE = "aws:iam/role:Role"
LB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
API_KEYS = "key-one-0123456789,key-two-9876543210"


class Account(Record):
    @property
    def prefix(self) -> str:
        return f"scamguard-{self.stack}"

    def containers(self) -> dict[str, dict[str, Any]]:
        definitions = json.loads(self.one(TASK_DEFINITION).inputs["containerDefinitions"])
        return {c["name"]: c for c in definitions}

    @property
    def api(self) -> dict[str, Any]:
        return self.containers()[API_CONTAINER]

    def policy(self, name: str) -> dict[str, Any]:
        return json.loads(self.one(ROLE_POLICY, name).inputs["policy"])

    def role_policies(self, role_name: str) -> list[dict[str, Any]]:
        return [
            json.loads(r.inputs["policy"]) for r in self.of_type(ROLE_POLICY) if r.inputs["role"] == role_name
        ]


def run(
    stack: str, overrides: dict[str, str] | None = None, secrets: dict[str, str] | None = None
) -> Account:
    return mocked_program.run_stack(Account, stack, overrides, secrets)


@pytest.fixture(scope="module")
def staging() -> Account:
    return run("aws-staging")


@pytest.fixture(scope="module")
def prod() -> Account:
    return run(
        "aws-prod",
        overrides={"scamguard:notificationEmail": "oncall@example.com"},
        secrets={"scamguard:apiKeys": API_KEYS},
    )


def test_components_are_the_five_concerns() -> None:
    graph = preview.graph_in_subprocess("aws-prod")
    top = {r["type"] for r in graph["resources"] if r["parent"].startswith("pulumi:")}
    assert top == {
        "scamguard:aws:EcrRegistry",
        "scamguard:aws:Network",
        "scamguard:aws:TaskIdentity",
        "scamguard:image:ServiceImage",
        "scamguard:aws:Service",
        "scamguard:aws:Monitoring",
        "scamguard:aws:PrometheusWorkspace",
    }


# --------------------------------------------------------------------------- registry


def test_repository_is_immutable_scanned_encrypted_and_pruned(prod: Account) -> None:
    repository = prod.one("aws:ecr/repository:Repository").inputs
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
    assert repository["forceDelete"] is False  # prod has deletion protection
    rules = json.loads(prod.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])["rules"]
    assert [r["selection"]["tagStatus"] for r in rules] == ["untagged", "any"]
    assert rules[1]["selection"]["countNumber"] == 20


def test_image_is_pushed_with_an_ecr_token_and_deployed_by_digest(prod: Account) -> None:
    build = prod.one("docker-build:index:Image").inputs
    assert build["push"] is True
    assert preview._SECRET_SIG_KEY in json.dumps(build["registries"])
    registry = (
        unwrap(build["registries"])[0]
        if not isinstance(build["registries"], list)
        else build["registries"][0]
    )
    assert unwrap(registry["address"]) == "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert unwrap(registry["username"]) == "AWS"
    assert prod.api["image"].startswith("123456789012.dkr.ecr.eu-west-1.amazonaws.com/scamguard-aws-prod/")
    assert "@sha256:" in prod.api["image"]


def test_immutable_tags_get_the_revision(prod: Account) -> None:
    graph = preview.graph_in_subprocess("aws-prod", {"scamguard:imageRevision": "0123456789abcdef"})
    build = next(r for r in graph["resources"] if r["type"] == "docker-build:index:Image")
    assert build["inputs"]["tags"][0].endswith(":0.1.0-0123456789ab")


# --------------------------------------------------------------------------- network


def test_tasks_are_private_with_endpoints_and_no_nat(prod: Account) -> None:
    assert prod.of_type("aws:ec2/natGateway:NatGateway") == []
    subnets = {r.name: r.inputs for r in prod.of_type("aws:ec2/subnet:Subnet")}
    assert len({s["availabilityZone"] for s in subnets.values()}) == 2
    assert all(s["mapPublicIpOnLaunch"] is False for s in subnets.values())
    routes = {r.name: r.inputs for r in prod.of_type("aws:ec2/routeTable:RouteTable")}
    assert "routes" not in routes["scamguard-network-private-routes"]  # no way out but the endpoints
    services = {
        r.inputs["serviceName"].removeprefix("com.amazonaws.eu-west-1.")
        for r in prod.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert services == {"s3", "ecr.api", "ecr.dkr", "logs", "secretsmanager", "aps-workspaces"}
    network = prod.one(ECS_SERVICE).inputs["networkConfiguration"]
    assert network["assignPublicIp"] is False
    private_ids = {f"{name}-id" for name in subnets if "private" in name}
    assert set(network["subnets"]) == private_ids


def test_security_groups_connect_by_reference(prod: Account, staging: Account) -> None:
    for account in (prod, staging):
        for rule in account.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
            if rule.inputs["securityGroupId"] != "scamguard-network-lb-sg-id":
                assert "cidrIpv4" not in rule.inputs, rule.name  # tasks and endpoints: by reference only
        task_in = account.one(
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "scamguard-network-task-in-lb"
        )
        assert task_in.inputs["referencedSecurityGroupId"] == "scamguard-network-lb-sg-id"
        assert task_in.inputs["fromPort"] == task_in.inputs["toPort"] == 8080
    lb_sources = {
        r.inputs["cidrIpv4"]
        for r in staging.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == "scamguard-network-lb-sg-id"
    }
    assert lb_sources == {"10.40.0.0/16"}  # internal: the VPC only


# --------------------------------------------------------------------------- identity


def test_execution_role_is_scoped_to_its_resources(prod: Account) -> None:
    trust = json.loads(prod.one(ROLE, "scamguard-identity-execution").inputs["assumeRolePolicy"])
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    statements = [s for p in prod.role_policies("scamguard-aws-prod-execution") for s in p["Statement"]]
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["EcrAuth"]["Resource"] == ["*"]  # GetAuthorizationToken has no resource form
    assert by_sid["EcrAuth"]["Action"] == ["ecr:GetAuthorizationToken"]
    assert by_sid["PullServiceImage"]["Resource"] == [
        "arn:aws:ecr:eu-west-1:123456789012:repository/scamguard-aws-prod/scamguard-api"
    ]
    assert by_sid["WriteLogs"]["Resource"] == [
        "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/scamguard-aws-prod:*"
    ]
    assert by_sid["ReadApiKeys"]["Resource"][0].startswith("arn:aws:secretsmanager:")
    wildcard = [s["Sid"] for s in statements if "*" in s["Resource"]]
    assert wildcard == ["EcrAuth"]


def test_task_role_only_writes_metrics(prod: Account) -> None:
    (policy,) = prod.role_policies("scamguard-aws-prod-task")
    assert policy["Statement"] == [
        {
            "Sid": "RemoteWriteMetrics",
            "Effect": "Allow",
            "Action": ["aps:RemoteWrite"],
            "Resource": ["arn:aws:aps:eu-west-1:123456789012:workspace/ws-mock-1234"],
        }
    ]


# --------------------------------------------------------------------------- the service


def test_api_container_is_hardened(prod: Account) -> None:
    api = prod.api
    assert api["user"] == "10001:10001"
    assert api["readonlyRootFilesystem"] is True
    assert api["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
    assert api["essential"] is True
    assert api["healthCheck"]["command"][:2] == ["CMD", "/opt/venv/bin/python"]
    assert api["logConfiguration"]["options"]["mode"] == "non-blocking"
    assert api["stopTimeout"] == 12  # the 10 s drain and 2 s to exit
    environment = {e["name"]: e["value"] for e in api["environment"]}
    assert environment["SCAMGUARD_FORWARDED_HOPS"] == "1"
    # Idle connections outlive the load balancer's own idle timeout.
    load_balancer = prod.one(LB)
    assert int(environment["SCAMGUARD_KEEP_ALIVE_SECONDS"]) > load_balancer.inputs["idleTimeout"]
    assert "SCAMGUARD_API_KEYS" not in environment
    secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:scamguard-aws-prod/api-keys-AbCdEf"
    assert api["secrets"] == [{"name": "SCAMGUARD_API_KEYS", "valueFrom": secret_arn}]


def test_no_null_anywhere_in_the_container_definitions(prod: Account, staging: Account) -> None:
    """A null would make every `up` replace the task definition (ECS drops it and reports a difference)."""

    def nulls(value: Any, path: str = "") -> list[str]:
        if value is None:
            return [path]
        if isinstance(value, dict):
            return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
        if isinstance(value, list):
            return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
        return []

    for account in (prod, staging):
        assert nulls(json.loads(account.one(TASK_DEFINITION).inputs["containerDefinitions"])) == []


def test_api_keys_come_from_secrets_manager(prod: Account, staging: Account) -> None:
    version = prod.one("aws:secretsmanager/secretVersion:SecretVersion").inputs["secretString"]
    assert preview._SECRET_SIG_KEY in version
    assert unwrap(version) == API_KEYS
    assert staging.one("random:index/randomPassword:RandomPassword", "scamguard-service-api-key")


def test_collector_scrapes_the_api_as_job_scamguard(prod: Account) -> None:
    collector = prod.containers()[COLLECTOR_CONTAINER]
    assert collector["essential"] is False
    assert collector["image"] == (
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/scamguard-aws-prod-ecr-public/"
        "aws-observability/aws-otel-collector:v0.48.0"
    )
    config = yaml.safe_load(
        next(e["value"] for e in collector["environment"] if e["name"] == "AOT_CONFIG_CONTENT")
    )
    scrape = config["receivers"]["prometheus"]["config"]["scrape_configs"][0]
    assert scrape["job_name"] == "scamguard"
    assert scrape["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]
    assert scrape["relabel_configs"] == [{"target_label": "instance", "replacement": "${env:HOSTNAME}"}]
    exporter = config["exporters"]["prometheusremotewrite"]
    assert (
        exporter["endpoint"]
        == "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-mock-1234/api/v1/remote_write"
    )
    assert config["extensions"]["sigv4auth"] == {"region": "eu-west-1", "service": "aps"}


def test_ecs_service_rolls_back_waits_and_leaves_the_count_to_the_autoscaler(prod: Account) -> None:
    service = prod.one(ECS_SERVICE)
    assert service.inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service.inputs["waitForSteadyState"] is True
    assert service.inputs["healthCheckGracePeriodSeconds"] == 30
    assert service.inputs["launchType"] == "FARGATE"
    assert "desiredCount" in service.ignore_changes


def test_task_definition_fits_fargate(prod: Account, staging: Account) -> None:
    assert (prod.one(TASK_DEFINITION).inputs["cpu"], prod.one(TASK_DEFINITION).inputs["memory"]) == (
        "1024",
        "2048",
    )
    assert (staging.one(TASK_DEFINITION).inputs["cpu"], staging.one(TASK_DEFINITION).inputs["memory"]) == (
        "512",
        "1024",
    )
    assert prod.one(TASK_DEFINITION).inputs["volumes"] == [{"name": "tmp"}]


def test_load_balancer_health_check_drain_and_listeners(prod: Account, staging: Account) -> None:
    group = prod.one("aws:lb/targetGroup:TargetGroup").inputs
    assert group["healthCheck"]["path"] == "/readyz"
    assert group["deregistrationDelay"] == 15  # the drain plus 5 s
    assert group["targetType"] == "ip"
    lb = prod.one(LB).inputs
    assert lb["internal"] is False
    assert lb["dropInvalidHeaderFields"] is True
    assert lb["enableDeletionProtection"] is True
    listeners = {r.inputs["port"]: r.inputs for r in prod.of_type(LISTENER)}
    assert listeners[443]["protocol"] == "HTTPS"
    assert listeners[443]["certificateArn"].startswith("arn:aws:acm:")
    assert listeners[80]["defaultActions"][0]["type"] == "redirect"
    assert prod.outputs["service_url"] == "https://api.scamguard.example.com"
    assert staging.one(LB).inputs["internal"] is True
    (http,) = staging.of_type(LISTENER)
    assert (http.inputs["port"], http.inputs["protocol"]) == (80, "HTTP")
    assert staging.outputs["service_url"].startswith("http://internal-scamguard-aws-staging")


def test_waf_limits_each_ip_and_applies_managed_rules(prod: Account) -> None:
    rules = json.loads(prod.one("aws:wafv2/webAcl:WebAcl").inputs["ruleJson"])
    rate = rules[0]["Statement"]["RateBasedStatement"]
    assert (rate["Limit"], rate["AggregateKeyType"]) == (3000, "IP")
    managed = {r["Statement"]["ManagedRuleGroupStatement"]["Name"] for r in rules[1:]}
    assert managed == {
        "AWSManagedRulesAmazonIpReputationList",
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
    }
    common = next(r for r in rules if r["Name"] == "AWSManagedRulesCommonRuleSet")
    # The API's batches are larger than the rule set's 8 KB body limit: that rule only counts.
    overrides = common["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"]
    assert overrides == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    association = prod.one("aws:wafv2/webAclAssociation:WebAclAssociation").inputs
    assert association["resourceArn"].endswith("loadbalancer/app/scamguard-aws-prod/50dc6c495c0c9188")


def test_autoscaling_tracks_cpu_and_requests_per_target(prod: Account) -> None:
    target = prod.one("aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 10)
    assert target["resourceId"] == "service/scamguard-aws-prod/scamguard-aws-prod"
    policies = {
        r.inputs["name"]: r.inputs["targetTrackingScalingPolicyConfiguration"]
        for r in prod.of_type("aws:appautoscaling/policy:Policy")
    }
    cpu = policies["scamguard-aws-prod-cpu"]
    assert cpu["predefinedMetricSpecification"] == {"predefinedMetricType": "ECSServiceAverageCPUUtilization"}
    requests = policies["scamguard-aws-prod-requests"]["predefinedMetricSpecification"]
    assert requests["predefinedMetricType"] == "ALBRequestCountPerTarget"
    assert requests["resourceLabel"] == (
        "app/scamguard-aws-prod/50dc6c495c0c9188/targetgroup/scamguard-aws-prod/73e2d6bc24d8a067"
    )
    assert policies["scamguard-aws-prod-requests"]["targetValue"] == 6000


# --------------------------------------------------------------------------- monitoring


def test_rules_alertmanager_and_sns(prod: Account) -> None:
    config = monitoring_config(prod.settings, ["127.0.0.1:8080"], "https://aps-workspaces.invalid")
    namespace = yaml.safe_load(prod.one("aws:amp/ruleGroupNamespace:RuleGroupNamespace").inputs["data"])
    assert namespace["groups"] == rule_groups(config)
    definition = yaml.safe_load(
        prod.one("aws:amp/alertManagerDefinition:AlertManagerDefinition").inputs["definition"]
    )
    alertmanager = yaml.safe_load(definition["alertmanager_config"])
    sns = alertmanager["receivers"][0]["sns_configs"][0]
    assert sns["topic_arn"] == "arn:aws:sns:eu-west-1:123456789012:scamguard-aws-prod-alerts"
    subscription = prod.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "oncall@example.com")
    assert prod.one("aws:sns/topic:Topic").inputs["kmsMasterKeyId"] == "alias/aws/sns"
    statement = json.loads(prod.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"])["Statement"][0]
    assert statement["Principal"] == {"Service": "aps.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"] == {
        "aws:SourceArn": "arn:aws:aps:eu-west-1:123456789012:workspace/ws-mock-1234"
    }


def test_grafana_has_the_workspace_as_sigv4_source_and_the_dashboards(prod: Account) -> None:
    workspace = prod.one("aws:grafana/workspace:Workspace").inputs
    assert workspace["permissionType"] == "CUSTOMER_MANAGED"
    assert workspace["authenticationProviders"] == ["AWS_SSO"]
    source = prod.one("grafana:oss/dataSource:DataSource").inputs
    assert source["uid"] == DATASOURCE_UID
    assert source["url"] == "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-mock-1234"
    assert json.loads(source["jsonDataEncoded"])["sigV4Auth"] is True
    (query,) = prod.role_policies("scamguard-aws-prod-grafana")
    assert query["Statement"][0]["Resource"] == ["arn:aws:aps:eu-west-1:123456789012:workspace/ws-mock-1234"]
    assert all(a.startswith("aps:") for a in query["Statement"][0]["Action"])
    config = monitoring_config(prod.settings, ["127.0.0.1:8080"], "https://aps-workspaces.invalid")
    boards = {
        json.loads(r.inputs["configJson"])["uid"]: json.loads(r.inputs["configJson"])
        for r in prod.of_type("grafana:oss/dashboard:Dashboard")
    }
    assert boards == dashboards(config)
    assert prod.outputs["grafana_url"] == "https://g-mock1234.grafana-workspace.eu-west-1.amazonaws.com"


def test_outputs(prod: Account) -> None:
    assert set(prod.outputs) >= {
        "service_url",
        "image_ref",
        "prometheus_url",
        "grafana_url",
        "api_keys_secret",
    }
    assert (
        prod.outputs["prometheus_url"]
        == "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-mock-1234"
    )
