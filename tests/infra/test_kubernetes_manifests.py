"""The Kubernetes target's manifests against the real schemas, offline: every built-in object with
kubernetes-validate --strict for the oldest and newest supported Kubernetes, the custom resources
against the prometheus-operator CRDs, the rules with promtool, Alertmanager's config with amtool, and
all of it through checkov's kubernetes framework. Each validator is first shown to fail on a broken copy.
"""

from __future__ import annotations

import copy
import pathlib
import re
import shutil
import subprocess
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.tools import require_tool

from .kubernetes_manifests import (
    K8S_VERSIONS,
    is_custom,
    manifests,
    validate_builtin,
    validate_custom,
    write_all,
)
from .test_kubernetes import Cluster, run

CHECKOV = "checkov==3.3.30"  # the same pinned, isolated tool as for the Dockerfile


@pytest.fixture(scope="module")
def documents() -> dict[str, list[dict[str, Any]]]:
    """Every object of both Kubernetes stacks, prod with every secret and option set, plus the
    variant attached to an existing operator with a shared Redis."""
    clusters: list[Cluster] = [
        run("k8s-staging"),
        run(
            "k8s-prod",
            overrides={
                "scamguard:notificationEmail": "oncall@example.com",
                "scamguard:k8sRegistryUsername": "robot",
            },
            secrets={
                "scamguard:apiKeys": "key-one-0123456789",
                "scamguard:k8sRegistryPassword": "registry-token",
                "scamguard:k8sSmtpPassword": "smtp-password",
            },
        ),
        run(
            "k8s-staging",
            overrides={
                "scamguard:k8sMonitoring": "existing",
                "scamguard:k8sPrometheusUrl": "http://prometheus-operated.observability.svc:9090",
                "scamguard:rateLimitStorageUri": "async+redis://redis.shared.svc:6379",
                "scamguard:k8sHost": "",
            },
        ),
    ]
    return {f"{c.stack}-{i}": manifests(c.resources) for i, c in enumerate(clusters)}


