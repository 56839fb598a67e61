"""Every document the AWS resources carry, against AWS's own API model, offline.

The mocked stack is replayed into moto (``mock_aws``), call by call as the provider would make them:
botocore validates each call's parameters against the service's API model (names, types, required
fields), and moto adds the service's own checks (IAM policy grammar, subnets that exist...).
parliament flags IAM actions that do not exist; promtool and amtool check the rules and the
Alertmanager definition. Each check is first shown to fail on a deliberately broken copy.
"""

from __future__ import annotations

import copy
import json
import pathlib
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import jsonschema
import pytest
import yaml
from moto import mock_aws

from tests.tools import require_tool

from .test_aws import Account, run

REGION = "eu-west-1"
PARLIAMENT = ("parliament==1.6.4", "setuptools<80")  # parliament imports pkg_resources
INVALID = (botocore.exceptions.ParamValidationError, botocore.exceptions.ClientError)


@pytest.fixture(scope="module")
def accounts() -> dict[str, Account]:
    return {
        "aws-staging": run("aws-staging"),
        "aws-prod": run("aws-prod", overrides={"scamguard:notificationEmail": "oncall@example.com"}),
    }


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def task_definition_call(account: Account) -> dict[str, Any]:
    inputs = account.one("aws:ecs/taskDefinition:TaskDefinition").inputs
    return {
        "family": inputs["family"],
        "cpu": inputs["cpu"],
        "memory": inputs["memory"],
        "networkMode": inputs["networkMode"],
        "requiresCompatibilities": inputs["requiresCompatibilities"],
        "runtimePlatform": inputs["runtimePlatform"],
        "executionRoleArn": inputs["executionRoleArn"],
        "taskRoleArn": inputs["taskRoleArn"],
        "volumes": inputs["volumes"],
        "containerDefinitions": json.loads(inputs["containerDefinitions"]),
    }


def register_network(account: Account) -> tuple[dict[str, str], dict[str, str]]:
    """The VPC, subnets and security groups in moto; returns logical id -> moto id maps."""
    ec2 = client("ec2")
    vpc = account.one("aws:ec2/vpc:Vpc").inputs
    vpc_id = ec2.create_vpc(CidrBlock=vpc["cidrBlock"])["Vpc"]["VpcId"]
    subnets = {
        f"{r.name}-id": ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=r.inputs["cidrBlock"], AvailabilityZone=r.inputs["availabilityZone"]
        )["Subnet"]["SubnetId"]
        for r in account.of_type("aws:ec2/subnet:Subnet")
    }
    groups = {
        f"{r.name}-id": ec2.create_security_group(
            GroupName=r.name, Description=r.inputs["description"], VpcId=vpc_id
        )["GroupId"]
        for r in account.of_type("aws:ec2/securityGroup:SecurityGroup")
    }
    return subnets, groups


# --------------------------------------------------------------------------- ECS and autoscaling


@pytest.mark.parametrize("stack", ["aws-staging", "aws-prod"])
def test_task_definition_service_and_scaling_register(
    accounts: dict[str, Account], stack: str, aws: None
) -> None:
    account = accounts[stack]
    subnets, groups = register_network(account)
    ecs = client("ecs")
    cluster = account.one("aws:ecs/cluster:Cluster").inputs
    ecs.create_cluster(clusterName=cluster["name"], settings=cluster["settings"])
    registered = ecs.register_task_definition(**task_definition_call(account))["taskDefinition"]
    assert {c["name"] for c in registered["containerDefinitions"]} == {"api", "collector"}
    service = account.one("aws:ecs/service:Service").inputs
    network = service["networkConfiguration"]
    ecs.create_service(
        cluster=cluster["name"],
        serviceName=service["name"],
        taskDefinition=registered["taskDefinitionArn"],
        desiredCount=int(service["desiredCount"]),
        launchType=service["launchType"],
        platformVersion=service["platformVersion"],
        deploymentConfiguration={
            "deploymentCircuitBreaker": service["deploymentCircuitBreaker"],
            "minimumHealthyPercent": int(service["deploymentMinimumHealthyPercent"]),
            "maximumPercent": int(service["deploymentMaximumPercent"]),
        },
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [subnets[s] for s in network["subnets"]],
                "securityGroups": [groups[g] for g in network["securityGroups"]],
                "assignPublicIp": "ENABLED" if network["assignPublicIp"] else "DISABLED",
            }
        },
        healthCheckGracePeriodSeconds=int(service["healthCheckGracePeriodSeconds"]),
        propagateTags=service["propagateTags"],
        enableECSManagedTags=service["enableEcsManagedTags"],
    )
    autoscaling = client("application-autoscaling")
    target = account.one("aws:appautoscaling/target:Target").inputs
    autoscaling.register_scalable_target(
        ServiceNamespace=target["serviceNamespace"],
        ResourceId=target["resourceId"],
        ScalableDimension=target["scalableDimension"],
        MinCapacity=int(target["minCapacity"]),
        MaxCapacity=int(target["maxCapacity"]),
    )
    for policy in account.of_type("aws:appautoscaling/policy:Policy"):
        autoscaling.put_scaling_policy(**scaling_policy_call(policy.inputs))


