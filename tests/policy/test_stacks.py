"""Every rule on every resource of every real stack: no mandatory violation, known advice only."""

from __future__ import annotations

import pytest

from infra.preview import stack_files
from policy.scamguard_policy import RULES, STACK_RULES, evaluate

from .conftest import context, load_graph, resources

# Advice the real local stack is expected to get (see docker_local.WRITABLE_ROOTFS_COMPONENTS).
EXPECTED_ADVICE = {
    "local": {
        ("docker-monitoring-container-hardening", "scamguard-grafana"),
        ("docker-monitoring-container-hardening", "scamguard-prometheus"),
    }
}


def test_every_stack_in_the_repository_is_covered() -> None:
    assert sorted(stack_files()) == [
        "aws-prod",
        "aws-staging",
        "k8s-prod",
        "k8s-staging",
        "local",
        "prod",
        "staging",
    ]


@pytest.mark.parametrize(
    "stack", ["local", "staging", "prod", "aws-staging", "aws-prod", "k8s-staging", "k8s-prod"]
)
def test_real_stack_passes_every_mandatory_rule(stack: str) -> None:
    graph = load_graph(stack)
    assert len(graph["resources"]) > 10
    violations = evaluate(RULES, resources(graph), context(stack), STACK_RULES)
    mandatory = [v for v in violations if v.enforcement == "mandatory"]
    assert mandatory == [], "\n".join(f"{v.rule} {v.resource_name}: {v.message}" for v in mandatory)
    advice = {(v.rule, v.resource_name) for v in violations if v.enforcement == "advisory"}
    assert advice == EXPECTED_ADVICE.get(stack, set())


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_rules_actually_ran_on_the_cloud_stacks(stack: str) -> None:
    """Guard against a vacuous pass: every GCP rule applies to some resource of the stack."""
    types = {r.type for r in resources(load_graph(stack))}
    applied = {rule.name for rule in RULES if any(rule.applies_to(type_) for type_ in types)}
    gcp_rules = {rule.name for rule in RULES if not rule.name.startswith(("docker-", "k8s-", "aws-"))}
    # No service account key is created (the point of that rule). Staging has no Cloud Run invoker
    # binding (it lists no scamguard:gcpInvokers); prod has its edge's (allUsers on the API behind
    # the load balancer, IAP's agent on Grafana).
    # Staging has no load balancer either, so no backend service.
    staging_only = {"cloud-run-no-public-invoker", "gcp-edge-backend-security-policy"}
    expected = {"gcp-no-service-account-keys"} | (staging_only if stack == "staging" else set())
    assert gcp_rules - applied == expected


@pytest.mark.parametrize("stack", ["aws-staging", "aws-prod"])
def test_aws_rules_ran_on_the_aws_stacks(stack: str) -> None:
    types = {r.type for r in resources(load_graph(stack))}
    aws_rules = [rule for rule in RULES if rule.name.startswith("aws-")]
    assert len(aws_rules) == 6
    assert all(any(rule.applies_to(type_) for type_ in types) for rule in aws_rules)


@pytest.mark.parametrize("stack", ["k8s-staging", "k8s-prod"])
def test_kubernetes_rules_ran_on_the_kubernetes_stacks(stack: str) -> None:
    types = {r.type for r in resources(load_graph(stack))}
    k8s_rules = [rule for rule in RULES if rule.name.startswith("k8s-")]
    assert len(k8s_rules) == 6
    assert all(any(rule.applies_to(type_) for type_ in types) for rule in k8s_rules)


def test_docker_rules_ran_on_the_local_stack() -> None:
    types = {r.type for r in resources(load_graph("local"))}
    docker_rules = {rule.name for rule in RULES if rule.name.startswith("docker-")}
    assert docker_rules
    assert all(any(rule.applies_to(type_) for type_ in types) for rule in RULES if rule.name in docker_rules)


def test_public_variants_are_judged_by_the_stack_config() -> None:
    """scamguard:public=true: allowed on staging; on prod only with allowPublicProduction."""
    public = {"scamguard:public": "true"}
    staging = load_graph("staging", public)
    assert evaluate(RULES, resources(staging), context("staging", public)) == []

    # Without the load balancer, so that allUsers comes from `public` alone.
    public = {
        **public,
        "scamguard:gcpDomain": "",
        "scamguard:gcpGrafanaDomain": "",
        "scamguard:gcpIngress": "all",
    }
    prod = load_graph("prod", public)
    violations = evaluate(RULES, resources(prod), context("prod", public))
    assert sorted((v.rule, v.resource_name) for v in violations) == [
        ("cloud-run-no-public-invoker", "scamguard-service-invoker-allusers"),
        ("cloud-run-production-behind-edge", "scamguard-service-service"),
    ]
    assert "allowPublicProduction" in next(
        v.message for v in violations if v.rule == "cloud-run-no-public-invoker"
    )
    opted_in = context("prod", public, {"cloud-run-no-public-invoker": {"allowPublicProduction": True}})
    assert evaluate(RULES, resources(prod), opted_in) == []
