"""Outputs the AWS provider would compute, for Pulumi's mocks (offline preview and unit tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

MockOutputs = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
MockCall = Callable[[Mapping[str, Any]], Mapping[str, Any]]

ACCOUNT = "123456789012"
REGION = "eu-west-1"


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def _named(service: str, kind: str, sep: str = "/") -> MockOutputs:
    return lambda name, inputs: {"arn": _arn(service, f"{kind}{sep}{inputs.get('name', name)}")}


MOCK_OUTPUTS: dict[str, MockOutputs] = {
    "aws:ecr/repository:Repository": lambda name, inputs: {
        "arn": _arn("ecr", f"repository/{inputs['name']}"),
        "registryId": ACCOUNT,
        "repositoryUrl": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{inputs['name']}",
    },
    "aws:iam/role:Role": lambda name, inputs: {
        "arn": f"arn:aws:iam::{ACCOUNT}:role/{inputs['name']}",
        "id": inputs["name"],
    },
    "aws:cloudwatch/logGroup:LogGroup": _named("logs", "log-group", ":"),
    "aws:secretsmanager/secret:Secret": lambda name, inputs: {
        "arn": _arn("secretsmanager", f"secret:{inputs['name']}-AbCdEf")
    },
    "aws:ecs/cluster:Cluster": _named("ecs", "cluster"),
    "aws:ecs/taskDefinition:TaskDefinition": lambda name, inputs: {
        "arn": _arn("ecs", f"task-definition/{inputs['family']}:1")
    },
    "aws:lb/loadBalancer:LoadBalancer": lambda name, inputs: {
        "arn": _arn("elasticloadbalancing", f"loadbalancer/app/{inputs['name']}/50dc6c495c0c9188"),
        "arnSuffix": f"app/{inputs['name']}/50dc6c495c0c9188",
        "dnsName": f"internal-{inputs['name']}-1234567890.{REGION}.elb.amazonaws.com",
    },
    "aws:lb/targetGroup:TargetGroup": lambda name, inputs: {
        "arn": _arn("elasticloadbalancing", f"targetgroup/{inputs['name']}/73e2d6bc24d8a067"),
        "arnSuffix": f"targetgroup/{inputs['name']}/73e2d6bc24d8a067",
    },
    "aws:wafv2/webAcl:WebAcl": lambda name, inputs: {
        "arn": _arn("wafv2", f"regional/webacl/{inputs['name']}/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111")
    },
    "aws:amp/workspace:Workspace": lambda name, inputs: {
        "arn": _arn("aps", "workspace/ws-mock-1234"),
        "id": "ws-mock-1234",
        "prometheusEndpoint": f"https://aps-workspaces.{REGION}.amazonaws.com/workspaces/ws-mock-1234/",
    },
    "aws:sns/topic:Topic": _named("sns", "", ""),
    "aws:ec2/vpcEndpoint:VpcEndpoint": lambda name, inputs: {"prefixListId": "pl-6da54004"},
    "aws:grafana/workspace:Workspace": lambda name, inputs: {
        "id": "g-mock1234",
        "endpoint": f"g-mock1234.grafana-workspace.{REGION}.amazonaws.com",
    },
    "aws:grafana/workspaceServiceAccount:WorkspaceServiceAccount": lambda name, inputs: {
        "serviceAccountId": "sa-mock"
    },
    "aws:grafana/workspaceServiceAccountToken:WorkspaceServiceAccountToken": lambda name, inputs: {
        "key": "glsa_mock_token"
    },
    "aws:ecs/service:Service": lambda name, inputs: {"name": inputs["name"]},
}
MOCK_CALLS: dict[str, MockCall] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": lambda args: {
        "names": [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
        "zoneIds": ["euw1-az1", "euw1-az2", "euw1-az3"],
        "id": REGION,
    },
    "aws:index/getCallerIdentity:getCallerIdentity": lambda args: {
        "accountId": ACCOUNT,
        "arn": f"arn:aws:iam::{ACCOUNT}:role/deployer",
        "userId": "AROAMOCK",
        "id": ACCOUNT,
    },
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": lambda args: {
        "authorizationToken": "bW9jazptb2Nr",
        "expiresAt": "2030-01-01T00:00:00Z",
        "password": "mock-ecr-password",
        "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com",
        "userName": "AWS",
        "id": REGION,
    },
}