def scaling_policy_call(inputs: dict[str, Any]) -> dict[str, Any]:
    tracking = inputs["targetTrackingScalingPolicyConfiguration"]
    metric = tracking["predefinedMetricSpecification"]
    specification = {"PredefinedMetricType": metric["predefinedMetricType"]}
    if "resourceLabel" in metric:
        specification["ResourceLabel"] = metric["resourceLabel"]
    return {
        "PolicyName": inputs["name"],
        "ServiceNamespace": inputs["serviceNamespace"],
        "ResourceId": inputs["resourceId"],
        "ScalableDimension": inputs["scalableDimension"],
        "PolicyType": inputs["policyType"],
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(tracking["targetValue"]),
            "PredefinedMetricSpecification": specification,
            "ScaleInCooldown": int(tracking["scaleInCooldown"]),
            "ScaleOutCooldown": int(tracking["scaleOutCooldown"]),
        },
    }


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c["containerDefinitions"][0]["portMappings"][0].update(containerPort="8080"),
        lambda c: c["containerDefinitions"][0].update(readOnlyRootFileSystem=True),  # not the API's spelling
        lambda c: c["containerDefinitions"][1].pop("image"),
        lambda c: c["containerDefinitions"][0]["logConfiguration"].update(logDriver=None),
    ],
    ids=["port-as-string", "misspelt-field", "missing-image", "null-value"],
)
def test_task_definition_validation_fails_on_a_broken_copy(
    accounts: dict[str, Account], aws: None, break_it
) -> None:
    call = task_definition_call(accounts["aws-prod"])
    ecs = client("ecs")
    ecs.register_task_definition(**copy.deepcopy(call))
    break_it(call)
    with pytest.raises(INVALID):
        ecs.register_task_definition(**call)


# --------------------------------------------------------------------------- IAM


@pytest.mark.parametrize("stack", ["aws-staging", "aws-prod"])
def test_roles_and_policies_are_accepted_by_iam(accounts: dict[str, Account], stack: str, aws: None) -> None:
    account = accounts[stack]
    iam = boto3.client("iam", region_name="us-east-1")
    for role in account.of_type("aws:iam/role:Role"):
        iam.create_role(
            RoleName=role.inputs["name"], AssumeRolePolicyDocument=role.inputs["assumeRolePolicy"]
        )
        # moto checks a trust policy's grammar on update (sts actions only, no Resource, a valid Effect).
        iam.update_assume_role_policy(
            RoleName=role.inputs["name"], PolicyDocument=role.inputs["assumeRolePolicy"]
        )
    policies = account.of_type("aws:iam/rolePolicy:RolePolicy")
    assert len(policies) == 4
    for policy in policies:
        iam.put_role_policy(
            RoleName=policy.inputs["role"], PolicyName=policy.name, PolicyDocument=policy.inputs["policy"]
        )
    sns = client("sns")
    topic = account.one("aws:sns/topic:Topic").inputs
    arn = sns.create_topic(Name=topic["name"], Attributes={"KmsMasterKeyId": topic["kmsMasterKeyId"]})[
        "TopicArn"
    ]
    sns.set_topic_attributes(
        TopicArn=arn,
        AttributeName="Policy",
        AttributeValue=account.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"],
    )


