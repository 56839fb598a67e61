"""Settings: defaults, Pulumi.yaml consistency, and every validation rule (pulumi.RunError)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pulumi
import pytest
import yaml

from infra.config import CONFIG_KEYS, CONFIG_KEYS_BY_NAME, Settings, project_version, shipped_model_version
from infra.configref import pulumi_yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
Load = Callable[..., Settings]


def test_pulumi_yaml_is_generated_from_config_keys() -> None:
    assert (REPO / "Pulumi.yaml").read_text(encoding="utf-8") == pulumi_yaml(), (
        "Pulumi.yaml is out of date: run uv run python -m infra.configref --write"
    )


def test_pulumi_yaml_declares_exactly_the_program_keys_with_the_same_types_and_defaults() -> None:
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text(encoding="utf-8"))
    declared = project["config"]
    assert list(declared) == [key.name for key in CONFIG_KEYS], "regenerate Pulumi.yaml's config: block"
    for key in CONFIG_KEYS:
        spec = declared[key.name]
        assert spec["type"] == key.type, key.name
        assert spec["description"] == key.description, key.name
        assert "secret" not in spec, f"{key.name}: a secret: true key must be set in every stack (CLI rule)"
        assert spec["default"] == key.default, f"{key.name}: Pulumi.yaml and infra/config.py defaults differ"
        assert spec["description"].strip(), key.name


def test_pulumi_yaml_runtime_uses_the_uv_environment() -> None:
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["name"] == "scamguard"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "uv", "virtualenv": ".venv"}}
    # A project backend would override PULUMI_BACKEND_URL for staging/prod too.
    assert "backend" not in project


def test_stack_files_only_use_declared_keys() -> None:
    for path in REPO.glob("Pulumi.*.yaml"):
        config = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config") or {}
        for key in config:
            namespace, _, name = key.partition(":")
            if namespace == "scamguard":
                assert name in CONFIG_KEYS_BY_NAME, f"{path.name}: unknown key {key}"


def test_defaults_when_nothing_is_set(load: Load) -> None:
    settings = load(stack="dev")
    assert settings.project == "scamguard"
    assert settings.stack == "dev"
    assert settings.target == "local"
    assert settings.scaling.min_instances == 0
    assert settings.scaling.max_instances == 3
    assert settings.scaling.cpu_cores == 1.0
    assert settings.scaling.memory_mib == 512
    assert settings.service.rate_limit == "50/second"
    assert settings.service.api_keys is None
    assert settings.alerting.availability_slo == 0.999
    assert settings.alerting.latency_slo_seconds == 0.25
    assert settings.image.version == project_version()
    assert settings.image.revision == "unknown"
    assert settings.image.model_version == (shipped_model_version() or "unknown")
    assert settings.local is not None
    assert (settings.local.api_port, settings.local.prometheus_port, settings.local.grafana_port) == (
        8080,
        9090,
        3000,
    )
    assert settings.local.bind_address == "127.0.0.1"
    assert settings.gcp is None
    assert settings.labels == {"project": "scamguard", "stack": "dev", "managed-by": "pulumi"}


def test_values_are_parsed(load: Load) -> None:
    settings = load(
        minInstances="2",
        maxInstances="20",
        cpu="0.5",
        memory="2Gi",
        public="true",
        canaryPercent="10",
        rateLimit="100 per minute",
        rateLimitStorageUri="async+redis://redis:6379/0",
        logLevel="DEBUG",
        availabilitySlo="0.995",
        latencySloSeconds="0.5",
        alertOnNoTraffic="true",
        notificationEmail="oncall@example.com",
        imageVersion="1.2.3",
        imageRevision="0123abcd",
    )
    assert settings.scaling.min_instances == 2
    assert settings.scaling.max_instances == 20
    assert settings.scaling.cpu_cores == 0.5
    assert settings.scaling.memory_mib == 2048
    assert settings.service.public
    assert settings.service.canary_percent == 10
    env = settings.service.environment()
    assert env["SCAMGUARD_RATE_LIMIT"] == "100 per minute"
    assert env["SCAMGUARD_RATE_LIMIT_STORAGE_URI"] == "async+redis://redis:6379/0"
    assert env["SCAMGUARD_LOG_LEVEL"] == "DEBUG"
    assert env["PORT"] == "8080"
    assert settings.alerting.availability_slo == 0.995
    assert settings.alerting.alert_on_no_traffic
    assert settings.image.build_args()["VERSION"] == "1.2.3"
    assert settings.image.build_args()["REVISION"] == "0123abcd"


def test_gcp_settings_are_read_only_for_the_gcp_target(load: Load) -> None:
    settings = load(
        target="gcp",
        region="us-central1",
        gcpInvokers='["group:team@example.com"]',
        shutdownGraceSeconds="8",
        extra={"gcp:project": "my-project-123"},
    )
    assert settings.local is None
    gcp = settings.require_gcp()
    assert gcp.project == "my-project-123"
    assert gcp.region == "us-central1"
    assert gcp.invokers == ("group:team@example.com",)
    assert gcp.subnet_cidr == "10.20.0.0/24"
    with pytest.raises(pulumi.RunError, match="not 'local'"):
        settings.require_local()


def test_container_settings_follow_the_service_model(load: Load) -> None:
    """One validation: what the service accepts, the stack accepts (redis:// included)."""
    from service.settings import settings_from_environment

    settings = load(rateLimitStorageUri="redis://cache:6379/0", maxBatchSize="5000", logLevel="debug")
    container = settings_from_environment(settings.service.environment())
    assert container.rate_limit_storage_uri == "redis://cache:6379/0"
    assert container.max_batch_size == 5000
    assert container.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("concurrency", "slots", "queue"), [("32", 16, 16), ("80", 16, 64), ("8", 8, 1), ("1", 1, 1)]
)
def test_an_instance_admits_its_concurrency(load: Load, concurrency: str, slots: int, queue: int) -> None:
    """The platform's per-instance concurrency (Cloud Run sends no more) fits the admission proxy's
    slots plus its queue, so no request the platform sends an instance is refused by it."""
    from service.settings import settings_from_environment

    container = settings_from_environment(load(concurrency=concurrency).service.environment())
    assert (container.admission_concurrency, container.admission_queue_length) == (slots, queue)
    assert slots + queue >= int(concurrency)