def _all(documents: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [d for docs in documents.values() for d in docs]


def _one(documents: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(d for d in _all(documents) if d["kind"] == kind))


def test_every_kind_is_rendered(documents: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {d["kind"] for d in _all(documents)}
    assert kinds >= {
        "Namespace",
        "NetworkPolicy",
        "ServiceAccount",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Ingress",
        "ConfigMap",
        "ServiceMonitor",
        "PrometheusRule",
    }


# --------------------------------------------------------------------------- built-in objects


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_builtin_objects_pass_strict_validation(
    documents: dict[str, list[dict[str, Any]]], version: str
) -> None:
    builtins = [d for d in _all(documents) if not is_custom(d)]
    assert len(builtins) > 30
    problems = []
    for document in builtins:
        try:
            validate_builtin(document, version)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{document['kind']} {document['metadata']['name']}: {exc}")
    assert problems == []


@pytest.mark.parametrize(
    "break_it",
    [
        # A field Kubernetes does not have (strict mode rejects what the API server would drop).
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(securityContexts={}),
        # A wrong type.
        lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriodSeconds="17"),
        # A required field missing.
        lambda d: d["spec"].pop("selector"),
    ],
    ids=["unknown-field", "wrong-type", "missing-selector"],
)
def test_strict_validation_fails_on_a_broken_deployment(
    documents: dict[str, list[dict[str, Any]]], break_it
) -> None:
    deployment = _one(documents, "Deployment")
    validate_builtin(deployment, K8S_VERSIONS[-1])
    break_it(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(deployment, K8S_VERSIONS[-1])


# --------------------------------------------------------------------------- custom resources


def test_custom_resources_match_the_operator_crds(documents: dict[str, list[dict[str, Any]]]) -> None:
    custom = [d for d in _all(documents) if is_custom(d)]
    assert {d["kind"] for d in custom} == {"ServiceMonitor", "PrometheusRule"}
    for document in custom:
        validate_custom(document)


@pytest.mark.parametrize(
    ("kind", "break_it"),
    [
        ("ServiceMonitor", lambda d: d["spec"]["endpoints"][0].update(interval="15 seconds")),
        ("ServiceMonitor", lambda d: d["spec"]["endpoints"][0].update(targetPortName="http")),
        ("PrometheusRule", lambda d: d["spec"]["groups"][0].pop("name")),
        ("PrometheusRule", lambda d: d["spec"]["groups"][0]["rules"][0].update(expression="up")),
    ],
    ids=["bad-duration", "unknown-endpoint-field", "group-without-name", "unknown-rule-field"],
)
def test_crd_validation_fails_on_a_broken_copy(
    documents: dict[str, list[dict[str, Any]]], kind: str, break_it
) -> None:
    document = _one(documents, kind)
    validate_custom(document)
    break_it(document)
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(document)


# --------------------------------------------------------------------------- promtool, amtool


def _promtool_check(groups: list[dict[str, Any]], folder: pathlib.Path) -> subprocess.CompletedProcess[str]:
    path = folder / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    return subprocess.run(
        [require_tool("promtool", "prometheus"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_prometheus_rule_groups_pass_promtool(
    documents: dict[str, list[dict[str, Any]]], tmp_path: pathlib.Path
) -> None:
    rules = _one(documents, "PrometheusRule")
    result = _promtool_check(rules["spec"]["groups"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = copy.deepcopy(rules["spec"]["groups"])
    broken[0]["rules"][0]["expr"] = "sum(rate(x[5m]) by"
    assert _promtool_check(broken, tmp_path).returncode != 0


def _amtool_check(config: dict[str, Any], folder: pathlib.Path) -> subprocess.CompletedProcess[str]:
    path = folder / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return subprocess.run(
        [require_tool("amtool", "prometheus-alertmanager"), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("stack", ["k8s-staging", "k8s-prod"])
def test_alertmanager_config_passes_amtool(stack: str, tmp_path: pathlib.Path) -> None:
    from .mocked_program import unwrap

    cluster = run(
        stack,
        overrides={"scamguard:notificationEmail": "oncall@example.com"} if stack == "k8s-prod" else {},
        secrets={"scamguard:k8sSmtpPassword": "smtp-password"} if stack == "k8s-prod" else {},
    )
    values = unwrap(cluster.one("kubernetes:helm.sh/v3:Release").inputs["values"])
    config = values["alertmanager"]["config"]
    result = _amtool_check(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = copy.deepcopy(config)
    broken["route"]["receiver"] = "nobody"  # a receiver that is not defined
    assert _amtool_check(broken, tmp_path).returncode != 0


# --------------------------------------------------------------------------- checkov


def _checkov(folder: pathlib.Path) -> tuple[int, str]:
    uv = shutil.which("uv") or require_tool("uv", "uv (scripts/setup.sh)")
    proc = subprocess.run(
        [
            *(uv, "tool", "run", "--from", CHECKOV, "checkov"),
            *("--skip-download", "--framework", "kubernetes", "--compact", "--quiet", "-d", str(folder)),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
def test_checkov_reports_no_failures(
    documents: dict[str, list[dict[str, Any]]], tmp_path: pathlib.Path
) -> None:
    objects = [d for d in _all(documents) if not is_custom(d)]
    rc, out = _checkov(write_all(objects, tmp_path / "ok"))
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", out)
    assert summary, out
    passed, failed, skipped = map(int, summary.groups())
    assert rc == 0, out
    assert failed == 0, out
    assert passed > 50
    # Every skip is an annotation `checkov.io/skipN: CKV_K8S_N=<reason>` on the object itself.
    justified = [
        value
        for d in objects
        for key, value in (d["metadata"].get("annotations") or {}).items()
        if key.startswith("checkov.io/skip")
    ]
    assert all(re.fullmatch(r"CKV2?_K8S_\d+=\S.{10,}", v) for v in justified), justified
    assert skipped == sum(
        1
        for d in objects
        if d["kind"] == "Deployment"
        for key in (d["metadata"].get("annotations") or {})
        if key.startswith("checkov.io/skip")
    ), out
    # A broken copy fails: the API container made privileged.
    deployment = copy.deepcopy(next(d for d in objects if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    rc, out = _checkov(write_all([deployment], tmp_path / "broken"))
    assert rc != 0, out
    assert "CKV_K8S_16" in out, out
