"""The Kubernetes target under Pulumi's mocks: the real program for k8s-staging, k8s-prod (with every
secret set) and a variant attached to an existing Prometheus Operator with a shared Redis."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from infra import preview
from infra.monitoring import dashboards, rule_groups
from infra.monitoring.dashboards import DATASOURCE_UID
from infra.platform import monitoring_config
from infra.targets.kubernetes.monitoring import CHART, CHART_VERSION
from infra.targets.kubernetes.platform import redis_port

from . import mocked_program
from .mocked_program import Record, unwrap

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
API_KEYS = "key-one-0123456789,key-two-9876543210"


class Cluster(Record):
    @property
    def namespace(self) -> str:
        return f"scamguard-{self.stack}"

    @property
    def pod(self) -> dict[str, Any]:
        return self.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]

    @property
    def api(self) -> dict[str, Any]:
        return self.pod["containers"][0]

    @property
    def env(self) -> dict[str, str]:
        return {e["name"]: e["value"] for e in self.api["env"]}

    def policy(self, name: str) -> dict[str, Any]:
        return self.one(NETWORK_POLICY, f"scamguard-network-{name}").inputs["spec"]

    def custom(self, kind: str) -> dict[str, Any]:
        return self.one(f"kubernetes:monitoring.coreos.com/v1:{kind}").inputs

    def values(self) -> dict[str, Any]:
        return unwrap(self.one(RELEASE).inputs["values"])


def run(
    stack: str, overrides: dict[str, str] | None = None, secrets: dict[str, str] | None = None
) -> Cluster:
    return mocked_program.run_stack(Cluster, stack, overrides, secrets)


@pytest.fixture(scope="module")
def staging() -> Cluster:
    return run("k8s-staging")


@pytest.fixture(scope="module")
def prod() -> Cluster:
    return run(
        "k8s-prod",
        overrides={
            "scamguard:notificationEmail": "oncall@example.com",
            "scamguard:k8sRegistryUsername": "robot",
        },
        secrets={
            "scamguard:apiKeys": API_KEYS,
            "scamguard:k8sRegistryPassword": "registry-token",
            "scamguard:k8sSmtpPassword": "smtp-password",
        },
    )


@pytest.fixture(scope="module")
def existing() -> Cluster:
    """Attached to an operator that selects by a release label, with a shared Redis, no Ingress."""
    return run(
        "k8s-staging",
        overrides={
            "scamguard:k8sMonitoring": "existing",
            "scamguard:k8sPrometheusUrl": "http://prometheus-operated.observability.svc:9090",
            "scamguard:k8sMonitoringNamespace": "observability",
            "scamguard:k8sMonitoringReleaseLabel": "prom",
            "scamguard:k8sHost": "",
            "scamguard:rateLimitStorageUri": "async+redis://redis.shared.svc:6380/0",
        },
    )


# --------------------------------------------------------------------------- the five concerns


def test_components_are_the_five_concerns(staging: Cluster) -> None:
    graph = preview.graph_in_subprocess("k8s-staging")
    top = {r["type"] for r in graph["resources"] if r["parent"].startswith("pulumi:")}
    assert top == {
        "scamguard:kubernetes:OciRegistry",
        "scamguard:kubernetes:NamespaceNetwork",
        "scamguard:kubernetes:ServiceAccountIdentity",
        "scamguard:image:ServiceImage",
        "scamguard:kubernetes:Service",
        "scamguard:kubernetes:Monitoring",
    }


def test_namespace_enforces_restricted_pod_security(staging: Cluster) -> None:
    namespace = staging.one("kubernetes:core/v1:Namespace", "scamguard-network-namespace").inputs["metadata"]
    assert namespace["name"] == "scamguard-k8s-staging"
    for mode in ("enforce", "audit", "warn"):
        assert namespace["labels"][f"pod-security.kubernetes.io/{mode}"] == "restricted"
    # Everything of the stack lives in it.
    for r in staging.resources:
        if r.type.startswith("kubernetes:") and r.type not in ("kubernetes:core/v1:Namespace", RELEASE):
            if r.type in (CONFIG_MAP,) or r.name == "scamguard-monitoring-grafana-admin":
                assert r.inputs["metadata"]["namespace"] == "monitoring", r.name
            else:
                assert r.inputs["metadata"]["namespace"] == staging.namespace, r.name


# --------------------------------------------------------------------------- the workload


def test_pod_is_locked_down(staging: Cluster, prod: Cluster) -> None:
    for cluster in (staging, prod):
        pod, api = cluster.pod, cluster.api
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        context = api["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["privileged"] is False
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == "scamguard"
        assert "hostNetwork" not in pod
        assert "hostPID" not in pod
        assert not any("hostPath" in v for v in pod["volumes"])


def test_image_by_digest_and_no_replicas_while_the_autoscaler_owns_them(prod: Cluster) -> None:
    deployment = prod.one(DEPLOYMENT).inputs
    assert "replicas" not in deployment["spec"]
    assert prod.api["image"].startswith("ghcr.io/scamguard/scamguard-api@sha256:")
    assert prod.outputs["image_ref"] == prod.api["image"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}


def test_probes_resources_and_spread(prod: Cluster) -> None:
    api = prod.api
    assert api["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["resources"] == {
        "requests": {"cpu": "1", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    keys = {c["topologyKey"] for c in prod.pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_drain_fits_the_termination_grace(prod: Cluster) -> None:
    # preStop keeps serving while endpoints propagate, then SIGTERM starts the service's drain.
    pre_stop = prod.api["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = int(prod.env["SCAMGUARD_SHUTDOWN_GRACE_SECONDS"])
    assert pre_stop == 5
    assert grace == 10
    assert prod.pod["terminationGracePeriodSeconds"] == pre_stop + grace + 2
    assert "SCAMGUARD_SHUTDOWN_DRAIN_DELAY_SECONDS" not in prod.env  # the preStop hook is the delay


def test_environment_is_the_service_contract(prod: Cluster) -> None:
    env = prod.env
    assert env["PORT"] == "8080"
    assert env["SCAMGUARD_FORWARDED_HOPS"] == "1"
    assert int(env["SCAMGUARD_KEEP_ALIVE_SECONDS"]) > 60  # above ingress-nginx's upstream keep-alive
    assert env["SCAMGUARD_API_KEYS_FILE"] == "/secrets/api-keys/keys"
    assert env["SCAMGUARD_DOCS_ENABLED"] == "false"
    assert "SCAMGUARD_API_KEYS" not in env  # never a plain variable


def test_api_keys_are_a_mounted_secret_never_plain(prod: Cluster, staging: Cluster) -> None:
    secret = next(r for r in prod.of_type(SECRET) if r.name == "scamguard-service-api-keys")
    data = secret.inputs["stringData"]
    assert preview._SECRET_SIG_KEY in data, "the API keys must stay a Pulumi secret"
    assert unwrap(data) == {"keys": "key-one-0123456789\nkey-two-9876543210\n"}
    assert "name" not in secret.inputs["metadata"]  # auto-named: new keys roll the pods
    volume = next(v for v in prod.pod["volumes"] if v["name"] == "api-keys")
    assert volume["secret"] == {"secretName": "scamguard-service-api-keys-mock1234", "defaultMode": 0o440}
    # No keys configured: one is generated, never an open API.
    assert staging.one("random:index/randomPassword:RandomPassword", "scamguard-service-api-key")


def test_autoscaler_and_disruption_budget(staging: Cluster, prod: Cluster) -> None:
    for cluster, (low, high) in ((staging, (1, 3)), (prod, (2, 10))):
        spec = cluster.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (low, high)
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scamguard"}
        assert spec["metrics"][0]["resource"]["name"] == "cpu"
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
        budget = cluster.one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
        assert budget["maxUnavailable"] == 1


def test_min_instances_zero_is_refused() -> None:
    graph = preview.graph_in_subprocess("k8s-staging", {"scamguard:minInstances": "0"})
    assert "minInstances" in graph["error"]
    assert "HorizontalPodAutoscaler" in graph["error"]


# --------------------------------------------------------------------------- the way in


def test_ingress_is_tls_with_class_host_and_no_await(staging: Cluster, prod: Cluster) -> None:
    for cluster, host in (
        (staging, "api.staging.scamguard.example.com"),
        (prod, "api.scamguard.example.com"),
    ):
        ingress = cluster.one(INGRESS).inputs
        annotations = ingress["metadata"]["annotations"]
        assert annotations["pulumi.com/skipAwait"] == "true"
        assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
        assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "2097152"
        spec = ingress["spec"]
        assert spec["ingressClassName"] == "nginx"
        assert spec["tls"] == [{"hosts": [host], "secretName": "scamguard-tls"}]
        assert cluster.outputs["service_url"] == f"https://{host}"


def test_ingress_routes_the_api_only(staging: Cluster, prod: Cluster) -> None:
    def paths(cluster: Cluster) -> set[str]:
        rule = cluster.one(INGRESS).inputs["spec"]["rules"][0]
        return {p["path"] for p in rule["http"]["paths"]}

    assert paths(prod) == {"/v1", "/v2"}  # /metrics and /readyz stay inside the cluster
    assert paths(staging) == {"/v1", "/v2", "/docs", "/redoc", "/openapi.json"}


def test_no_host_no_ingress(existing: Cluster) -> None:
    assert existing.of_type(INGRESS) == []
    assert existing.outputs["service_url"] == "http://scamguard.scamguard-k8s-staging.svc.cluster.local"


def test_network_policies_deny_by_default(staging: Cluster, existing: Cluster) -> None:
    assert staging.policy("default-deny") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    ingress = staging.policy("api-ingress")["ingress"]
    sources = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in ingress[0]["from"]
    }
    assert sources == {"ingress-nginx", "monitoring"}
    assert ingress[0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    dns = staging.policy("dns-egress")["egress"][0]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    names = {r.name for r in staging.of_type(NETWORK_POLICY)}
    assert "scamguard-network-redis-egress" not in names  # in-memory limits: no egress but DNS
    redis = existing.policy("redis-egress")["egress"][0]
    assert redis["ports"] == [{"protocol": "TCP", "port": 6380}]
    monitoring = existing.policy("api-ingress")["ingress"][0]["from"][1]
    assert monitoring["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "observability"


def test_redis_port_from_the_storage_uri() -> None:
    assert redis_port("memory://") is None
    assert redis_port("async+redis://redis:6379") == 6379
    assert redis_port("async+redis://redis.shared.svc") == 6379
    assert redis_port("async+rediss://cache.example.com:6390/1") == 6390


# --------------------------------------------------------------------------- identity


def test_service_account_has_no_token_and_no_rbac(staging: Cluster, prod: Cluster) -> None:
    for cluster in (staging, prod):
        account = cluster.one("kubernetes:core/v1:ServiceAccount").inputs
        assert account["automountServiceAccountToken"] is False
        rbac = [r for r in cluster.resources if "rbac.authorization.k8s.io" in r.type]
        assert rbac == []
    assert "imagePullSecrets" not in staging.one("kubernetes:core/v1:ServiceAccount").inputs


def test_registry_credentials_become_a_pull_secret(prod: Cluster) -> None:
    account = prod.one("kubernetes:core/v1:ServiceAccount").inputs
    assert account["imagePullSecrets"] == [{"name": "scamguard-registry"}]
    secret = prod.one(SECRET, "scamguard-identity-pull-secret").inputs
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert preview._SECRET_SIG_KEY in secret["stringData"]
    config = json.loads(unwrap(secret["stringData"])[".dockerconfigjson"])
    auth = config["auths"]["ghcr.io"]
    assert base64.b64decode(auth["auth"]).decode() == "robot:registry-token"
    build = prod.one("docker-build:index:Image").inputs
    assert build["tags"][0].startswith("ghcr.io/scamguard/scamguard-api:")
    assert build["push"] is True


# --------------------------------------------------------------------------- monitoring


def test_chart_is_pinned_and_selects_without_release_labels(prod: Cluster) -> None:
    release = prod.one(RELEASE).inputs
    assert (release["chart"], release["version"]) == (CHART, CHART_VERSION)
    assert release["repositoryOpts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    spec = prod.values()["prometheus"]["prometheusSpec"]
    for key in ("serviceMonitorSelectorNilUsesHelmValues", "ruleSelectorNilUsesHelmValues"):
        assert spec[key] is False
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    sidecar = prod.values()["grafana"]["sidecar"]
    assert sidecar["dashboards"]["label"] == "grafana_dashboard"
    assert sidecar["datasources"]["label"] == "grafana_datasource"


def test_alerts_go_to_the_notification_email(prod: Cluster, staging: Cluster) -> None:
    assert preview._SECRET_SIG_KEY in prod.one(RELEASE).inputs["values"]  # the SMTP password is in it
    config = prod.values()["alertmanager"]["config"]
    assert config["global"]["smtp_smarthost"] == "smtp.example.com:587"
    assert config["global"]["smtp_auth_password"] == "smtp-password"
    email = next(r for r in config["receivers"] if r["name"] == "email")
    assert email["email_configs"][0]["to"] == "oncall@example.com"
    assert [r["name"] for r in staging.values()["alertmanager"]["config"]["receivers"]] == ["null"]


def test_service_monitor_scrapes_the_api_as_job_scamguard(staging: Cluster, existing: Cluster) -> None:
    monitor = staging.custom("ServiceMonitor")
    spec = monitor["spec"]
    # The job label takes the Service's app.kubernetes.io/name, the job the rules select.
    assert spec["jobLabel"] == "app.kubernetes.io/name"
    service = staging.one("kubernetes:core/v1:Service").inputs
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "scamguard"
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "http"
    assert spec["endpoints"][0]["path"] == "/metrics"
    assert "release" not in monitor["metadata"]["labels"]
    assert existing.custom("ServiceMonitor")["metadata"]["labels"]["release"] == "prom"
    assert existing.custom("PrometheusRule")["metadata"]["labels"]["release"] == "prom"


def _config(cluster: Cluster, prometheus_url: str):
    return monitoring_config(
        cluster.settings,
        [f"scamguard.{cluster.namespace}.svc:80"],
        prometheus_url,
        series_selector=f'namespace="{cluster.namespace}"',
    )


def test_rules_and_dashboards_are_the_shared_ones(prod: Cluster) -> None:
    config = _config(prod, "http://kps-prometheus.monitoring.svc.cluster.local:9090")
    assert prod.custom("PrometheusRule")["spec"]["groups"] == rule_groups(config)
    boards = {
        r.name.removeprefix("scamguard-monitoring-dashboard-"): r.inputs["data"]
        for r in prod.of_type(CONFIG_MAP)
        if r.inputs["metadata"]["labels"].get("grafana_dashboard") == "1"
    }
    expected = dashboards(config)
    assert set(boards) == set(expected)
    for uid, data in boards.items():
        assert json.loads(data[f"{uid}.json"]) == expected[uid]
        assert 'namespace=\\"scamguard-k8s-prod\\"' in data[f"{uid}.json"]


def test_grafana_datasource_has_the_dashboards_uid(prod: Cluster, existing: Cluster) -> None:
    import yaml

    for cluster, url in (
        (prod, "http://kps-prometheus.monitoring.svc.cluster.local:9090"),
        (existing, "http://prometheus-operated.observability.svc:9090"),
    ):
        source = next(
            r for r in cluster.of_type(CONFIG_MAP) if r.inputs["metadata"]["labels"].get("grafana_datasource")
        )
        (text,) = source.inputs["data"].values()
        datasource = yaml.safe_load(text)["datasources"][0]
        assert (datasource["uid"], datasource["url"]) == (DATASOURCE_UID, url)
        assert datasource["isDefault"] is False  # Grafana refuses two defaults; the chart's is one
        assert cluster.outputs["prometheus_url"] == url


def test_existing_operator_installs_no_chart(existing: Cluster) -> None:
    assert existing.of_type(RELEASE) == []
    assert not [r for r in existing.of_type("kubernetes:core/v1:Namespace") if "monitoring" in r.name]
    assert existing.outputs["grafana_url"] == "http://kps-grafana.observability.svc.cluster.local"


def test_outputs(prod: Cluster) -> None:
    outputs = prod.outputs
    assert outputs["namespace"] == "scamguard-k8s-prod"
    assert outputs["grafana_url"] == "https://grafana.scamguard.example.com"
    assert outputs["api_keys_secret"] == "scamguard-service-api-keys-mock1234"
    assert outputs["image_digest"].startswith("sha256:")
    assert outputs["in_cluster_url"] == "http://scamguard.scamguard-k8s-prod.svc.cluster.local"