def test_aws_settings_are_read_only_for_the_aws_target(load: Load) -> None:
    settings = load(
        target="aws", region="eu-west-1", cpu="1", memory="2Gi", extra={"aws:region": "eu-west-1"}
    )
    aws = settings.require_aws()
    assert (aws.cpu_units, aws.memory_mib) == (1024, 2048)
    assert aws.vpc_cidr == "10.40.0.0/16"
    assert not aws.https
    assert settings.gcp is None
    assert settings.kubernetes is None
    with pytest.raises(pulumi.RunError, match=r"scamguard:region = 'eu-west-1'.*aws:region \(us-east-1\)"):
        load(target="aws", region="eu-west-1", cpu="1", memory="2Gi", extra={"aws:region": "us-east-1"})
    with pytest.raises(pulumi.RunError, match="awsCertificateArn"):
        load(stack="aws-prod", target="aws", region="eu-west-1", cpu="1", memory="2Gi")


def test_kubernetes_settings_are_read_only_for_the_kubernetes_target(load: Load) -> None:
    settings = load(
        stack="k8s-dev", target="kubernetes", k8sRegistry="registry.example.com:5000/team", minInstances="1"
    )
    assert settings.gcp is None
    assert settings.local is None
    k8s = settings.require_kubernetes()
    assert k8s.namespace == "scamguard-k8s-dev"
    assert k8s.registry_host == "registry.example.com:5000"
    assert k8s.installs_monitoring
    assert k8s.forwarded_hops == 1
    assert not k8s.tls
    assert k8s.registry_password is None
    with_credentials = load(
        target="kubernetes",
        k8sRegistry="ghcr.io/acme",
        minInstances="1",
        k8sRegistryUsername="robot",
        k8sRegistryPassword="token",
    ).require_kubernetes()
    assert isinstance(with_credentials.registry_password, pulumi.Output)
    with pytest.raises(pulumi.RunError, match="not 'kubernetes'"):
        load().require_kubernetes()