def test_iam_fails_on_a_broken_policy(accounts: dict[str, Account], aws: None) -> None:
    account = accounts["aws-prod"]
    iam = boto3.client("iam", region_name="us-east-1")
    role = account.one("aws:iam/role:Role", "scamguard-identity-task").inputs
    iam.create_role(RoleName=role["name"], AssumeRolePolicyDocument=role["assumeRolePolicy"])
    good = json.loads(
        account.one("aws:iam/rolePolicy:RolePolicy", "scamguard-service-task-remote-write").inputs["policy"]
    )
    iam.put_role_policy(RoleName=role["name"], PolicyName="ok", PolicyDocument=json.dumps(good))
    trust = json.loads(role["assumeRolePolicy"])
    trust["Statement"][0]["Effect"] = "Maybe"
    with pytest.raises(INVALID):
        iam.update_assume_role_policy(RoleName=role["name"], PolicyDocument=json.dumps(trust))
    for broken in (
        {**good, "Version": "2008-10-18x"},
        {**good, "Statement": [{**good["Statement"][0], "Effect": "Maybe"}]},
    ):
        with pytest.raises(INVALID):
            iam.put_role_policy(RoleName=role["name"], PolicyName="broken", PolicyDocument=json.dumps(broken))


def _parliament(folder: pathlib.Path) -> list[dict[str, Any]]:
    uv = shutil.which("uv") or require_tool("uv", "uv (scripts/setup.sh)")
    proc = subprocess.run(
        [
            uv,
            "tool",
            "run",
            "--from",
            PARLIAMENT[0],
            "--with",
            PARLIAMENT[1],
            "parliament",
            "--json",
            "--directory",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


# parliament 1.6.4's action table predates resource-level permissions for this action; AWS's pull
# through cache page grants it on repositories (even in repository policies), as the program does.
PARLIAMENT_OUTDATED = {("RESOURCE_MISMATCH", "ecr:BatchImportUpstreamImage")}


@pytest.mark.slow
def test_parliament_knows_every_action(accounts: dict[str, Account], tmp_path: pathlib.Path) -> None:
    # The identity policies and the topic policy (a resource policy: parliament checks its principal
    # too). Not the trust policies: parliament calls them malformed for having no Resource; moto's
    # IAM checks their grammar above.
    for stack, account in accounts.items():
        for policy in (
            *account.of_type("aws:iam/rolePolicy:RolePolicy"),
            *account.of_type("aws:sns/topicPolicy:TopicPolicy"),
        ):
            (tmp_path / f"{stack}-{policy.name}.json").write_text(policy.inputs["policy"], encoding="utf-8")
    findings = [
        f
        for f in _parliament(tmp_path)
        if not any(
            f["issue"] == issue and action in str(f.get("detail")) for issue, action in PARLIAMENT_OUTDATED
        )
    ]
    assert findings == []
    broken = tmp_path / "broken"
    broken.mkdir()
    document = json.loads(
        accounts["aws-prod"]
        .one("aws:iam/rolePolicy:RolePolicy", "scamguard-service-task-remote-write")
        .inputs["policy"]
    )
    document["Statement"][0]["Action"] = ["aps:RemoteWrites"]
    (broken / "task.json").write_text(json.dumps(document), encoding="utf-8")
    assert [f["issue"] for f in _parliament(broken)] == ["UNKNOWN_ACTION"]


# --------------------------------------------------------------------------- WAF, load balancer, ECR


def web_acl_call(account: Account) -> dict[str, Any]:
    acl = account.one("aws:wafv2/webAcl:WebAcl").inputs
    visibility = acl["visibilityConfig"]
    return {
        "Name": acl["name"],
        "Scope": acl["scope"],
        "DefaultAction": {"Allow": {}},
        "VisibilityConfig": {
            "SampledRequestsEnabled": visibility["sampledRequestsEnabled"],
            "CloudWatchMetricsEnabled": visibility["cloudwatchMetricsEnabled"],
            "MetricName": visibility["metricName"],
        },
        "Rules": json.loads(acl["ruleJson"]),
    }


@pytest.mark.parametrize("stack", ["aws-staging", "aws-prod"])
def test_web_acl_rules_match_the_waf_api(accounts: dict[str, Account], stack: str, aws: None) -> None:
    client("wafv2").create_web_acl(**web_acl_call(accounts[stack]))


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c["Rules"][0]["Statement"]["RateBasedStatement"].update(Limit="3000"),
        lambda c: c["Rules"][1].pop("VisibilityConfig"),
        lambda c: c["Rules"][2]["Statement"]["ManagedRuleGroupStatement"].update(Vendor="AWS"),
    ],
    ids=["limit-as-string", "no-visibility", "misspelt-field"],
)
def test_waf_validation_fails_on_a_broken_copy(accounts: dict[str, Account], aws: None, break_it) -> None:
    call = web_acl_call(accounts["aws-prod"])
    break_it(call)
    with pytest.raises(INVALID):
        client("wafv2").create_web_acl(**call)


