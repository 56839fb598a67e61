"""The real program (__main__.py), per Pulumi.<stack>.yaml, under Pulumi's mocks.

Each stack runs in a fresh interpreter (infra.preview.graph_in_subprocess): the program's config
comes from the stack file merged over the Pulumi.yaml defaults, exactly as `pulumi up` gives it.
Mocked state uses the providers' camelCase input names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra import preview
from infra.preview import stack_files
from tests.infra.graph_helpers import one, resources

Graph = Callable[..., dict[str, Any]]
CONTAINER = "docker:index/container:Container"
OUTPUTS = {"service_url", "image_ref", "prometheus_url", "grafana_url"}


def test_the_repository_has_the_stacks_of_every_implemented_target() -> None:
    expected = {"local", "staging", "prod", "aws-staging", "aws-prod", "k8s-staging", "k8s-prod"}
    assert expected <= set(stack_files())


@pytest.mark.parametrize("stack", sorted(stack_files()))
def test_every_stack_runs_and_exports_the_common_outputs(stack_graph: Graph, stack: str) -> None:
    graph = stack_graph(stack)
    assert "error" not in graph, graph.get("error")
    assert set(graph["outputs"]) >= OUTPUTS
    # One shared image build per stack, for the platform every target runs.
    build = one(graph, "docker-build:index:Image", "scamguard-image-build")
    assert build["parent"] == "scamguard:image:ServiceImage::scamguard-image"
    assert build["inputs"]["platforms"] == ["linux/amd64"]
    assert build["inputs"]["context"] == {"location": "."}
    assert build["inputs"]["dockerfile"] == {"location": "service/Dockerfile"}
    assert set(build["inputs"]["buildArgs"]) == {"BASE_IMAGE", "VERSION", "REVISION", "MODEL_VERSION"}
    # Only components (one per concern, named by the target) sit at the top; resources are children.
    top = [r for r in graph["resources"] if r["parent"].startswith("pulumi:pulumi:Stack::")]
    inline = [f"{r['type']}::{r['name']}" for r in top if r["custom"]]
    assert not inline, f"resources created outside a component (give them parent=a component): {inline}"
    assert len({r["type"] for r in top} - {"scamguard:image:ServiceImage"}) >= 5


@pytest.mark.parametrize("stack", ["staging", "prod", "aws-staging", "aws-prod", "k8s-staging", "k8s-prod"])
def test_cloud_stacks_push_and_deploy_by_digest(stack_graph: Graph, stack: str) -> None:
    graph = stack_graph(stack)
    build = one(graph, "docker-build:index:Image", "scamguard-image-build")
    assert build["inputs"]["push"] is True
    assert "@sha256:" in graph["outputs"]["image_ref"]


def test_local_components_are_the_five_concerns(stack_graph: Graph) -> None:
    top = {r["type"] for r in stack_graph("local")["resources"] if r["parent"].startswith("pulumi:")}
    assert top == {
        "scamguard:image:ServiceImage",
        *(f"scamguard:local:{c}" for c in ("Registry", "Network", "Identity", "Service", "Monitoring")),
    }


def test_local_stack_builds_into_the_engine_and_runs_three_containers(stack_graph: Graph) -> None:
    graph = stack_graph("local")
    build = one(graph, "docker-build:index:Image", "scamguard-image-build")
    assert build["inputs"]["push"] is False
    assert build["inputs"]["load"] is True
    assert build["inputs"]["tags"] == ["scamguard-api:0.1.0"]
    network = one(graph, "docker:index/network:Network", "scamguard-net")
    assert network["inputs"]["name"] == "scamguard-local"
    assert network["inputs"]["driver"] == "bridge"
    names = sorted(c["inputs"]["name"] for c in resources(graph, CONTAINER))
    assert names == ["scamguard-local-api", "scamguard-local-grafana", "scamguard-local-prometheus"]
    for container in resources(graph, CONTAINER):
        inputs = container["inputs"]
        assert inputs["capabilities"] == {"drops": ["ALL"]}
        assert inputs["securityOpts"] == ["no-new-privileges:true"]
        assert inputs["restart"] == "unless-stopped"
        assert [p["ip"] for p in inputs["ports"]] == ["127.0.0.1"], "published on loopback only"
        assert inputs["networksAdvanced"][0]["name"] == "scamguard-local"
        assert inputs["healthcheck"]["tests"][0] == "CMD"
        assert inputs["wait"] is True
        assert inputs["logOpts"] == {"max-file": "3", "max-size": "10m"}
    assert graph["outputs"] == {
        "service_url": "http://127.0.0.1:8080",
        "image_ref": "scamguard-api:0.1.0",
        "prometheus_url": "http://127.0.0.1:9090",
        "grafana_url": "http://127.0.0.1:3000",
        "grafana_admin_password": "[secret]",
    }


def test_local_api_container_is_hardened_and_configured(stack_graph: Graph) -> None:
    api = one(stack_graph("local"), CONTAINER, "scamguard-api")["inputs"]
    assert api["image"] == "scamguard-api:0.1.0"
    assert api["user"] == "10001:10001"
    assert api["readOnly"] is True
    assert api["tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=16m"}
    assert api["ports"] == [{"external": 8080, "internal": 8080, "ip": "127.0.0.1"}]
    assert "/readyz" in api["healthcheck"]["tests"][-1]
    assert api["stopSignal"] == "SIGTERM"
    assert api["stopTimeout"] == 15  # the service's 10 s drain + margin
    env = dict(item.split("=", 1) for item in api["envs"])
    assert env["HOST"] == "0.0.0.0"
    assert env["PORT"] == "8080"
    assert env["SCAMGUARD_RATE_LIMIT"] == "50/second"
    assert env["SCAMGUARD_SHUTDOWN_GRACE_SECONDS"] == "10"
    assert "SCAMGUARD_API_KEYS" not in env
    labels = {label["label"]: label["value"] for label in api["labels"]}
    assert labels["io.scamguard.image.digest"].startswith("sha256:"), "a rebuild must replace the container"
    assert labels["io.scamguard.stack"] == "local"


def test_local_api_keys_are_a_secret_input(stack_graph: Graph) -> None:
    graph = stack_graph("local", {"scamguard:apiKeys": "k1,k2"})
    assert one(graph, CONTAINER, "scamguard-api")["inputs"]["envs"] == "[secret]"


def test_local_prometheus_and_grafana_get_the_rendered_monitoring_files(stack_graph: Graph) -> None:
    graph = stack_graph("local")
    prometheus = one(graph, CONTAINER, "scamguard-prometheus")["inputs"]
    assert prometheus["image"].startswith("sha256:")
    image = one(graph, "docker:index/remoteImage:RemoteImage", "scamguard-prometheus-image")["inputs"]
    assert image == {"keepLocally": True, "name": "prom/prometheus:v2.55.1"}
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    files = {u["file"] for u in prometheus["uploads"]}
    assert "/etc/prometheus/prometheus.yml" in files
    assert any(f.startswith("/etc/prometheus/rules/") and f.endswith(".alerts.yml") for f in files)
    assert prometheus["volumes"][0]["containerPath"] == "/prometheus"
    grafana = one(graph, CONTAINER, "scamguard-grafana")["inputs"]
    files = {u["file"] for u in grafana["uploads"]}
    assert any(f.startswith("/etc/grafana/provisioning/datasources/") for f in files)
    assert any(f.startswith("/etc/grafana/provisioning/dashboards/") for f in files)
    assert any(f.endswith(".json") and f.startswith("/var/lib/grafana/dashboards/") for f in files)
    assert grafana["envs"] == "[secret]", "the admin password is generated and kept secret"


def test_local_monitoring_files_target_the_stack_network_names() -> None:
    from infra.monitoring import render
    from infra.platform import monitoring_config
    from infra.targets.local.monitoring import container_path

    settings_like = _local_settings()
    files = render(
        monitoring_config(
            settings_like, ["scamguard-local-api:8080"], "http://scamguard-local-prometheus:9090"
        )
    )
    assert "scamguard-local-api:8080" in files["prometheus/prometheus.yml"]
    datasources = [text for path, text in files.items() if "/provisioning/datasources/" in path]
    assert any("http://scamguard-local-prometheus:9090" in text for text in datasources)
    for path in files:
        assert container_path(path).startswith(("/etc/prometheus/", "/etc/grafana/", "/var/lib/grafana/"))


def _local_settings() -> Any:
    import pulumi
    from pulumi.runtime import config as runtime_config

    from infra.config import load_settings
    from tests.infra.conftest import NoResources

    runtime_config.set_all_config({"scamguard:target": "local"}, [])
    pulumi.runtime.set_mocks(NoResources(), project="scamguard", stack="local")
    try:
        return load_settings()
    finally:
        runtime_config.set_all_config({}, [])


def test_every_target_is_implemented() -> None:
    from infra.config import TARGETS

    stacks = {preview.stack_config(s)[0]["scamguard:target"] for s in stack_files()}
    assert stacks == set(TARGETS)  # a stack per target, each runs (above)


def test_bad_config_stops_the_program_with_the_key_and_no_resources(stack_graph: Graph) -> None:
    graph = stack_graph("local", {"scamguard:maxInstances": "lots"})
    assert "resources" not in graph
    assert graph["error"].startswith("RunError: invalid config scamguard:maxInstances = 'lots'")