def test_api_keys_stay_secret(load: Load) -> None:
    settings = load(apiKeys="k1,k2")
    assert isinstance(settings.service.api_keys, pulumi.Output)
    assert "SCAMGUARD_API_KEYS" not in settings.service.environment()


# The least an aws stack needs (Fargate sizes); each case below breaks one thing of it.
AWS = {"target": "aws", "region": "eu-west-1", "cpu": "0.5", "memory": "1Gi"}
# The least a kubernetes stack needs; each case below breaks one thing of it.
K8S = {"target": "kubernetes", "k8sRegistry": "ghcr.io/acme", "minInstances": "1"}

# (config, offending key, offending value as shown, fragment of what is allowed)
INVALID: list[tuple[dict[str, str], str, str, str]] = [
    ({"target": "azure"}, "target", "azure", "local, gcp, aws, kubernetes"),
    ({"region": "Europe West"}, "region", "Europe West", "region name"),
    ({"deletionProtection": "maybe"}, "deletionProtection", "maybe", "true or false"),
    ({"minInstances": "-1"}, "minInstances", "-1", "from 0 to 1000"),
    ({"minInstances": "two"}, "minInstances", "two", "an integer"),
    ({"maxInstances": "0"}, "maxInstances", "0", "from 1 to 1000"),
    ({"minInstances": "5", "maxInstances": "2"}, "maxInstances", "2", ">= minInstances (5)"),
    ({"concurrency": "1001"}, "concurrency", "1001", "from 1 to 1000"),
    ({"cpu": "fast"}, "cpu", "fast", "vCPUs"),
    ({"cpu": "64"}, "cpu", "64", "from 0.08 to 32"),
    ({"memory": "512MB"}, "memory", "512MB", "e.g. 512Mi"),
    ({"memory": "64Mi"}, "memory", "64Mi", "from 128Mi"),
    ({"public": "yes please"}, "public", "yes please", "true or false"),
    ({"canaryPercent": "101"}, "canaryPercent", "101", "from 0 to 100"),
    ({"rateLimit": "lots"}, "rateLimit", "lots", "not in the limits syntax"),
    (
        {"rateLimitStorageUri": "redis-host:6379"},
        "rateLimitStorageUri",
        "redis-host:6379",
        "redis://HOST:PORT",
    ),
    ({"rateLimitStorageUri": "redis://"}, "rateLimitStorageUri", "redis://", "memory:// (per instance)"),
    ({"maxBatchSize": "0"}, "maxBatchSize", "0", "greater than or equal to 1 (the service's own rule"),
    ({"maxBatchSize": "20000"}, "maxBatchSize", "20000", "less than or equal to 10000"),
    ({"maxBatchSize": "many"}, "maxBatchSize", "many", "an integer"),
    ({"maxTextChars": "0"}, "maxTextChars", "0", "greater than or equal to 1"),
    ({"maxBodyBytes": "100"}, "maxBodyBytes", "100", "greater than or equal to 1024"),
    ({"maxInflight": "0"}, "maxInflight", "0", "greater than or equal to 1"),
    ({"shutdownGraceSeconds": "0"}, "shutdownGraceSeconds", "0", "from 1 to 600"),
    ({"logLevel": "verbose"}, "logLevel", "verbose", "'DEBUG', 'INFO'"),
    ({"docsEnabled": "sometimes"}, "docsEnabled", "sometimes", "true or false"),
    ({"imageName": "Scam Guard"}, "imageName", "Scam Guard", "lowercase letters"),
    ({"imageVersion": "1.0 beta"}, "imageVersion", "1.0 beta", "version"),
    ({"imageRevision": "$(id)"}, "imageRevision", "$(id)", "version"),
    ({"modelVersion": "99.0.0"}, "modelVersion", "99.0.0", "runtime/model/"),
    ({"baseImage": "not an image!"}, "baseImage", "not an image!", "image reference"),
    ({"availabilitySlo": "1.5"}, "availabilitySlo", "1.5", ">= 0.5 and < 1.0"),
    ({"availabilitySlo": "high"}, "availabilitySlo", "high", "a number"),
    ({"latencySloSeconds": "0"}, "latencySloSeconds", "0", "> 0.0"),
    ({"alertOnNoTraffic": "often"}, "alertOnNoTraffic", "often", "true or false"),
    ({"notificationEmail": "nobody"}, "notificationEmail", "nobody", "e-mail"),
    ({"scrapeIntervalSeconds": "1"}, "scrapeIntervalSeconds", "1", "from 5 to 300"),
    ({"prometheusImage": "prom/prometheus"}, "prometheusImage", "prom/prometheus", "pinned tag"),
    ({"grafanaImage": "grafana/grafana:latest"}, "grafanaImage", "grafana/grafana:latest", "not :latest"),
    ({"localApiPort": "80"}, "localApiPort", "80", "from 1024 to 65535"),
    ({"localPrometheusPort": "70000"}, "localPrometheusPort", "70000", "from 1024 to 65535"),
    ({"localGrafanaPort": "8080"}, "localGrafanaPort", "8080", "not already used by scamguard:localApiPort"),
    ({"target": "gcp", "gcpSubnetCidr": "8.8.8.0/24"}, "gcpSubnetCidr", "8.8.8.0/24", "private IPv4"),
    ({"target": "gcp", "gcpSubnetCidr": "10.0.0.0/33"}, "gcpSubnetCidr", "10.0.0.0/33", "CIDR"),
    ({"target": "gcp", "gcpSubnetCidr": "10.20.0.0/28"}, "gcpSubnetCidr", "10.20.0.0/28", "at least a /26"),
    (
        {"target": "gcp", "gcpDomain": "https://api.example.com"},
        "gcpDomain",
        "https://api.example.com",
        "host name",
    ),
    (
        {"target": "gcp", "gcpIngress": "internal-and-cloud-load-balancing"},
        "gcpIngress",
        "internal-and-cloud-load-balancing",
        "would be unreachable",
    ),
    (
        {"target": "gcp", "gcpGrafanaDomain": "grafana.example.com"},
        "gcpGrafanaDomain",
        "grafana.example.com",
        "gcpDomain",
    ),
    (
        {"target": "gcp", "gcpDomain": "a.example.com", "gcpGrafanaDomain": "a.example.com"},
        "gcpGrafanaDomain",
        "a.example.com",
        "other than gcpDomain",
    ),
    ({"target": "gcp", "gcpEdgeRateLimitPerMinute": "-1"}, "gcpEdgeRateLimitPerMinute", "-1", "from 0 to"),
    ({"target": "gcp", "gcpGrafanaViewers": '["allUsers"]'}, "gcpGrafanaViewers", "allUsers", "not allUsers"),
    ({"target": "gcp", "gcpSubnetCidr": "127.0.0.0/24"}, "gcpSubnetCidr", "127.0.0.0/24", "private IPv4"),
    ({"target": "gcp", "gcpVpcEgress": "NONE"}, "gcpVpcEgress", "NONE", "PRIVATE_RANGES_ONLY, ALL_TRAFFIC"),
    ({"target": "gcp", "gcpInvokers": '["allUsers"]'}, "gcpInvokers", "allUsers", "public=true"),
    ({"target": "gcp", "gcpInvokers": '["bob"]'}, "gcpInvokers", "bob", "IAM members"),
    ({"target": "gcp", "gcpInvokers": "bob"}, "gcpInvokers", "bob", "a list of strings"),
    ({"target": "gcp", "gcpRegistryKeepVersions": "0"}, "gcpRegistryKeepVersions", "0", "from 1 to 1000"),
    ({"target": "gcp", "gcpIngress": "everyone"}, "gcpIngress", "everyone", "all, internal"),
    ({"target": "gcp", "gcpStableRevision": "Rev_1"}, "gcpStableRevision", "Rev_1", "revision name"),
    ({"target": "gcp", "gcpCpuAlwaysAllocated": "si"}, "gcpCpuAlwaysAllocated", "si", "true or false"),
    (
        {"target": "gcp", "shutdownGraceSeconds": "10"},
        "shutdownGraceSeconds",
        "10",
        "less than 10 on Cloud Run",
    ),
    ({"target": "gcp", "canaryPercent": "10"}, "canaryPercent", "10", "gcpStableRevision"),
    *(
        ({**AWS, **config}, key, value, allowed)
        for config, key, value, allowed in [
            ({"cpu": "3"}, "cpu", "3", "0.25, 0.5, 1, 2 or 4 vCPUs on Fargate"),
            ({"memory": "512Mi"}, "memory", "512Mi", "1Gi, 2Gi, 3Gi, 4Gi"),
            ({"awsVpcCidr": "10.0.0.0/8"}, "awsVpcCidr", "10.0.0.0/8", "from /16 to /24"),
            ({"awsCertificateArn": "my-cert"}, "awsCertificateArn", "my-cert", "ACM certificate ARN"),
            ({"public": "true"}, "awsCertificateArn", "", "HTTPS only"),
            ({"awsDomain": "api.example.com"}, "awsDomain", "api.example.com", "awsCertificateArn"),
            ({"awsAllowedCidrs": '["0.0.0.0/0"]'}, "awsAllowedCidrs", "0.0.0.0/0", "public=true"),
            ({"awsWafRateLimit": "5"}, "awsWafRateLimit", "5", "at least 10"),
            ({"awsRequestsPerTarget": "1"}, "awsRequestsPerTarget", "1", "from 10"),
            ({"awsLogRetentionDays": "0"}, "awsLogRetentionDays", "0", "from 1 to 3653"),
            ({"awsRegistryKeepImages": "0"}, "awsRegistryKeepImages", "0", "from 1"),
            ({"awsGrafanaAdminGroups": '["admins"]'}, "awsGrafanaAdminGroups", "admins", "Identity Center"),
            ({"shutdownGraceSeconds": "200"}, "shutdownGraceSeconds", "200", "118 or less on ECS"),
        ]
    ),
    *(
        ({**K8S, **config}, key, value, allowed)
        for config, key, value, allowed in [
            ({"k8sNamespace": "Bad_NS"}, "k8sNamespace", "Bad_NS", "lowercase letters"),
            ({"k8sRegistry": ""}, "k8sRegistry", "", "OCI registry"),
            ({"k8sRegistry": "ghcr.io/acme:latest"}, "k8sRegistry", "ghcr.io/acme:latest", "without tag"),
            ({"k8sRegistryUsername": "robot"}, "k8sRegistryUsername", "robot", "k8sRegistryPassword"),
            ({"k8sIngressClass": "Nginx!"}, "k8sIngressClass", "Nginx!", "lowercase letters"),
            ({"k8sIngressControllerNamespace": "-x"}, "k8sIngressControllerNamespace", "-x", "lowercase"),
            ({"k8sHost": "https://api.example.com"}, "k8sHost", "https://api.example.com", "host name"),
            ({"k8sHost": "api.example.com"}, "k8sHost", "api.example.com", "HTTPS only"),
            ({"k8sTlsSecret": "Bad Secret"}, "k8sTlsSecret", "Bad Secret", "lowercase letters"),
            ({"k8sTlsSecret": "tls", "k8sClusterIssuer": "le"}, "k8sClusterIssuer", "le", "one or the other"),
            ({"k8sForwardedHops": "9"}, "k8sForwardedHops", "9", "from 0 to 5"),
            ({"k8sMonitoring": "helm"}, "k8sMonitoring", "helm", "install, existing"),
            ({"k8sMonitoringNamespace": "Mon"}, "k8sMonitoringNamespace", "Mon", "lowercase letters"),
            ({"k8sPrometheusUrl": "prometheus:9090"}, "k8sPrometheusUrl", "prometheus:9090", "http(s) URL"),
            ({"k8sPrometheusUrl": "http://p:9090"}, "k8sPrometheusUrl", "http://p:9090", "empty with"),
            ({"k8sMonitoring": "existing"}, "k8sPrometheusUrl", "", "in-cluster URL"),
            ({"k8sMonitoringReleaseLabel": "a b"}, "k8sMonitoringReleaseLabel", "a b", "label value"),
            ({"k8sPrometheusStorage": "20GB"}, "k8sPrometheusStorage", "20GB", "such as 20Gi"),
            (
                {"k8sTlsSecret": "tls", "k8sHost": "a.example.com", "k8sGrafanaHost": "a.example.com"},
                "k8sGrafanaHost",
                "a.example.com",
                "other than k8sHost",
            ),
            ({"k8sSmtpSmarthost": "smtp"}, "k8sSmtpSmarthost", "smtp", "HOST:PORT"),
            ({"notificationEmail": "oncall@example.com"}, "k8sSmtpSmarthost", "", "SMTP relay"),
            ({"k8sSmtpFrom": "nobody"}, "k8sSmtpFrom", "nobody", "e-mail"),
            ({"k8sSmtpUsername": "a b"}, "k8sSmtpUsername", "a b", "user name"),
            ({"minInstances": "0"}, "minInstances", "0", "HorizontalPodAutoscaler"),
        ]
    ),
]