@pytest.mark.parametrize("stack", ["aws-staging", "aws-prod"])
def test_load_balancer_and_target_group_register(accounts: dict[str, Account], stack: str, aws: None) -> None:
    account = accounts[stack]
    subnets, groups = register_network(account)
    elb = client("elbv2")
    lb = account.one("aws:lb/loadBalancer:LoadBalancer").inputs
    elb.create_load_balancer(
        Name=lb["name"],
        Subnets=[subnets[s] for s in lb["subnets"]],
        SecurityGroups=[groups[g] for g in lb["securityGroups"]],
        Scheme="internal" if lb["internal"] else "internet-facing",
        Type=lb["loadBalancerType"],
    )
    group = account.one("aws:lb/targetGroup:TargetGroup").inputs
    check = group["healthCheck"]
    vpc_id = client("ec2").describe_vpcs(
        Filters=[{"Name": "cidr", "Values": [account.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"]]}]
    )["Vpcs"][0]["VpcId"]
    arn = elb.create_target_group(
        Name=group["name"],
        Protocol=group["protocol"],
        Port=int(group["port"]),
        VpcId=vpc_id,
        TargetType=group["targetType"],
        HealthCheckPath=check["path"],
        HealthCheckProtocol=check["protocol"],
        HealthCheckIntervalSeconds=int(check["interval"]),
        HealthCheckTimeoutSeconds=int(check["timeout"]),
        HealthyThresholdCount=int(check["healthyThreshold"]),
        UnhealthyThresholdCount=int(check["unhealthyThreshold"]),
        Matcher={"HttpCode": check["matcher"]},
    )["TargetGroups"][0]["TargetGroupArn"]
    elb.modify_target_group_attributes(
        TargetGroupArn=arn,
        Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": str(int(group["deregistrationDelay"]))}
        ],
    )


# ECR documents lifecycle policies only in prose (the API takes a string): this schema is that
# page's rules, the fields each selection must and must not have.
LIFECYCLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["rules"],
    "additionalProperties": False,
    "properties": {
        "rules": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["rulePriority", "selection", "action"],
                "additionalProperties": False,
                "properties": {
                    "rulePriority": {"type": "integer", "minimum": 1},
                    "description": {"type": "string"},
                    "action": {
                        "type": "object",
                        "properties": {"type": {"const": "expire"}},
                        "required": ["type"],
                    },
                    "selection": {
                        "type": "object",
                        "required": ["tagStatus", "countType", "countNumber"],
                        "additionalProperties": False,
                        "properties": {
                            "tagStatus": {"enum": ["tagged", "untagged", "any"]},
                            "tagPrefixList": {"type": "array", "items": {"type": "string"}},
                            "tagPatternList": {"type": "array", "items": {"type": "string"}},
                            "countType": {"enum": ["imageCountMoreThan", "sinceImagePushed"]},
                            "countUnit": {"const": "days"},
                            "countNumber": {"type": "integer", "minimum": 1},
                        },
                        "allOf": [
                            {
                                "if": {"properties": {"countType": {"const": "sinceImagePushed"}}},
                                "then": {"required": ["countUnit"]},
                                "else": {"not": {"required": ["countUnit"]}},
                            }
                        ],
                    },
                },
            },
        }
    },
}


