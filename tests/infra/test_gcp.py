"""The GCP target under Pulumi's mocks: the real program, per stack (staging, prod, a public variant).

Each deployment runs once per module inside ``@pulumi.runtime.test`` (which waits for every resource
registration), records what was registered, and the tests assert on those records afterwards, so an
assertion can never be skipped inside an unresolved Output. Mocked inputs are camelCase.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from infra import preview
from infra.config import Settings
from infra.monitoring import MonitoringConfig, alert_names, dashboards, rule_groups
from infra.monitoring.promql import metric_names
from infra.platform import monitoring_config
from infra.targets.gcp.apis import IAP_API, REQUIRED_APIS
from infra.targets.gcp.identity import PRIMITIVE_ROLES
from infra.targets.gcp.service import GMP_SIDECAR_IMAGE, SCRAPE_JOB, run_monitoring_config

from . import mocked_program
from .mocked_program import Registered, unwrap

RUN_SERVICE = "gcp:cloudrunv2/service:Service"
RUN_INVOKER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
PROJECT_IAM = "gcp:projects/iAMMember:IAMMember"
REPO_IAM = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
SECRET_IAM = "gcp:secretmanager/secretIamMember:SecretIamMember"
BUCKET_IAM = "gcp:storage/bucketIAMMember:BucketIAMMember"
IAM_TYPES = (PROJECT_IAM, REPO_IAM, SECRET_IAM, BUCKET_IAM, RUN_INVOKER)
# Resource types that take labels, and the input that holds them.
LABELABLE = {
    RUN_SERVICE: "labels",
    "gcp:artifactregistry/repository:Repository": "labels",
    "gcp:secretmanager/secret:Secret": "labels",
    "gcp:storage/bucket:Bucket": "labels",
    "gcp:monitoring/alertPolicy:AlertPolicy": "userLabels",
    "gcp:monitoring/notificationChannel:NotificationChannel": "userLabels",
}
API_KEYS = "key-one-0123456789,key-two-9876543210"


@dataclass
class Deployment:
    stack: str
    resources: list[Registered]
    outputs: dict[str, Any]
    settings: Settings

    @property
    def monitoring(self) -> MonitoringConfig:
        return monitoring_config(
            self.settings,
            ["127.0.0.1:8080"],
            "http://127.0.0.1:9090",
            series_selector=f'namespace="scamguard-{self.stack}"',
        )

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Registered:
        found = [r for r in self.of_type(type_) if r.name == name]
        assert len(found) == 1, (
            f"expected one {type_} named {name}, got {[r.name for r in self.of_type(type_)]}"
        )
        return found[0]

    def run_service(self, service_name: str) -> Registered:
        found = [r for r in self.of_type(RUN_SERVICE) if r.inputs.get("name") == service_name]
        assert len(found) == 1, f"no Cloud Run service {service_name}"
        return found[0]

    @property
    def api(self) -> Registered:
        return self.run_service(f"scamguard-{self.stack}")

    def container(self, service: Registered, name: str) -> dict[str, Any]:
        return next(c for c in service.inputs["template"]["containers"] if c["name"] == name)

    def iam_of(self, member: str) -> set[tuple[str, str, str]]:
        """(type, role, scope) of every binding granted to `member`."""
        out = set()
        for r in self.resources:
            if r.type in IAM_TYPES and r.inputs.get("member") == member:
                scope = str(
                    r.inputs.get("repository")
                    or r.inputs.get("secretId")
                    or r.inputs.get("bucket")
                    or "project"
                )
                out.add((r.type, r.inputs["role"], scope))
        return out


def run_stack(
    stack: str, overrides: Mapping[str, str] | None = None, secrets: Mapping[str, str] | None = None
) -> Deployment:
    deployment = mocked_program.run_stack(Deployment, stack, overrides, secrets)
    assert len(deployment.resources) > 40, "the GCP program registered too little"
    return deployment


@pytest.fixture(scope="module")
def staging() -> Deployment:
    return run_stack("staging")


@pytest.fixture(scope="module")
def prod() -> Deployment:
    return run_stack(
        "prod",
        overrides={
            "scamguard:notificationEmail": "oncall@example.com",
            "scamguard:gcpInvokers": '["group:clients@example.com"]',
        },
        secrets={"scamguard:apiKeys": API_KEYS},
    )


@pytest.fixture(scope="module")
def public() -> Deployment:
    return run_stack(
        "prod",
        overrides={
            "scamguard:public": "true",
            "scamguard:gcpIngress": "all",
            "scamguard:gcpVpcEgress": "ALL_TRAFFIC",
            "scamguard:gcpStableRevision": "scamguard-prod-00007-abc",
            "scamguard:canaryPercent": "10",
        },
    )


def all_deployments(staging: Deployment, prod: Deployment, public: Deployment) -> Iterator[Deployment]:
    yield from (staging, prod, public)


# --------------------------------------------------------------------------- service: scaling, probes


def test_scaling_bounds_per_stack(staging: Deployment, prod: Deployment) -> None:
    staging_template = staging.api.inputs["template"]
    assert staging_template["scaling"] == {"minInstanceCount": 0, "maxInstanceCount": 3}  # scales to zero
    assert staging_template["maxInstanceRequestConcurrency"] == 32
    prod_template = prod.api.inputs["template"]
    assert prod_template["scaling"] == {"minInstanceCount": 1, "maxInstanceCount": 10}  # a warm minimum
    assert prod_template["maxInstanceRequestConcurrency"] == 32
    # What Cloud Run sends an instance, the instance admits: its proxy's slots plus its queue.
    env = {e["name"]: e["value"] for e in prod.container(prod.api, "api")["envs"]}
    assert int(env["SCAMGUARD_ADMISSION_CONCURRENCY"]) + int(env["SCAMGUARD_ADMISSION_QUEUE_LENGTH"]) == 32
    limits = prod.container(prod.api, "api")["resources"]["limits"]
    assert limits == {"cpu": "1", "memory": "512Mi"}
    # Prod keeps CPU between requests (steady scraping); staging is billed per request.
    assert prod.container(prod.api, "api")["resources"]["cpuIdle"] is False
    assert staging.container(staging.api, "api")["resources"]["cpuIdle"] is True


def test_probes_hit_readyz_and_healthz(staging: Deployment, prod: Deployment) -> None:
    for deployment in (staging, prod):
        api = deployment.container(deployment.api, "api")
        assert api["startupProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
        assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
        assert api["ports"]["containerPort"] == 8080


def test_image_deployed_by_digest_and_outputs(prod: Deployment) -> None:
    image = prod.container(prod.api, "api")["image"]
    assert "@sha256:" in image
    assert image.startswith("europe-west1-docker.pkg.dev/scamguard-prod/scamguard-prod/scamguard-api@")
    assert prod.outputs["image_ref"] == image
    assert prod.outputs["image_digest"].startswith("sha256:")
    assert prod.outputs["service_url"].startswith("https://")
    assert prod.outputs["grafana_url"].startswith("https://")
    assert prod.outputs["prometheus_url"] == (
        "https://monitoring.googleapis.com/v1/projects/scamguard-prod/location/global/prometheus"
    )
    build = prod.of_type("docker-build:index:Image")[0].inputs
    assert build["push"] is True
    assert build["platforms"] == ["linux/amd64"]


def test_registry_cleanup_policies(prod: Deployment) -> None:
    repo = prod.one("gcp:artifactregistry/repository:Repository", "scamguard-registry-docker").inputs
    assert repo["format"] == "DOCKER"
    policies = {p["id"]: p for p in repo["cleanupPolicies"]}
    assert policies["keep-most-recent"]["action"] == "KEEP"
    assert policies["keep-most-recent"]["mostRecentVersions"]["keepCount"] == 20
    assert policies["delete-untagged"]["condition"]["tagState"] == "UNTAGGED"
    assert policies["delete-old"]["action"] == "DELETE"
    assert repo["cleanupPolicyDryRun"] is False


def test_environment_and_drain_fit_cloud_run(prod: Deployment) -> None:
    env = {e["name"]: e.get("value") for e in prod.container(prod.api, "api")["envs"]}
    assert "PORT" not in env  # Cloud Run sets it
    assert env["HOST"] == "0.0.0.0"
    assert env["SCAMGUARD_RATE_LIMIT"] == "50/second"
    assert env["SCAMGUARD_DOCS_ENABLED"] == "false"
    # Cloud Run sends SIGKILL 10 s after SIGTERM; the drain ends before that.
    assert int(env["SCAMGUARD_SHUTDOWN_GRACE_SECONDS"]) < 10
    assert env["SCAMGUARD_API_KEYS_FILE"] == "/secrets/api-keys/keys"
    # Rate limits key on the client address the proxies appended (counted from the right), never
    # on an entry the client wrote: prod has the load balancer and Cloud Run's front end in front.
    assert env["SCAMGUARD_FORWARDED_HOPS"] == "2"
    assert "SCAMGUARD_FORWARDED_ALLOW_IPS" not in env
    # Idle connections outlive the load balancer's backend keep-alive (600 s).
    assert int(env["SCAMGUARD_KEEP_ALIVE_SECONDS"]) > 600


def test_forwarded_hops_without_the_edge(staging: Deployment) -> None:
    env = {e["name"]: e.get("value") for e in staging.container(staging.api, "api")["envs"]}
    assert env["SCAMGUARD_FORWARDED_HOPS"] == "1"
    assert 60 < int(env["SCAMGUARD_KEEP_ALIVE_SECONDS"]) < 600  # above Cloud Run's front end's 60 s


def test_deletion_protection_only_in_prod(staging: Deployment, prod: Deployment) -> None:
    assert prod.api.inputs["deletionProtection"] is True
    assert staging.api.inputs["deletionProtection"] is False
    assert prod.one("gcp:secretmanager/secret:Secret", "scamguard-service-api-keys-secret").inputs[
        "deletionProtection"
    ]


# --------------------------------------------------------------------------- secrets


def test_api_keys_come_from_secret_manager_never_plain(prod: Deployment) -> None:
    api = prod.container(prod.api, "api")
    assert all("valueSource" in e or "key-one" not in str(e.get("value")) for e in api["envs"])
    for resource in prod.resources:
        if resource.type != "gcp:secretmanager/secretVersion:SecretVersion":
            assert "key-one-0123456789" not in repr(resource.inputs), resource.name
    version = prod.one("gcp:secretmanager/secretVersion:SecretVersion", "scamguard-service-api-keys-version")
    data = version.inputs["secretData"]
    assert isinstance(data, dict)
    assert preview._SECRET_SIG_KEY in data, "the API keys must stay a Pulumi secret"
    assert unwrap(data) == "key-one-0123456789\nkey-two-9876543210\n"  # one key per line
    volumes = {v["name"]: v for v in prod.api.inputs["template"]["volumes"]}
    secret = volumes["api-keys"]["secret"]
    assert secret["secret"] == "scamguard-prod-api-keys"
    assert secret["items"] == [{"path": "keys", "version": "1"}]  # pinned: a new key = a new revision
    assert {"name": "api-keys", "mountPath": "/secrets/api-keys"} in api["volumeMounts"]


def test_api_key_generated_when_none_configured(staging: Deployment) -> None:
    assert staging.of_type("random:index/randomPassword:RandomPassword")
    assert staging.outputs["api_keys_secret"] == "scamguard-staging-api-keys"


# --------------------------------------------------------------------------- IAM


def runtime_member(stack: str) -> str:
    return f"serviceAccount:scamguard-{stack}-run@scamguard-{stack}.iam.gserviceaccount.com"


def test_runtime_service_account_has_exactly_its_roles(prod: Deployment) -> None:
    assert prod.api.inputs["template"]["serviceAccount"] == runtime_member("prod").split(":", 1)[1]
    assert prod.iam_of(runtime_member("prod")) == {
        (PROJECT_IAM, "roles/logging.logWriter", "project"),
        (PROJECT_IAM, "roles/monitoring.metricWriter", "project"),
        (SECRET_IAM, "roles/secretmanager.secretAccessor", "scamguard-prod-api-keys"),
        (SECRET_IAM, "roles/secretmanager.secretAccessor", "scamguard-prod-gmp-config"),
    }


def test_grafana_and_rule_evaluator_have_their_own_accounts(prod: Deployment) -> None:
    grafana = prod.run_service("scamguard-prod-grafana")
    email = grafana.inputs["template"]["serviceAccount"]
    assert email.startswith("scamguard-prod-grafana@")
    assert prod.iam_of(f"serviceAccount:{email}") == {
        (PROJECT_IAM, "roles/monitoring.viewer", "project"),
        (BUCKET_IAM, "roles/storage.objectViewer", "scamguard-prod-scamguard-prod-monitoring"),
        (SECRET_IAM, "roles/secretmanager.secretAccessor", "scamguard-prod-grafana-admin-password"),
    }
    rules = prod.run_service("scamguard-prod-rules")
    rules_email = rules.inputs["template"]["serviceAccount"]
    assert prod.iam_of(f"serviceAccount:{rules_email}") == {
        (PROJECT_IAM, "roles/monitoring.viewer", "project"),
        (PROJECT_IAM, "roles/monitoring.metricWriter", "project"),
        (BUCKET_IAM, "roles/storage.objectViewer", "scamguard-prod-scamguard-prod-monitoring"),
    }


def test_no_primitive_roles_anywhere(staging: Deployment, prod: Deployment, public: Deployment) -> None:
    for deployment in all_deployments(staging, prod, public):
        roles = {r.inputs["role"] for r in deployment.resources if r.type in IAM_TYPES}
        assert roles, "no IAM bindings recorded"
        assert not roles & PRIMITIVE_ROLES


# --------------------------------------------------------------------------- ingress and invokers


IAP_AGENT = "serviceAccount:service-123456789012@gcp-sa-iap.iam.gserviceaccount.com"


def test_prod_is_reachable_only_through_the_edge(prod: Deployment, staging: Deployment) -> None:
    """Prod: ingress lets only the load balancer (and the VPC) in. Its serverless NEG calls
    unauthenticated, so the API grants allUsers (callers authenticate with API keys at the edge);
    Grafana's only invoker is IAP's service agent. Staging: IAM invokers only, nobody by default."""
    assert prod.api.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    grafana = prod.run_service("scamguard-prod-grafana")
    assert grafana.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    invokers = {(r.inputs["name"], r.inputs["member"], r.inputs["role"]) for r in prod.of_type(RUN_INVOKER)}
    assert invokers == {
        ("scamguard-prod", "allUsers", "roles/run.invoker"),
        ("scamguard-prod-grafana", IAP_AGENT, "roles/run.invoker"),
    }
    assert staging.api.inputs["ingress"] == "INGRESS_TRAFFIC_ALL"
    members = {r.inputs["member"] for r in staging.of_type(RUN_INVOKER)}
    assert not members & {"allUsers", "allAuthenticatedUsers"}
    assert not staging.of_type(RUN_INVOKER)  # nobody but project IAM admins until invokers are set
    assert not staging.of_type(BACKEND_SERVICE), "staging has no load balancer"


def test_public_setting_grants_all_users_on_the_api_only(public: Deployment) -> None:
    assert public.api.inputs["ingress"] == "INGRESS_TRAFFIC_ALL"
    invokers = {(r.inputs["name"], r.inputs["member"]) for r in public.of_type(RUN_INVOKER)}
    assert invokers == {("scamguard-prod", "allUsers"), ("scamguard-prod-grafana", IAP_AGENT)}


BACKEND_SERVICE = "gcp:compute/backendService:BackendService"


def test_edge_load_balancer_in_front_of_prod(prod: Deployment) -> None:
    certificate = prod.of_type("gcp:compute/managedSslCertificate:ManagedSslCertificate")[0]
    assert certificate.inputs["managed"]["domains"] == [
        "api.scamguard.example.com",
        "grafana.scamguard.example.com",
    ]
    backends = {r.inputs["name"]: r for r in prod.of_type(BACKEND_SERVICE)}
    assert set(backends) == {"scamguard-prod-api", "scamguard-prod-grafana"}
    for backend in backends.values():
        assert backend.inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED"
        assert backend.inputs["securityPolicy"].endswith("/securityPolicies/scamguard-edge-armor")
    assert backends["scamguard-prod-grafana"].inputs["iap"]["enabled"] is True
    assert "iap" not in backends["scamguard-prod-api"].inputs
    negs = {
        r.inputs["name"]: r.inputs
        for r in prod.of_type("gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup")
    }
    assert negs["scamguard-prod-api"]["networkEndpointType"] == "SERVERLESS"
    assert negs["scamguard-prod-api"]["cloudRun"]["service"] == "scamguard-prod"
    rules = {
        r.inputs["portRange"]: r
        for r in prod.of_type("gcp:compute/globalForwardingRule:GlobalForwardingRule")
    }
    assert set(rules) == {"443", "80"}
    redirect = next(
        r for r in prod.of_type("gcp:compute/uRLMap:URLMap") if r.inputs["name"].endswith("-redirect")
    )
    assert redirect.inputs["defaultUrlRedirect"]["httpsRedirect"] is True
    assert prod.outputs["service_url"] == "https://api.scamguard.example.com"
    assert prod.outputs["grafana_url"] == "https://grafana.scamguard.example.com"
    assert prod.outputs["edge_ip_address"] == "203.0.113.10"


def test_cloud_armor_limits_each_client_and_applies_owasp_rules(prod: Deployment) -> None:
    policy = prod.of_type("gcp:compute/securityPolicy:SecurityPolicy")[0]
    rules = {r["priority"]: r for r in policy.inputs["rules"]}
    throttle = rules[1000]
    assert throttle["action"] == "throttle"
    options = throttle["rateLimitOptions"]
    assert options["enforceOnKey"] == "IP"
    assert options["exceedAction"] == "deny(429)"
    assert options["rateLimitThreshold"] == {"count": 1200, "intervalSec": 60}
    expressions = [r["match"]["expr"]["expression"] for r in rules.values() if "expr" in r["match"]]
    assert any("sqli-v33-stable" in e and "grafana.scamguard.example.com" in e for e in expressions)
    # Body signatures never judge the API's e-mails (phishing mail contains HTML and SQL-like text).
    assert not any("sqli" in e and "grafana" not in e for e in expressions)
    assert any(e.startswith("evaluatePreconfiguredWaf('protocolattack-v33-stable'") for e in expressions)
    assert rules[2147483647]["action"] == "allow"


def test_grafana_viewers_pass_iap() -> None:
    deployment = run_stack("prod", overrides={"scamguard:gcpGrafanaViewers": '["group:oncall@example.com"]'})
    members = {
        (r.inputs["role"], r.inputs["member"])
        for r in deployment.of_type("gcp:iap/webBackendServiceIamMember:WebBackendServiceIamMember")
    }
    assert members == {("roles/iap.httpsResourceAccessor", "group:oncall@example.com")}


def test_rule_evaluator_is_not_reachable(prod: Deployment) -> None:
    rules = prod.run_service("scamguard-prod-rules")
    assert rules.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert not [r for r in prod.of_type(RUN_INVOKER) if r.inputs["name"] == "scamguard-prod-rules"]


# --------------------------------------------------------------------------- network


def test_vpc_and_direct_vpc_egress(prod: Deployment, public: Deployment) -> None:
    subnet = prod.one("gcp:compute/subnetwork:Subnetwork", "scamguard-network-subnet").inputs
    assert subnet["ipCidrRange"] == "10.30.0.0/24"
    assert subnet["privateIpGoogleAccess"] is True
    network = prod.one("gcp:compute/network:Network", "scamguard-network-vpc").inputs
    assert network["autoCreateSubnetworks"] is False
    vpc = prod.api.inputs["template"]["vpcAccess"]
    assert vpc["egress"] == "PRIVATE_RANGES_ONLY"
    assert vpc["networkInterfaces"] == [
        {"network": "scamguard-network-vpc-id", "subnetwork": "scamguard-network-subnet-id"}
    ]
    assert "connector" not in vpc  # Direct VPC egress, no connector
    assert public.api.inputs["template"]["vpcAccess"]["egress"] == "ALL_TRAFFIC"


# --------------------------------------------------------------------------- traffic


def test_destroy_leaves_the_network_that_cloud_run_still_holds(prod: Deployment) -> None:
    """Direct VPC egress keeps its addresses for 1-2 h after the service is deleted, so deleting
    the subnet in the same destroy fails: network and subnet are retained, under a fresh suffix per
    generation so a later up never collides with them. Nothing else is retained."""
    network = prod.of_type("gcp:compute/network:Network")[0]
    subnet = prod.of_type("gcp:compute/subnetwork:Subnetwork")[0]
    assert network.retain_on_delete
    assert subnet.retain_on_delete
    assert network.inputs["name"] == "scamguard-prod-a1b2"
    assert subnet.inputs["name"] == "scamguard-prod-a1b2-run"
    retained = {r.type for r in prod.resources if r.retain_on_delete}
    assert retained == {"gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork"}


def test_all_traffic_to_latest_without_canary(prod: Deployment) -> None:
    assert prod.api.inputs["traffics"] == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]


def test_canary_split_with_tagged_revision(public: Deployment) -> None:
    assert public.api.inputs["traffics"] == [
        {
            "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
            "revision": "scamguard-prod-00007-abc",
            "percent": 90,
            "tag": "stable",
        },
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 10, "tag": "canary"},
    ]
    assert public.outputs["canary_url"].startswith("https://canary---")


# --------------------------------------------------------------------------- monitoring


def test_gmp_sidecar_collects_the_api_metrics(prod: Deployment) -> None:
    collector = prod.container(prod.api, "gmp-collector")
    assert collector["image"] == GMP_SIDECAR_IMAGE
    assert collector["dependsOns"] == ["api"]  # the API starts first
    assert {"name": "gmp-config", "mountPath": "/etc/rungmp"} in collector["volumeMounts"]
    assert "ports" not in collector  # only the API receives requests
    volumes = {v["name"]: v for v in prod.api.inputs["template"]["volumes"]}
    assert volumes["gmp-config"]["secret"]["secret"] == "scamguard-prod-gmp-config"
    assert volumes["gmp-config"]["secret"]["items"] == [{"path": "config.yaml", "version": "1"}]
    config = prod.one("gcp:secretmanager/secretVersion:SecretVersion", "scamguard-service-gmp-config-version")
    assert unwrap(config.inputs["secretData"]) == run_monitoring_config(8080, 15)


def test_run_monitoring_config_scrapes_metrics_as_job_scamguard() -> None:
    import yaml

    doc = yaml.safe_load(run_monitoring_config(8080, 15))
    assert doc["kind"] == "RunMonitoring"
    assert doc["metadata"]["name"] == SCRAPE_JOB == "scamguard"  # the job label the rules select
    assert doc["spec"]["endpoints"] == [{"port": "8080", "path": "/metrics", "interval": "15s"}]


def test_every_alert_rule_is_an_alert_policy(prod: Deployment) -> None:
    settings_config = prod.monitoring
    recorded = {r["record"] for g in rule_groups(settings_config) for r in g["rules"] if "record" in r}
    assert recorded, "the project has recording rules; they must not leak into alert policies"
    policies = prod.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    conditions = [p.inputs["conditions"][0] for p in policies]
    assert sorted(c["displayName"] for c in conditions) == sorted(alert_names(settings_config))
    channel = prod.one(
        "gcp:monitoring/notificationChannel:NotificationChannel", "scamguard-monitoring-alerting-email"
    )
    assert channel.inputs["type"] == "email"
    assert channel.inputs["labels"] == {"email_address": "oncall@example.com"}
    for policy, condition in zip(policies, conditions, strict=True):
        promql = condition["conditionPrometheusQueryLanguage"]
        assert promql["disableMetricValidation"] is True
        assert promql["ruleGroup"]
        assert promql["alertRule"] == condition["displayName"]
        # Recording rules are inlined: Cloud Monitoring does not evaluate them.
        assert not metric_names(promql["query"]) & recorded, promql["query"]
        assert policy.inputs["notificationChannels"] == ["scamguard-monitoring-alerting-email-id"]
        assert policy.inputs["severity"] in ("CRITICAL", "ERROR", "WARNING")


def test_recording_rules_run_in_the_gmp_rule_evaluator(prod: Deployment) -> None:
    evaluator = prod.run_service("scamguard-prod-rules")
    template = evaluator.inputs["template"]
    assert template["scaling"] == {"minInstanceCount": 1, "maxInstanceCount": 1}  # exactly one writer
    container = template["containers"][0]
    assert container["resources"]["cpuIdle"] is False
    assert "--config.file=/mnt/scamguard-monitoring/rule-evaluator/config.yaml" in container["args"]
    assert "--query.project-id=scamguard-prod" in container["args"]
    objects = {
        o.inputs["name"]: {**o.inputs, "content": unwrap(o.inputs["content"])}
        for o in prod.of_type("gcp:storage/bucketObject:BucketObject")
    }
    rule_files = [name for name in objects if name.startswith("rule-evaluator/rules/")]
    assert rule_files
    for name in rule_files:
        assert "record:" in objects[name]["content"]
        assert "alert:" not in objects[name]["content"]  # alerts are Cloud Monitoring policies


def test_grafana_is_provisioned_with_gmp_and_dashboards(prod: Deployment) -> None:
    grafana = prod.run_service("scamguard-prod-grafana")
    template = grafana.inputs["template"]
    names = [c["name"] for c in template["containers"]]
    assert names == ["grafana", "gmp-frontend"]
    container = prod.container(grafana, "grafana")
    assert container["dependsOns"] == ["gmp-frontend"]
    env = {e["name"]: e for e in container["envs"]}
    assert env["GF_PATHS_PROVISIONING"]["value"] == "/mnt/scamguard-monitoring/grafana/provisioning"
    assert "secretKeyRef" in env["GF_SECURITY_ADMIN_PASSWORD"]["valueSource"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"]["value"] == "false"
    frontend = prod.container(grafana, "gmp-frontend")
    assert "--query.project-id=scamguard-prod" in frontend["args"]
    assert template["volumes"][0]["gcs"] == {
        "bucket": "scamguard-prod-scamguard-prod-monitoring",
        "readOnly": True,
    }
    objects = {
        o.inputs["name"]: {**o.inputs, "content": unwrap(o.inputs["content"])}
        for o in prod.of_type("gcp:storage/bucketObject:BucketObject")
    }
    for uid in dashboards(prod.monitoring):
        assert f"grafana/dashboards/{uid}.json" in objects
    datasource = objects["grafana/provisioning/datasources/scamguard.yml"]["content"]
    assert "url: http://127.0.0.1:9090" in datasource
    provider = objects["grafana/provisioning/dashboards/scamguard.yml"]["content"]
    assert "path: /mnt/scamguard-monitoring/grafana/dashboards" in provider
    bucket = prod.one("gcp:storage/bucket:Bucket", "scamguard-monitoring-bucket").inputs
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["uniformBucketLevelAccess"] is True


# --------------------------------------------------------------------------- APIs and labels


def test_required_apis_enabled_and_never_disabled(prod: Deployment) -> None:
    services = {r.inputs["service"]: r for r in prod.of_type("gcp:projects/service:Service")}
    assert set(services) == {*REQUIRED_APIS, IAP_API}  # IAP: prod's Grafana is behind it
    assert all(r.inputs["disableOnDestroy"] is False for r in services.values())


def test_resources_wait_for_the_apis(prod: Deployment) -> None:
    api_urns = {r.urn for r in prod.of_type("gcp:projects/service:Service")}
    for resource in prod.resources:
        if resource.type.startswith("gcp:") and resource.type != "gcp:projects/service:Service":
            assert api_urns <= set(resource.dependencies), f"{resource.type} {resource.name} does not wait"


def test_labels_on_every_labelable_resource(
    staging: Deployment, prod: Deployment, public: Deployment
) -> None:
    for deployment in all_deployments(staging, prod, public):
        checked = 0
        for resource in deployment.resources:
            key = LABELABLE.get(resource.type)
            if key is None:
                continue
            labels = resource.inputs.get(key) or {}
            assert labels.get("project") == "scamguard", (resource.type, resource.name, labels)
            assert labels.get("stack") == deployment.stack, (resource.type, resource.name, labels)
            assert labels.get("component"), (resource.type, resource.name, labels)
            if resource.type == RUN_SERVICE:  # the revisions too
                assert resource.inputs["template"]["labels"] == labels
            checked += 1
        assert checked >= 15, f"{deployment.stack}: the label check saw almost no resource"


def test_changed_rules_or_dashboards_roll_new_revisions(prod: Deployment) -> None:
    """Grafana and the rule evaluator read their files only at start: the files' digest sits in
    the revision template, so a change of rules or dashboards is a new revision."""
    from infra.monitoring import render
    from infra.targets.gcp.cloudrun import FILES_ANNOTATION, files_sha256
    from infra.targets.gcp.monitoring import GRAFANA_PROMETHEUS_URL, grafana_files

    def digests(deployment: Deployment) -> dict[str, str]:
        return {
            name: deployment.run_service(name).inputs["template"]["annotations"][FILES_ANNOTATION]
            for name in ("scamguard-prod-grafana", "scamguard-prod-rules")
        }

    before = digests(prod)
    assert all(len(d) == 64 for d in before.values())
    slower = digests(run_stack("prod", overrides={"scamguard:scrapeIntervalSeconds": "60"}))
    assert slower["scamguard-prod-rules"] != before["scamguard-prod-rules"]  # its evaluation interval
    # Grafana's digest covers exactly its provisioning and dashboards.
    config = monitoring_config(
        prod.settings,
        ["127.0.0.1:8080"],
        GRAFANA_PROMETHEUS_URL,
        series_selector='namespace="scamguard-prod"',
    )
    files = grafana_files(render(config))
    assert before["scamguard-prod-grafana"] == files_sha256(files)


def test_rules_and_dashboards_select_this_stacks_series(prod: Deployment) -> None:
    """Two stacks may share one project: Cloud Run's collector labels each series with its service
    as `namespace`, and every rule and panel of prod selects scamguard-prod's."""
    policies = prod.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    queries = [
        c["conditionPrometheusQueryLanguage"]["query"] for p in policies for c in p.inputs["conditions"]
    ]
    assert queries
    for query in queries:
        if "scamguard_" in query:
            assert 'namespace="scamguard-prod"' in query, query