@pytest.mark.parametrize(
    ("config", "key", "value", "allowed"), INVALID, ids=[f"{c[1]}={c[2]}" for c in INVALID]
)
def test_invalid_value_is_a_run_error_naming_key_value_and_what_is_allowed(
    load: Load, config: dict[str, str], key: str, value: str, allowed: str
) -> None:
    extra = {"gcp:project": "my-project-123"} if config.get("target") == "gcp" else None
    if config.get("target") == "gcp" and key != "shutdownGraceSeconds":
        config = {"shutdownGraceSeconds": "8", **config}  # Cloud Run's own rule, tested on its own
    with pytest.raises(pulumi.RunError) as raised:
        load(extra=extra, **config)
    message = str(raised.value)
    assert f"scamguard:{key} = " in message
    assert repr(value) in message or repr(int(value) if value.lstrip("-").isdigit() else value) in message
    assert "allowed" in message
    assert allowed in message
    assert f"pulumi config set scamguard:{key}" in message


def test_every_validated_key_has_an_invalid_case() -> None:
    covered = {case[1] for case in INVALID}
    # Secrets: any string is a key or password, and none is ever echoed.
    unvalidated = {"apiKeys", "k8sRegistryPassword", "k8sSmtpPassword"}
    assert covered == set(CONFIG_KEYS_BY_NAME) - unvalidated


