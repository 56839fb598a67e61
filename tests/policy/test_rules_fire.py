"""Each rule fires, with its actionable message, on a real resource of a stack mutated to break it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from policy.scamguard_policy import RULES, STACK_RULES, Resource, StackContext, Violation, evaluate

from .conftest import context, find, load_graph

API_SERVICE = ("gcp:cloudrunv2/service:Service", "scamguard-service-service")
GRAFANA_SERVICE = ("gcp:cloudrunv2/service:Service", "scamguard-monitoring-grafana-service")
LOG_WRITER = ("gcp:projects/iAMMember:IAMMember", "scamguard-identity-logging-logwriter")
BUCKET_READER = (
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "scamguard-monitoring-grafana-identity-bucket-reader",
)
REPOSITORY = ("gcp:artifactregistry/repository:Repository", None)
BUCKET = ("gcp:storage/bucket:Bucket", None)
ALERT = ("gcp:monitoring/alertPolicy:AlertPolicy", None)
ACCOUNT = ("gcp:serviceaccount/account:Account", None)
LOCAL_API = ("docker:index/container:Container", "scamguard-api")
LOCAL_GRAFANA = ("docker:index/container:Container", "scamguard-grafana")
DIGEST_REF = "europe-west1-docker.pkg.dev/scamguard-prod/scamguard-prod/scamguard-api:0.1.0"
K8S_API = ("kubernetes:apps/v1:Deployment", "scamguard-service-deployment")
ECS_SERVICE = ("aws:ecs/service:Service", "scamguard-service-service")
TASK_DEFINITION = ("aws:ecs/taskDefinition:TaskDefinition", "scamguard-service-task")


def _task_image_by_tag(props: dict[str, Any]) -> None:
    definitions = json.loads(props["containerDefinitions"])
    definitions[0]["image"] = definitions[0]["image"].split("@")[0] + ":0.1.0"
    props["containerDefinitions"] = json.dumps(definitions)


def _trust_anyone(props: dict[str, Any]) -> None:
    document = json.loads(props["assumeRolePolicy"])
    document["Statement"][0]["Principal"] = {"AWS": "*"}
    props["assumeRolePolicy"] = json.dumps(document)


def pod(props: dict[str, Any]) -> dict[str, Any]:
    return props["spec"]["template"]["spec"]


def k8s_api(props: dict[str, Any]) -> dict[str, Any]:
    return pod(props)["containers"][0]


Mutate = Callable[[dict[str, Any]], None]


def api(props: dict[str, Any]) -> dict[str, Any]:
    return props["template"]["containers"][0]


def container(props: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in props["template"]["containers"] if c["name"] == name)


def _policy_data(props: dict[str, Any]) -> None:
    binding = {"role": "roles/owner", "members": [props.pop("member")]}
    props["policyData"] = json.dumps({"bindings": [binding]})
    props.pop("role")


@dataclass(frozen=True)
class Case:
    id: str
    stack: str
    target: tuple[str, str | None]
    mutate: Mutate
    rule: str
    message: str  # a fragment of the message the user sees
    new_type: str | None = None  # the mutation turns the resource into another type
    overrides: Mapping[str, str] = field(default_factory=dict)  # stack config of the context
    policy_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


CASES = [
    # --- IAM
    Case(
        "editor-on-project",
        "prod",
        LOG_WRITER,
        lambda p: p.update(role="roles/editor"),
        "gcp-no-primitive-roles",
        "grants the primitive role roles/editor",
    ),
    Case(
        "owner-in-policy-data",
        "staging",
        LOG_WRITER,
        _policy_data,
        "gcp-no-primitive-roles",
        "primitive role roles/owner",
        new_type="gcp:projects/iAMPolicy:IAMPolicy",
    ),
    Case(
        "allusers-invoker-in-prod",
        "prod",
        LOG_WRITER,
        lambda p: p.update(member="allUsers", role="roles/run.invoker", name="scamguard-prod-grafana"),
        "cloud-run-no-public-invoker",
        "stack 'prod' is not configured public",
        new_type="gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
    ),
    Case(
        # allUsers on the API is allowed only where the ingress admits nothing but the load balancer.
        "allusers-on-the-api-without-the-edge",
        "prod",
        LOG_WRITER,
        lambda p: p.update(member="allUsers", role="roles/run.invoker", name="scamguard-prod"),
        "cloud-run-no-public-invoker",
        "stack 'prod' is not configured public",
        new_type="gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
        overrides={
            "scamguard:gcpDomain": "",
            "scamguard:gcpGrafanaDomain": "",
            "scamguard:gcpIngress": "all",
        },
    ),
    Case(
        "public-prod-without-policy-opt-in",
        "prod",
        LOG_WRITER,
        lambda p: p.update(member="allUsers", role="roles/run.invoker", name="scamguard-prod"),
        "cloud-run-no-public-invoker",
        "allowPublicProduction",
        new_type="gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
        overrides={
            "scamguard:public": "true",
            "scamguard:gcpDomain": "",
            "scamguard:gcpGrafanaDomain": "",
            "scamguard:gcpIngress": "all",
        },
    ),
    Case(
        "all-authenticated-on-bucket",
        "staging",
        BUCKET_READER,
        lambda p: p.update(member="allAuthenticatedUsers"),
        "gcp-no-public-iam",
        "grants roles/storage.objectViewer to allAuthenticatedUsers",
    ),
    # --- Cloud Run
    Case(
        # The shipped 0o440: Cloud Run mounts the file root-owned, uid 10001 cannot read it.
        "secret-volume-unreadable",
        "prod",
        API_SERVICE,
        lambda p: p["template"]["volumes"][0]["secret"].update(defaultMode=0o440),
        "cloud-run-secret-volume-readable",
        "cannot read it",
    ),
    Case(
        "prod-api-open-to-the-internet",
        "prod",
        API_SERVICE,
        lambda p: p.update(ingress="INGRESS_TRAFFIC_ALL"),
        "cloud-run-production-behind-edge",
        "takes traffic from the whole internet",
    ),
    Case(
        "edge-backend-without-armor",
        "prod",
        ("gcp:compute/backendService:BackendService", "scamguard-edge-api-backend"),
        lambda p: p.pop("securityPolicy"),
        "gcp-edge-backend-security-policy",
        "without a Cloud Armor security policy",
    ),
    Case(
        "prod-without-deletion-protection",
        "prod",
        API_SERVICE,
        lambda p: p.update(deletionProtection=False),
        "cloud-run-deletion-protection",
        "must set deletion_protection=True",
    ),
    Case(
        "api-without-liveness",
        "prod",
        API_SERVICE,
        lambda p: api(p).pop("livenessProbe"),
        "cloud-run-probes",
        "no liveness_probe",
    ),
    Case(
        "grafana-without-startup",
        "staging",
        GRAFANA_SERVICE,
        lambda p: container(p, "grafana").pop("startupProbe"),
        "cloud-run-probes",
        "container 'grafana' of Cloud Run service scamguard-monitoring-grafana-service has no startup_probe",
    ),
    Case(
        "unbounded-scaling",
        "staging",
        API_SERVICE,
        lambda p: p["template"]["scaling"].pop("maxInstanceCount"),
        "cloud-run-max-instances",
        "sets no template.scaling.max_instance_count",
    ),
    Case(
        "scaling-above-limit",
        "prod",
        API_SERVICE,
        lambda p: p["template"]["scaling"].update(maxInstanceCount=500.0),
        "cloud-run-max-instances",
        "may scale to 500 instances, above the policy limit of 100",
    ),
    Case(
        "api-image-by-tag",
        "prod",
        API_SERVICE,
        lambda p: api(p).update(image=DIGEST_REF),
        "cloud-run-image-digest",
        "reference the image by digest",
    ),
    Case(
        "sidecar-image-latest",
        "prod",
        API_SERVICE,
        lambda p: container(p, "gmp-collector").update(image="us-docker.pkg.dev/x/gmp-sidecar:latest"),
        "cloud-run-image-digest",
        "unpinned or :latest",
    ),
    Case(
        "api-keys-in-plain-env",
        "prod",
        API_SERVICE,
        lambda p: api(p)["envs"].append({"name": "SCAMGUARD_API_KEYS", "value": "k1,k2"}),
        "cloud-run-no-plain-secret-env",
        "env SCAMGUARD_API_KEYS of container 'api' in Cloud Run scamguard-service-service holds a plain",
    ),
    Case(
        "grafana-password-in-plain-env",
        "staging",
        GRAFANA_SERVICE,
        lambda p: next(
            e for e in container(p, "grafana")["envs"] if e["name"] == "GF_SECURITY_ADMIN_PASSWORD"
        ).update(value="hunter2", valueSource=None),
        "cloud-run-no-plain-secret-env",
        "value_source.secret_key_ref",
    ),
    Case(
        "default-compute-service-account",
        "prod",
        API_SERVICE,
        lambda p: p["template"].update(serviceAccount="123456-compute@developer.gserviceaccount.com"),
        "cloud-run-dedicated-service-account",
        "dedicated, least-privilege service account",
    ),
    # --- GCP resources
    Case(
        "registry-without-labels",
        "prod",
        REPOSITORY,
        lambda p: p.pop("labels"),
        "gcp-required-labels",
        "lacks the label(s) project, stack, component in `labels`",
    ),
    Case(
        "alert-without-component",
        "staging",
        ALERT,
        lambda p: p["userLabels"].pop("component"),
        "gcp-required-labels",
        "lacks the label(s) component in `userLabels`",
    ),
    Case(
        "label-of-another-stack",
        "prod",
        BUCKET,
        lambda p: p["labels"].update(stack="staging"),
        "gcp-required-labels",
        "is labelled stack='staging' but belongs to stack 'prod'",
    ),
    Case(
        "registry-without-cleanup",
        "prod",
        REPOSITORY,
        lambda p: p.pop("cleanupPolicies"),
        "artifact-registry-cleanup-policies",
        "has no DELETE cleanup policy",
    ),
    Case(
        "registry-cleanup-dry-run",
        "staging",
        REPOSITORY,
        lambda p: p.update(cleanupPolicyDryRun=True),
        "artifact-registry-cleanup-policies",
        "cleanup_policy_dry_run=False",
    ),
    Case(
        "bucket-public-access-inherited",
        "prod",
        BUCKET,
        lambda p: p.update(publicAccessPrevention="inherited"),
        "gcp-bucket-private",
        "public_access_prevention='enforced'",
    ),
    Case(
        "service-account-key",
        "prod",
        ACCOUNT,
        lambda p: p.update(serviceAccountId=f"projects/{p['project']}/serviceAccounts/{p['accountId']}"),
        "gcp-no-service-account-keys",
        "creates a long-lived key",
        new_type="gcp:serviceaccount/key:Key",
    ),
    # --- local Docker
    Case(
        "api-port-on-all-interfaces",
        "local",
        LOCAL_API,
        lambda p: p["ports"][0].pop("ip"),
        "docker-ports-loopback",
        "publishes 8080 on 0.0.0.0 (all interfaces)",
    ),
    Case(
        "grafana-port-on-lan",
        "local",
        LOCAL_GRAFANA,
        lambda p: p["ports"][0].update(ip="0.0.0.0"),
        "docker-ports-loopback",
        "set ports[].ip='127.0.0.1'",
    ),
    Case(
        "api-writable-rootfs",
        "local",
        LOCAL_API,
        lambda p: p.update(readOnly=False),
        "docker-container-hardening",
        "has a writable root filesystem",
    ),
    Case(
        "api-keeps-capabilities",
        "local",
        LOCAL_API,
        lambda p: p.pop("capabilities"),
        "docker-container-hardening",
        "capabilities.drops=['ALL']",
    ),
    Case(
        "grafana-privileged",
        "local",
        LOCAL_GRAFANA,
        lambda p: p.update(privileged=True),
        "docker-monitoring-container-hardening",
        "is privileged",
    ),
    *(
        Case(id_, "k8s-prod", K8S_API, mutate, rule, message)
        for id_, mutate, rule, message in [
            (
                "k8s-may-run-as-root",
                lambda p: (
                    k8s_api(p)["securityContext"].pop("runAsNonRoot"),
                    pod(p)["securityContext"].pop("runAsNonRoot"),
                ),
                "k8s-pod-security-restricted",
                "runAsNonRoot=true",
            ),
            (
                "k8s-privilege-escalation",
                lambda p: k8s_api(p)["securityContext"].update(allowPrivilegeEscalation=True),
                "k8s-pod-security-restricted",
                "allowPrivilegeEscalation=false",
            ),
            (
                "k8s-privileged",
                lambda p: k8s_api(p)["securityContext"].update(privileged=True),
                "k8s-pod-security-restricted",
                "is privileged",
            ),
            (
                "k8s-keeps-capabilities",
                lambda p: k8s_api(p)["securityContext"].pop("capabilities"),
                "k8s-pod-security-restricted",
                "capabilities.drop=['ALL']",
            ),
            (
                "k8s-no-seccomp",
                lambda p: (
                    k8s_api(p)["securityContext"].pop("seccompProfile"),
                    pod(p)["securityContext"].pop("seccompProfile"),
                ),
                "k8s-pod-security-restricted",
                "seccompProfile.type=RuntimeDefault",
            ),
            (
                "k8s-host-network",
                lambda p: pod(p).update(hostNetwork=True),
                "k8s-no-host-access",
                "hostNetwork",
            ),
            (
                "k8s-host-path",
                lambda p: pod(p)["volumes"].append({"name": "root", "hostPath": {"path": "/"}}),
                "k8s-no-host-access",
                "node's filesystem",
            ),
            (
                "k8s-no-memory-limit",
                lambda p: k8s_api(p)["resources"].pop("limits"),
                "k8s-resources",
                "resources.limits.memory",
            ),
            ("k8s-no-readiness", lambda p: k8s_api(p).pop("readinessProbe"), "k8s-probes", "readinessProbe"),
            (
                "k8s-image-by-tag",
                lambda p: k8s_api(p).update(image="ghcr.io/scamguard/scamguard-api:0.1.0"),
                "k8s-image-digest",
                "deploy by digest",
            ),
            (
                "k8s-default-service-account",
                lambda p: pod(p).pop("serviceAccountName"),
                "k8s-own-service-account",
                "default ServiceAccount",
            ),
            (
                "k8s-api-token-mounted",
                lambda p: pod(p).pop("automountServiceAccountToken"),
                "k8s-own-service-account",
                "automountServiceAccountToken=false",
            ),
        ]
    ),
    Case(
        "aws-task-public-ip",
        "aws-prod",
        ECS_SERVICE,
        lambda p: p["networkConfiguration"].update(assignPublicIp=True),
        "aws-ecs-private-tasks",
        "assign_public_ip=False",
    ),
    Case(
        "aws-trust-anyone",
        "aws-prod",
        ("aws:iam/role:Role", "scamguard-identity-task"),
        _trust_anyone,
        "aws-no-wildcard-principal",
        'allows any principal ("*")',
    ),
    Case(
        "aws-no-rollback",
        "aws-prod",
        ECS_SERVICE,
        lambda p: p["deploymentCircuitBreaker"].update(rollback=False),
        "aws-ecs-circuit-breaker",
        "rolls back",
    ),
    Case(
        "aws-task-image-by-tag",
        "aws-prod",
        TASK_DEFINITION,
        _task_image_by_tag,
        "aws-ecs-image-digest",
        "deploy by digest",
    ),
    Case(
        "aws-repository-unencrypted",
        "aws-prod",
        ("aws:ecr/repository:Repository", None),
        lambda p: p.pop("encryptionConfigurations"),
        "aws-encryption",
        "not KMS-encrypted",
    ),
    Case(
        "aws-topic-unencrypted",
        "aws-prod",
        ("aws:sns/topic:Topic", None),
        lambda p: p.pop("kmsMasterKeyId"),
        "aws-encryption",
        "not encrypted",
    ),
    Case(
        "aws-logs-forever",
        "aws-prod",
        ("aws:cloudwatch/logGroup:LogGroup", None),
        lambda p: p.pop("retentionInDays"),
        "aws-log-retention",
        "keeps logs forever",
    ),
]


def _run(case: Case) -> tuple[list[Violation], str]:
    graph = load_graph(case.stack)
    entry = find(graph, *case.target)
    case.mutate(entry["inputs"])
    if case.new_type is not None:
        entry["type"] = case.new_type
    resource = Resource(type=entry["type"], name=entry["name"], props=entry["inputs"])
    stack: StackContext = context(case.stack, case.overrides, case.policy_config)
    return evaluate(RULES, [resource], stack), entry["name"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_fires_on_mutated_resource(case: Case) -> None:
    violations, name = _run(case)
    fired = [v for v in violations if v.rule == case.rule]
    assert fired, f"{case.rule} did not fire; got {violations}"
    assert all(v.resource_name == name for v in fired)
    assert any(case.message in v.message for v in fired), [v.message for v in fired]
    level = next(rule.enforcement for rule in RULES if rule.name == case.rule)
    assert all(v.enforcement == level for v in fired)


def test_every_rule_has_a_negative_case() -> None:
    assert {rule.name for rule in RULES} == {case.rule for case in CASES}
    # Tested below, on whole stacks.
    assert {rule.name for rule in STACK_RULES} == {
        "k8s-default-deny-network-policy",
        "aws-waf-on-public-load-balancers",
    }


def test_file_pointer_env_is_not_a_secret() -> None:
    """SCAMGUARD_API_KEYS_FILE names the mounted secret file; the real prod service keeps it."""
    graph = load_graph("prod")
    entry = find(graph, *API_SERVICE)
    pointer = {"name": "SCAMGUARD_API_KEYS_FILE", "value": "/secrets/api-keys/keys"}
    assert pointer in api(entry["inputs"])["envs"]
    api(entry["inputs"])["envs"].append({"name": "SCAMGUARD_API_KEYS_FILE2", "value": "k1"})
    resource = Resource(entry["type"], entry["name"], entry["inputs"])
    violations = evaluate(RULES, [resource], context("prod"))
    assert [v.message.split(" of ")[0] for v in violations] == ["env SCAMGUARD_API_KEYS_FILE2"]


def test_deletion_protection_is_only_required_in_production() -> None:
    graph = load_graph("staging")
    entry = find(graph, *API_SERVICE)
    entry["inputs"]["deletionProtection"] = False
    resource = Resource(entry["type"], entry["name"], entry["inputs"])
    assert evaluate(RULES, [resource], context("staging")) == []
    as_prod = {v.rule for v in evaluate(RULES, [resource], context("prod"))}
    assert "cloud-run-deletion-protection" in as_prod


def test_max_instance_limit_comes_from_policy_config() -> None:
    graph = load_graph("prod")
    entry = find(graph, *API_SERVICE)
    entry["inputs"]["template"]["scaling"]["maxInstanceCount"] = 500.0
    resource = Resource(entry["type"], entry["name"], entry["inputs"])
    raised = context("prod", policy_config={"cloud-run-max-instances": {"maxInstanceCount": 1000}})
    assert evaluate(RULES, [resource], raised) == []


def test_monitoring_containers_only_get_advice() -> None:
    """Prometheus/Grafana breaking the hardening rules is advisory; the API breaking them is not."""
    graph = load_graph("local")
    for name in ("scamguard-prometheus", "scamguard-grafana"):
        entry = find(graph, "docker:index/container:Container", name)
        entry["inputs"].pop("capabilities")
        resource = Resource(entry["type"], entry["name"], entry["inputs"])
        violations = evaluate(RULES, [resource], context("local"))
        assert violations
        assert {v.enforcement for v in violations} == {"advisory"}
        assert any("uploads" in v.message for v in violations)


@pytest.mark.parametrize("stack", ["", "prod", "prod-eu", "production", "my_prd"])
def test_production_detection_fails_closed(stack: str) -> None:
    assert StackContext(stack=stack).production
    assert not StackContext(stack="staging").production
    assert not StackContext(stack="product-demo").production


def test_default_deny_network_policy_is_required_per_namespace() -> None:
    graph = load_graph("k8s-prod")
    every = resources_of(graph)
    assert evaluate([], every, context("k8s-prod"), STACK_RULES) == []
    without = [r for r in every if r.name != "scamguard-network-default-deny"]
    (violation,) = evaluate([], without, context("k8s-prod"), STACK_RULES)
    assert violation.rule == "k8s-default-deny-network-policy"
    assert "scamguard-k8s-prod" in violation.message
    assert "default-deny" in violation.message
    # A policy that allows something is not a default deny.
    allowing = find(graph, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "scamguard-network-default-deny")
    allowing["inputs"]["spec"]["ingress"] = [{}]
    assert [v.rule for v in evaluate([], resources_of(graph), context("k8s-prod"), STACK_RULES)] == [
        "k8s-default-deny-network-policy"
    ]


def resources_of(graph: dict[str, Any]) -> list[Resource]:
    return [Resource(type=r["type"], name=r["name"], props=r["inputs"]) for r in graph["resources"]]


def test_public_load_balancers_need_waf() -> None:
    graph = load_graph("aws-prod")
    every = resources_of(graph)
    assert evaluate([], every, context("aws-prod"), STACK_RULES) == []
    without = [r for r in every if r.type != "aws:wafv2/webAclAssociation:WebAclAssociation"]
    (violation,) = evaluate([], without, context("aws-prod"), STACK_RULES)
    assert violation.rule == "aws-waf-on-public-load-balancers"
    assert "no WAF web ACL" in violation.message
    # Staging's load balancer is internal: no WAF needed by the rule (it has one anyway).
    staging = [
        r
        for r in resources_of(load_graph("aws-staging"))
        if r.type != "aws:wafv2/webAclAssociation:WebAclAssociation"
    ]
    assert evaluate([], staging, context("aws-staging"), STACK_RULES) == []