def test_cloud_run_apps_keep_their_urns(prod: Deployment) -> None:
    """The API, Grafana and the rule evaluator are each a CloudRunApp; their services and invoker
    bindings moved under it and carry an alias to where they were, so that an existing stack updates
    them in place instead of deleting and recreating the services."""

    def in_app(resource: Registered) -> bool:
        return resource.parent.split("::")[2].split("$")[-1] == "scamguard:gcp:CloudRunApp"

    assert all(in_app(service) for service in prod.of_type(RUN_SERVICE))
    moved = [r for r in prod.resources if r.type in (RUN_SERVICE, RUN_INVOKER) and in_app(r)]
    assert any(r.type == RUN_INVOKER for r in moved)
    assert {r.inputs["name"] for r in moved if r.type == RUN_SERVICE} == {
        "scamguard-prod",
        "scamguard-prod-grafana",
        "scamguard-prod-rules",
    }
    owners = {"scamguard:gcp:CloudRunService", "scamguard:gcp:Grafana", "scamguard:gcp:RuleEvaluator"}
    for resource in moved:
        app_name = resource.parent.split("::")[3]
        (alias_parent,) = resource.alias_parents
        # The alias's parent is the component that owns the app (same name): with it, the URN is
        # exactly the one the resource had before the app existed.
        owner_types, owner_name = alias_parent.split("::")[2:4]
        assert owner_types.split("$")[-1] in owners, alias_parent
        assert owner_name == app_name