def test_ecr_lifecycle_policy_follows_ecr_rules(accounts: dict[str, Account]) -> None:
    policy = json.loads(accounts["aws-prod"].one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])
    jsonschema.validate(policy, LIFECYCLE_SCHEMA)
    priorities = [r["rulePriority"] for r in policy["rules"]]
    assert len(set(priorities)) == len(priorities)
    # `any` must be the lowest-priority rule (ECR refuses it otherwise).
    assert policy["rules"][-1]["selection"]["tagStatus"] == "any"
    broken = copy.deepcopy(policy)
    broken["rules"][1]["selection"]["countUnit"] = "days"  # not with imageCountMoreThan
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, LIFECYCLE_SCHEMA)


# --------------------------------------------------------------------------- AMP


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool(tool, "prometheus-alertmanager" if tool == "amtool" else "prometheus"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rule_groups_namespace_passes_promtool(accounts: dict[str, Account], tmp_path: pathlib.Path) -> None:
    data = accounts["aws-prod"].one("aws:amp/ruleGroupNamespace:RuleGroupNamespace").inputs["data"]
    path = tmp_path / "rules.yml"
    path.write_text(data, encoding="utf-8")
    result = _run("promtool", "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    path.write_text(data.replace("expr:", "expression:", 1), encoding="utf-8")
    assert _run("promtool", "check", "rules", str(path)).returncode != 0


def test_alertmanager_definition_passes_amtool(accounts: dict[str, Account], tmp_path: pathlib.Path) -> None:
    definition = yaml.safe_load(
        accounts["aws-prod"].one("aws:amp/alertManagerDefinition:AlertManagerDefinition").inputs["definition"]
    )
    path = tmp_path / "alertmanager.yml"
    path.write_text(definition["alertmanager_config"], encoding="utf-8")
    result = _run("amtool", "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    broken = yaml.safe_load(definition["alertmanager_config"])
    broken["receivers"][0]["sns_configs"][0]["topic_arn"] = ""
    broken["route"]["receiver"] = "nobody"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    assert _run("amtool", "check-config", str(path)).returncode != 0


def test_scaling_and_target_group_validation_fail_on_broken_copies(
    accounts: dict[str, Account], aws: None
) -> None:
    account = accounts["aws-prod"]
    policy = next(
        r for r in account.of_type("aws:appautoscaling/policy:Policy") if r.name.endswith("requests")
    )
    call = scaling_policy_call(policy.inputs)
    call["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] = "6000"
    with pytest.raises(INVALID):
        client("application-autoscaling").put_scaling_policy(**call)
    call = scaling_policy_call(policy.inputs)
    call["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["ResourceLabel"] = ""
    with pytest.raises(INVALID):  # below the model's minimum length
        client("application-autoscaling").put_scaling_policy(**call)
    with pytest.raises(INVALID):
        client("elbv2").create_target_group(
            Name="x", Protocol="HTTP", Port="8080", VpcId="vpc-1", TargetType="ip"
        )


def _collector_scrape_check(config: dict[str, Any], folder: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """The collector's prometheus receiver takes Prometheus' own configuration: check it with
    promtool, with the collector's ${env:...} expanded as the collector does before handing it on."""
    scrape = copy.deepcopy(config["receivers"]["prometheus"]["config"])
    text = yaml.safe_dump(scrape).replace("${env:HOSTNAME}", "ip-10-50-1-23.eu-west-1.compute.internal")
    path = folder / "collector-prometheus.yml"
    path.write_text(text, encoding="utf-8")
    return _run("promtool", "check", "config", str(path))


def test_collector_scrape_configuration_passes_promtool(
    accounts: dict[str, Account], tmp_path: pathlib.Path
) -> None:
    collector = accounts["aws-prod"].containers()["collector"]
    value = next(e["value"] for e in collector["environment"] if e["name"] == "AOT_CONFIG_CONTENT")
    config = yaml.safe_load(value)
    result = _collector_scrape_check(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = copy.deepcopy(config)
    broken["receivers"]["prometheus"]["config"]["scrape_configs"][0]["relabel_configs"][0]["action"] = (
        "rename"
    )
    assert _collector_scrape_check(broken, tmp_path).returncode != 0
    broken = copy.deepcopy(config)
    broken["receivers"]["prometheus"]["config"]["global"]["scrape_timeout"] = "30s"  # > the interval
    assert _collector_scrape_check(broken, tmp_path).returncode != 0