@pytest.mark.parametrize("project", [None, "", "Bad_Project"])
def test_gcp_target_needs_a_valid_gcp_project(load: Load, project: str | None) -> None:
    extra = {} if project is None else {"gcp:project": project}
    with pytest.raises(pulumi.RunError, match=r"gcp:project = .*pulumi config set gcp:project"):
        load(target="gcp", extra=extra)


def test_unknown_keys_are_rejected_with_the_list_of_known_ones(load: Load) -> None:
    with pytest.raises(
        pulumi.RunError, match=r"unknown config key\(s\) scamguard:minInstnaces .*minInstances"
    ):
        load(minInstnaces="1")


def test_modelversion_matching_the_artifact_is_accepted(load: Load) -> None:
    shipped = shipped_model_version()
    if shipped is None:
        pytest.fail("runtime/model/metadata.json is missing: the shipped artifact is part of the repository")
    assert load(modelVersion=shipped).image.model_version == shipped


def test_configuration_reference_page_is_generated_from_the_keys() -> None:
    """The docs page holds no copy of the table: the docs build generates it from CONFIG_KEYS."""
    page = (REPO / "docs" / "infrastructure" / "configuration.md").read_text(encoding="utf-8")
    assert "<!-- generated: config-reference -->" in page
    assert "| `target` |" not in page, "a hand-copied table would drift: keep only the marker"
