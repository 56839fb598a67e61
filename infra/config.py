"""Stack configuration, read once into one typed, validated settings object.

Every key the program reads is declared in ``CONFIG_KEYS`` (name, type, default, meaning): the
Python defaults below are the single source for the program, and ``tests/infra`` checks that
``Pulumi.yaml`` declares exactly the same keys, types and defaults.  Keys are camelCase in the
``scamguard:`` namespace; the GCP project comes from the provider's own ``gcp:project``.

A bad value stops the program with a :class:`pulumi.RunError` that names the key, the value and
what is allowed, so ``pulumi preview`` prints one actionable line instead of a stack trace.
"""

from __future__ import annotations

import ipaddress
import json
import pathlib
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import pulumi

# How much longer the server keeps an idle connection than the proxy in front of it.
KEEP_ALIVE_MARGIN_SECONDS = 15
NAMESPACE = "scamguard"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

Target = Literal["local", "gcp", "aws", "kubernetes"]
TARGETS: tuple[Target, ...] = ("local", "gcp", "aws", "kubernetes")
GCP_VPC_EGRESS = ("PRIVATE_RANGES_ONLY", "ALL_TRAFFIC")
GCP_INGRESS = ("all", "internal", "internal-and-cloud-load-balancing")
# Cloud Run sends SIGKILL this long after SIGTERM (fixed by the platform): the drain must fit in it.
CLOUD_RUN_SIGTERM_SECONDS = 10

ConfigType = Literal["string", "integer", "boolean", "array"]


@dataclass(frozen=True)
class ConfigKey:
    """One project config key, as declared under ``config:`` in Pulumi.yaml."""

    name: str
    type: ConfigType
    default: str | int | bool | list[str]  # every key has one: the CLI demands a value for any key without
    description: str
    # Read as a secret Output by the program (never printed); the stack value should be `secure:`.
    sensitive: bool = False


# Grouped as in the configuration reference (docs/infrastructure/configuration.md).
# Numbers with a fraction are strings:
# Pulumi project config has no float type.
CONFIG_KEYS: tuple[ConfigKey, ...] = (
    # --- where to deploy
    ConfigKey("target", "string", "local", "Deployment target: local, gcp, aws or kubernetes."),
    ConfigKey("region", "string", "europe-west1", "Cloud region of the stack (ignored by the local target)."),
    ConfigKey(
        "deletionProtection",
        "boolean",
        False,
        "Refuse to delete the service on `pulumi destroy`/replace (where the target supports it).",
    ),
    # --- scaling and resources
    ConfigKey("minInstances", "integer", 0, "Minimum number of instances (0 = scale to zero)."),
    ConfigKey("maxInstances", "integer", 3, "Maximum number of instances the autoscaler may start."),
    ConfigKey(
        "concurrency",
        "integer",
        32,
        "Concurrent requests one instance admits: Cloud Run sends no more before scaling out; inside, "
        "the admission proxy's slots run at once and the rest wait in its queue (more get 503 + "
        "Retry-After).",
    ),
    ConfigKey("cpu", "string", "1", "vCPUs per instance, e.g. 1, 2 or 0.5."),
    ConfigKey("memory", "string", "512Mi", "Memory per instance, e.g. 512Mi or 1Gi."),
    # --- the API's behaviour (environment of the container, see docs/service/index.md)
    ConfigKey("public", "boolean", False, "Allow unauthenticated callers from the internet (cloud targets)."),
    ConfigKey("canaryPercent", "integer", 0, "Share of traffic (0-100) sent to the newest revision."),
    ConfigKey("rateLimit", "string", "50/second", "Per-client rate limit (limits syntax); empty = off."),
    ConfigKey(
        "rateLimitStorageUri",
        "string",
        "memory://",
        "Rate-limit storage: memory:// (per instance) or async+redis://HOST:PORT (shared).",
    ),
    ConfigKey("maxBatchSize", "integer", 64, "Largest batch accepted by /v1/classify and /v2 infer."),
    ConfigKey("maxTextChars", "integer", 20000, "Longest email text accepted, in characters."),
    ConfigKey("maxBodyBytes", "integer", 2097152, "Largest request body accepted, in bytes."),
    ConfigKey("maxInflight", "integer", 64, "Inferences in flight per instance before answering 503."),
    ConfigKey("shutdownGraceSeconds", "integer", 10, "Seconds to drain in-flight requests after SIGTERM."),
    ConfigKey("logLevel", "string", "INFO", "Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL."),
    ConfigKey("docsEnabled", "boolean", True, "Serve the OpenAPI docs (/docs, /openapi.json)."),
    ConfigKey(
        "apiKeys",
        "string",
        "",
        "Comma-separated API keys (set it with `pulumi config set --secret`); empty = one key is generated "
        "on cloud targets, none required locally.",
        # Not `secret: true` in Pulumi.yaml: the CLI then demands a value in every stack and rejects
        # a plain default. The program reads it as a secret whatever the stack file holds.
        sensitive=True,
    ),
    # --- the image
    ConfigKey("imageName", "string", "scamguard-api", "Image repository name."),
    ConfigKey(
        "imageVersion",
        "string",
        "",
        "Image tag and OCI version label; empty = the model API's version (service/pyproject.toml).",
    ),
    ConfigKey("imageRevision", "string", "", "Source revision (git SHA) for the OCI label; empty = unknown."),
    ConfigKey(
        "modelVersion",
        "string",
        "",
        "Expected model version; empty = the shipped artifact's. A mismatch stops the deployment.",
    ),
    ConfigKey("baseImage", "string", "python:3.11-slim", "Base image of the service image (build arg)."),
    # --- alerting and monitoring (shared by every target)
    ConfigKey("availabilitySlo", "string", "0.999", "Availability objective; error budget = 1 - SLO."),
    ConfigKey("latencySloSeconds", "string", "0.25", "p99 latency objective, in seconds."),
    ConfigKey("alertOnNoTraffic", "boolean", False, "Alert when the service receives no traffic."),
    ConfigKey("notificationEmail", "string", "", "E-mail address that receives alerts; empty = none."),
    ConfigKey("scrapeIntervalSeconds", "integer", 15, "Prometheus scrape interval, in seconds."),
    ConfigKey("prometheusImage", "string", "prom/prometheus:v2.55.1", "Prometheus image (pinned tag)."),
    ConfigKey("grafanaImage", "string", "grafana/grafana:11.3.1", "Grafana image (pinned tag)."),
    # --- local target (Docker engine on this machine)
    ConfigKey("localApiPort", "integer", 8080, "Local target: host port of the API on 127.0.0.1."),
    ConfigKey("localPrometheusPort", "integer", 9090, "Local target: host port of Prometheus on 127.0.0.1."),
    ConfigKey("localGrafanaPort", "integer", 3000, "Local target: host port of Grafana on 127.0.0.1."),
    # --- gcp target (gcp:project is the provider's own key)
    ConfigKey("gcpSubnetCidr", "string", "10.20.0.0/24", "GCP target: CIDR of the stack's subnet."),
    ConfigKey(
        "gcpVpcEgress",
        "string",
        "PRIVATE_RANGES_ONLY",
        "GCP target: Direct VPC egress, PRIVATE_RANGES_ONLY or ALL_TRAFFIC.",
    ),
    ConfigKey(
        "gcpInvokers",
        "array",
        [],
        "GCP target: IAM members allowed to invoke a non-public service (e.g. group:team@example.com).",
    ),
    ConfigKey("gcpRegistryKeepVersions", "integer", 10, "GCP target: image versions kept by cleanup."),
    ConfigKey(
        "gcpIngress",
        "string",
        "all",
        "GCP target: Cloud Run ingress, all (callers still need run.invoker), internal, or "
        "internal-and-cloud-load-balancing (needs gcpDomain: the load balancer is then the way in).",
    ),
    ConfigKey(
        "gcpStableRevision",
        "string",
        "",
        "GCP target: revision keeping 100-canaryPercent of the traffic; empty = all to the newest.",
    ),
    ConfigKey(
        "gcpCpuAlwaysAllocated",
        "boolean",
        False,
        "GCP target: CPU outside requests too (instance billing; steadier metrics collection).",
    ),
    ConfigKey(
        "gcpDomain",
        "string",
        "",
        "GCP target: host name of the API on a global external HTTPS load balancer (managed "
        "certificate, Cloud Armor); empty = no load balancer. Needed with ingress "
        "internal-and-cloud-load-balancing.",
    ),
    ConfigKey(
        "gcpGrafanaDomain",
        "string",
        "",
        "GCP target: host name of Grafana on the same load balancer, behind Identity-Aware Proxy; "
        "empty = Grafana only through `gcloud run services proxy`.",
    ),
    ConfigKey(
        "gcpEdgeRateLimitPerMinute",
        "integer",
        1200,
        "GCP target: requests per minute one client IP may send through the load balancer before "
        "Cloud Armor answers 429 (0 = no edge limit).",
    ),
    ConfigKey(
        "gcpGrafanaViewers",
        "array",
        [],
        "GCP target: IAM members who may open Grafana (through IAP with gcpGrafanaDomain, else as "
        "Cloud Run invokers for `gcloud run services proxy`).",
    ),
    # --- aws target (the account comes from the provider's credentials; aws:region must match region)
    ConfigKey("awsVpcCidr", "string", "10.40.0.0/16", "AWS target: CIDR of the stack's VPC (/16 to /24)."),
    ConfigKey(
        "awsCertificateArn",
        "string",
        "",
        "AWS target: ACM certificate of the load balancer's HTTPS listener; empty = HTTP only (not "
        "allowed on a production or public stack).",
    ),
    ConfigKey(
        "awsDomain",
        "string",
        "",
        "AWS target: host name callers use (the certificate's; point its DNS at the load balancer); "
        "empty = the load balancer's own name.",
    ),
    ConfigKey(
        "awsAllowedCidrs",
        "array",
        [],
        "AWS target: networks that may reach an internal load balancer besides the VPC itself "
        "(e.g. a peered VPC or VPN range).",
    ),
    ConfigKey(
        "awsWafRateLimit",
        "integer",
        3000,
        "AWS target: requests one client IP may send in 5 minutes before WAF blocks it (0 = no rate rule).",
    ),
    ConfigKey(
        "awsRequestsPerTarget",
        "integer",
        6000,
        "AWS target: requests per task per minute the autoscaler keeps (ALBRequestCountPerTarget).",
    ),
    ConfigKey("awsLogRetentionDays", "integer", 30, "AWS target: days CloudWatch keeps the API's logs."),
    ConfigKey("awsRegistryKeepImages", "integer", 20, "AWS target: tagged images ECR keeps."),
    ConfigKey(
        "awsGrafanaAdminGroups",
        "array",
        [],
        "AWS target: IAM Identity Center group ids made Grafana admins (Amazon Managed Grafana).",
    ),
    # --- kubernetes target (the cluster comes from the provider's own kubernetes:context /
    # kubernetes:kubeconfig, like gcp:project)
    ConfigKey(
        "k8sNamespace", "string", "", "Kubernetes target: namespace of the stack; empty = <project>-<stack>."
    ),
    ConfigKey(
        "k8sRegistry",
        "string",
        "",
        "Kubernetes target: OCI registry and path the image is pushed to, e.g. ghcr.io/acme (required).",
    ),
    ConfigKey(
        "k8sRegistryUsername",
        "string",
        "",
        "Kubernetes target: registry user for the push and the pull secret; empty = the builder's own "
        "docker login and a registry the nodes can pull from anonymously.",
    ),
    ConfigKey(
        "k8sRegistryPassword",
        "string",
        "",
        "Kubernetes target: registry password or token for k8sRegistryUsername (set it with "
        "`pulumi config set --secret`).",
        sensitive=True,
    ),
    ConfigKey("k8sIngressClass", "string", "nginx", "Kubernetes target: IngressClass of the API's Ingress."),
    ConfigKey(
        "k8sIngressControllerNamespace",
        "string",
        "ingress-nginx",
        "Kubernetes target: namespace of the ingress controller (the only one whose pods may call the API).",
    ),
    ConfigKey(
        "k8sHost",
        "string",
        "",
        "Kubernetes target: host name of the API's Ingress; empty = no Ingress (in-cluster callers only).",
    ),
    ConfigKey(
        "k8sTlsSecret",
        "string",
        "",
        "Kubernetes target: existing TLS Secret (in the stack's namespace) for k8sHost and k8sGrafanaHost.",
    ),
    ConfigKey(
        "k8sClusterIssuer",
        "string",
        "",
        "Kubernetes target: cert-manager ClusterIssuer that issues the Ingress certificates (instead of "
        "k8sTlsSecret).",
    ),
    ConfigKey(
        "k8sForwardedHops",
        "integer",
        1,
        "Kubernetes target: proxies that append to X-Forwarded-For in front of the API (the ingress "
        "controller: 1; add one per load balancer that appends too).",
    ),
    ConfigKey(
        "k8sMonitoring",
        "string",
        "install",
        "Kubernetes target: install (kube-prometheus-stack, one per cluster) or existing (a Prometheus "
        "Operator and Grafana already run in k8sMonitoringNamespace).",
    ),
    ConfigKey(
        "k8sMonitoringNamespace",
        "string",
        "monitoring",
        "Kubernetes target: namespace of Prometheus, Alertmanager and Grafana.",
    ),
    ConfigKey(
        "k8sPrometheusUrl",
        "string",
        "",
        "Kubernetes target: in-cluster URL of the existing Prometheus (k8sMonitoring existing); empty "
        "with install.",
    ),
    ConfigKey(
        "k8sMonitoringReleaseLabel",
        "string",
        "",
        "Kubernetes target: `release` label an existing operator selects ServiceMonitors and rules by; "
        "empty = none (the installed chart selects every one).",
    ),
    ConfigKey(
        "k8sPrometheusStorage",
        "string",
        "",
        "Kubernetes target: Prometheus volume size, e.g. 20Gi (needs a default StorageClass); empty = "
        "emptyDir (history lost on restart).",
    ),
    ConfigKey(
        "k8sGrafanaHost",
        "string",
        "",
        "Kubernetes target: host name of Grafana's Ingress; empty = kubectl port-forward only.",
    ),
    ConfigKey(
        "k8sSmtpSmarthost",
        "string",
        "",
        "Kubernetes target: SMTP relay (host:port) Alertmanager sends notificationEmail through.",
    ),
    ConfigKey("k8sSmtpFrom", "string", "", "Kubernetes target: sender address of alert e-mails."),
    ConfigKey("k8sSmtpUsername", "string", "", "Kubernetes target: SMTP user; empty = the relay needs none."),
    ConfigKey(
        "k8sSmtpPassword",
        "string",
        "",
        "Kubernetes target: SMTP password for k8sSmtpUsername (set it with `pulumi config set --secret`).",
        sensitive=True,
    ),
)

CONFIG_KEYS_BY_NAME: Mapping[str, ConfigKey] = {key.name: key for key in CONFIG_KEYS}


# --------------------------------------------------------------------------- settings objects


@dataclass(frozen=True)
class ScalingSettings:
    min_instances: int
    max_instances: int
    concurrency: int  # concurrent requests per instance
    cpu: str  # as configured, e.g. "1", "0.5"
    cpu_cores: float
    memory: str  # as configured, e.g. "512Mi"
    memory_mib: int


@dataclass(frozen=True)
class ServiceSettings:
    public: bool
    canary_percent: int
    rate_limit: str
    rate_limit_storage_uri: str
    max_batch_size: int
    max_text_chars: int
    max_body_bytes: int
    max_inflight: int
    shutdown_grace_seconds: int
    log_level: str
    docs_enabled: bool
    api_keys: pulumi.Output[str] | None  # secret; targets mount it, never plain env in state
    # Requests the instance admits at once (the scaling `concurrency`): the admission proxy's
    # slots plus its queue, so that a platform sending this many never sees one refused.
    instance_concurrency: int = 32

    port: int = 8080  # the container contract (service/Dockerfile, Cloud Run)

    def api_keys_file(self) -> pulumi.Output[str] | None:
        """The configured keys one per line (SCAMGUARD_API_KEYS_FILE's format), secret; None when none
        are configured (the targets then generate one)."""
        if self.api_keys is None:
            return None
        return pulumi.Output.secret(
            self.api_keys.apply(
                lambda keys: "\n".join(k.strip() for k in keys.split(",") if k.strip()) + "\n"
            )
        )

    def environment(self) -> dict[str, str]:
        """The container's non-secret environment (contract B); API keys are mounted separately."""
        return {
            "HOST": "0.0.0.0",  # noqa: S104 - inside the container; exposure is the target's job
            "PORT": str(self.port),
            "SCAMGUARD_RATE_LIMIT": self.rate_limit,
            "SCAMGUARD_RATE_LIMIT_STORAGE_URI": self.rate_limit_storage_uri,
            "SCAMGUARD_MAX_BATCH_SIZE": str(self.max_batch_size),
            "SCAMGUARD_MAX_TEXT_CHARS": str(self.max_text_chars),
            "SCAMGUARD_MAX_BODY_BYTES": str(self.max_body_bytes),
            "SCAMGUARD_MAX_INFLIGHT": str(self.max_inflight),
            **self.admission_environment(),
            "SCAMGUARD_SHUTDOWN_GRACE_SECONDS": str(self.shutdown_grace_seconds),
            "SCAMGUARD_LOG_LEVEL": self.log_level,
            "SCAMGUARD_DOCS_ENABLED": "true" if self.docs_enabled else "false",
        }

    def admission_environment(self) -> dict[str, str]:
        """The admission proxy's slots (the service's default, fewer for a smaller concurrency) and
        a queue for the rest of `instance_concurrency`."""
        from service.settings import Settings  # the service's default, not a copy of it

        slots = min(self.instance_concurrency, Settings.model_fields["admission_concurrency"].default)
        return {
            "SCAMGUARD_ADMISSION_CONCURRENCY": str(slots),
            "SCAMGUARD_ADMISSION_QUEUE_LENGTH": str(max(1, self.instance_concurrency - slots)),
        }

    def environment_behind(self, *, proxies: int, idle_timeout_seconds: int) -> dict[str, str]:
        """The environment of a container reached only through `proxies` proxies that each append
        to X-Forwarded-For and keep idle connections to it for `idle_timeout_seconds`.

        The client is that many entries from the right (what it wrote itself is never trusted), and
        the server keeps idle connections longer than the proxy, so it never closes one the proxy
        is about to reuse (the server's one timer also bounds slow headers, which the proxy buffers).
        """
        return {
            **self.environment(),
            "SCAMGUARD_FORWARDED_HOPS": str(proxies),
            "SCAMGUARD_KEEP_ALIVE_SECONDS": str(idle_timeout_seconds + KEEP_ALIVE_MARGIN_SECONDS),
        }


@dataclass(frozen=True)
class ImageSettings:
    name: str
    version: str
    revision: str
    model_version: str
    base_image: str
    platform: str = "linux/amd64"  # what Cloud Run / Fargate run; also the local default

    @property
    def revision_tag(self) -> str:
        """A tag unique per source revision, for registries whose tags are immutable."""
        return self.version if self.revision == "unknown" else f"{self.version}-{self.revision[:12]}"

    def build_args(self) -> dict[str, str]:
        return {
            "BASE_IMAGE": self.base_image,
            "VERSION": self.version,
            "REVISION": self.revision,
            "MODEL_VERSION": self.model_version,
        }


@dataclass(frozen=True)
class AlertingSettings:
    availability_slo: float
    latency_slo_seconds: float
    alert_on_no_traffic: bool
    notification_email: str
    scrape_interval_seconds: int


@dataclass(frozen=True)
class MonitoringSettings:
    prometheus_image: str
    grafana_image: str


@dataclass(frozen=True)
class LocalSettings:
    api_port: int
    prometheus_port: int
    grafana_port: int
    bind_address: str = "127.0.0.1"  # never exposed beyond this machine


@dataclass(frozen=True)
class GcpSettings:
    project: str
    region: str
    subnet_cidr: str
    vpc_egress: str
    invokers: tuple[str, ...]
    registry_keep_versions: int
    ingress: str
    stable_revision: str
    cpu_always_allocated: bool
    domain: str = ""  # the API's host on the external HTTPS load balancer; "" = no load balancer
    grafana_domain: str = ""
    edge_rate_limit_per_minute: int = 0
    grafana_viewers: tuple[str, ...] = ()

    @property
    def has_edge(self) -> bool:
        return bool(self.domain)


K8S_MONITORING = ("install", "existing")
# Fargate's CPU units and the memory sizes (MiB) each allows.
FARGATE_MEMORY_MIB: Mapping[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}


@dataclass(frozen=True)
class AwsSettings:
    region: str
    vpc_cidr: str
    certificate_arn: str
    domain: str
    allowed_cidrs: tuple[str, ...]
    waf_rate_limit: int
    requests_per_target: int
    log_retention_days: int
    registry_keep_images: int
    grafana_admin_groups: tuple[str, ...]
    cpu_units: int
    memory_mib: int

    @property
    def https(self) -> bool:
        return bool(self.certificate_arn)


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    registry: str  # OCI registry + path, e.g. ghcr.io/acme
    registry_username: str
    registry_password: pulumi.Output[str] | None  # secret
    ingress_class: str
    ingress_controller_namespace: str
    host: str  # "" = no Ingress
    tls_secret: str
    cluster_issuer: str
    forwarded_hops: int
    monitoring: str  # install | existing
    monitoring_namespace: str
    prometheus_url: str  # existing Prometheus only
    monitoring_release_label: str
    prometheus_storage: str  # "" = emptyDir
    grafana_host: str
    smtp_smarthost: str
    smtp_from: str
    smtp_username: str = ""
    smtp_password: pulumi.Output[str] | None = None  # secret

    @property
    def registry_host(self) -> str:
        return self.registry.split("/", 1)[0]

    @property
    def installs_monitoring(self) -> bool:
        return self.monitoring == "install"

    @property
    def tls(self) -> bool:
        return bool(self.tls_secret or self.cluster_issuer)


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    target: Target
    region: str
    deletion_protection: bool
    scaling: ScalingSettings
    service: ServiceSettings
    image: ImageSettings
    alerting: AlertingSettings
    monitoring: MonitoringSettings
    local: LocalSettings | None  # set only when target == "local"
    gcp: GcpSettings | None  # set only when target == "gcp"
    kubernetes: KubernetesSettings | None = None  # set only when target == "kubernetes"
    aws: AwsSettings | None = None  # set only when target == "aws"

    @property
    def labels(self) -> dict[str, str]:
        """Labels/tags for every resource that supports them (lowercase, cloud-label safe)."""
        return {"project": _label(self.project), "stack": _label(self.stack), "managed-by": "pulumi"}

    def require_local(self) -> LocalSettings:
        if self.local is None:
            raise pulumi.RunError(f"stack {self.stack!r} has target {self.target!r}, not 'local'")
        return self.local

    def require_gcp(self) -> GcpSettings:
        if self.gcp is None:
            raise pulumi.RunError(f"stack {self.stack!r} has target {self.target!r}, not 'gcp'")
        return self.gcp

    def require_aws(self) -> AwsSettings:
        if self.aws is None:
            raise pulumi.RunError(f"stack {self.stack!r} has target {self.target!r}, not 'aws'")
        return self.aws

    def require_kubernetes(self) -> KubernetesSettings:
        if self.kubernetes is None:
            raise pulumi.RunError(f"stack {self.stack!r} has target {self.target!r}, not 'kubernetes'")
        return self.kubernetes


def _label(value: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:63]


# --------------------------------------------------------------------------- reading + validation

T = TypeVar("T")


class _Reader:
    """Reads raw config strings and turns bad values into one clear RunError each."""

    def __init__(self, stack: str) -> None:
        self._config = pulumi.Config(NAMESPACE)
        self._stack = stack

    def fail(self, key: str, value: object, allowed: str) -> pulumi.RunError:
        return pulumi.RunError(
            f"invalid config {NAMESPACE}:{key} = {value!r}: allowed {allowed}. "
            f"Fix it with: pulumi config set {NAMESPACE}:{key} <value> --stack {self._stack}"
        )

    def _raw(self, key: str) -> str | None:
        if key not in CONFIG_KEYS_BY_NAME:  # a programming error, not a user error
            raise KeyError(f"{key} is not declared in CONFIG_KEYS")
        return self._config.get(key)

    def string(
        self,
        key: str,
        *,
        choices: Sequence[str] | None = None,
        check: Callable[[str], str | None] | None = None,
    ) -> str:
        raw = self._raw(key)
        value = cast(str, CONFIG_KEYS_BY_NAME[key].default) if raw is None else raw.strip()
        if choices is not None and value not in choices:
            raise self.fail(key, value, "one of " + ", ".join(choices))
        if check is not None and (problem := check(value)) is not None:
            raise self.fail(key, value, problem)
        return value

    def integer(self, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
        """An integer; without bounds, whoever consumes it (the service's own model) checks its range."""
        raw = self._raw(key)
        if raw is None:
            return cast(int, CONFIG_KEYS_BY_NAME[key].default)
        bounded = minimum is not None and maximum is not None
        allowed = f"an integer from {minimum} to {maximum}" if bounded else "an integer"
        try:
            value = int(raw.strip())
        except ValueError:
            raise self.fail(key, raw, allowed) from None
        if bounded and not minimum <= value <= maximum:  # type: ignore[operator]
            raise self.fail(key, value, allowed)
        return value

    def number(self, key: str, *, low: float, high: float, inclusive_low: bool = True) -> float:
        raw = self._raw(key)
        text = cast(str, CONFIG_KEYS_BY_NAME[key].default) if raw is None else raw.strip()
        bounds = f"a number {'>=' if inclusive_low else '>'} {low} and < {high}"
        try:
            value = float(text)
        except ValueError:
            raise self.fail(key, text, bounds) from None
        if not ((low <= value) if inclusive_low else (low < value)) or not value < high:
            raise self.fail(key, text, bounds)
        return value

    def boolean(self, key: str) -> bool:
        raw = self._raw(key)
        if raw is None:
            return cast(bool, CONFIG_KEYS_BY_NAME[key].default)
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise self.fail(key, raw, "true or false")

    def string_list(self, key: str, *, check: Callable[[str], str | None]) -> tuple[str, ...]:
        raw = self._raw(key)
        if raw is None:
            return tuple(cast(list[str], CONFIG_KEYS_BY_NAME[key].default))
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            raise self.fail(key, raw, "a list of strings (pulumi config set --path 'key[0]' VALUE)") from None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(key, raw, "a list of strings")
        items = cast(list[str], value)
        for item in items:
            if (problem := check(item)) is not None:
                raise self.fail(key, item, problem)
        return tuple(items)

    def secret(self, key: str) -> pulumi.Output[str] | None:
        """A sensitive key as a secret Output; None when it is empty (the Pulumi.yaml default)."""
        raw = self._raw(key)
        if raw is None or not raw.strip():
            return None
        return pulumi.Output.secret(raw.strip())


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def check_container_environment(read: _Reader, service: ServiceSettings) -> None:
    """Validate the container's environment with the service's own settings model, and name the
    stack key of the first bad value (each key is the camelCase of the service's field)."""
    from pydantic import ValidationError

    from service.settings import settings_from_environment  # the one validation of these values

    environment = service.environment()
    try:
        settings_from_environment(environment)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        key = _camel(field)
        if key not in CONFIG_KEYS_BY_NAME:  # a cross-field rule of the service
            raise pulumi.RunError(f"the container's settings are invalid: {error['msg']}") from None
        value = environment.get(f"SCAMGUARD_{field.upper()}", error.get("input"))  # as the stack wrote it
        message = str(error["msg"]).removeprefix("Value error, ")
        if message.startswith("Input "):
            message = "i" + message[1:]
        rule = f"the service's own rule for SCAMGUARD_{field.upper()}"
        raise read.fail(key, value, f"{message} ({rule})") from None


_CPU = re.compile(r"(?:\d+(?:\.\d+)?|\.\d+)")
_MEMORY = re.compile(r"([1-9]\d*)(Mi|Gi)")


def _cpu_cores(value: str) -> float | None:
    if not _CPU.fullmatch(value):
        return None
    cores = float(value)
    return cores if 0.08 <= cores <= 32 else None


def _memory_mib(value: str) -> int | None:
    match = _MEMORY.fullmatch(value)
    if match is None:
        return None
    mib = int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)
    return mib if 128 <= mib <= 131072 else None


_IMAGE_REF = re.compile(
    r"[a-z0-9]+(?:[._/-][a-z0-9]+)*"  # [registry/]name
    r"(?::\d+/[a-z0-9._/-]+)?"  # registry:port/name
    r"(?::\w[\w.-]{0,127})?"  # :tag
    r"(?:@sha256:[0-9a-f]{64})?"  # @digest
)


def _check_image_ref(value: str) -> str | None:
    # name[:tag][@sha256:digest]; the build arg is passed verbatim to FROM.
    if _IMAGE_REF.fullmatch(value):
        return None
    return "an image reference such as python:3.11-slim or REGISTRY/NAME:TAG[@sha256:DIGEST]"


def _check_pinned_image(value: str) -> str | None:
    if _check_image_ref(value) is not None or not re.search(r"(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$", value):
        return "an image reference with a pinned tag or digest (not :latest), e.g. prom/prometheus:v2.55.1"
    if value.endswith(":latest"):
        return "a pinned tag or digest, not :latest"
    return None


def _check_name(value: str) -> str | None:
    if re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", value):
        return None
    return "lowercase letters, digits and '-' (1-63 characters, not starting or ending with '-')"


def _check_version(value: str) -> str | None:
    if value == "" or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}", value):
        return None
    return "empty or a version such as 1.2.0 (letters, digits, '.', '_', '+', '-')"


def _check_region(value: str) -> str | None:
    if re.fullmatch(r"[a-z]+(?:-[a-z]+)+-?\d+", value):
        return None
    return "a cloud region name such as europe-west1 or us-east-1"


def _check_email(value: str) -> str | None:
    if value == "" or re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        return None
    return "empty or an e-mail address"


# The internal IPv4 ranges a VPC subnet may use (Google's "Valid IPv4 ranges" for subnets): RFC 1918
# plus the non-RFC 1918 ranges it supports. Python's is_private is not that set (it rejects
# 100.64.0.0/10 and accepts loopback and link-local).
_SUBNET_RANGES = tuple(
    ipaddress.IPv4Network(r)
    for r in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
    )
)


def _check_cidr(value: str) -> str | None:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return "an IPv4 network in CIDR notation, e.g. 10.20.0.0/24"
    if not isinstance(network, ipaddress.IPv4Network) or not any(
        network.subnet_of(allowed) for allowed in _SUBNET_RANGES
    ):
        return (
            "a private IPv4 network (RFC 1918, 100.64.0.0/10, 198.18.0.0/15 or 240.0.0.0/4), "
            "e.g. 10.20.0.0/24"
        )
    # Cloud Run's Direct VPC egress needs a /26 or larger: one address per instance, twice the
    # maximum during a rollout, and Google keeps some per subnet.
    if not 8 <= network.prefixlen <= 26:
        return "a prefix from /8 to /26 (Direct VPC egress needs at least a /26), e.g. 10.20.0.0/24"
    return None


def _check_revision(value: str) -> str | None:
    if value == "" or re.fullmatch(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", value):
        return None
    return "empty or a Cloud Run revision name such as scamguard-prod-00042-abc"


def _check_domain(value: str) -> str | None:
    if value == "" or re.fullmatch(r"(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", value):
        return None
    return "empty or a lowercase host name such as api.example.com (no scheme, no path)"


def _check_member(value: str) -> str | None:
    if value in ("allUsers", "allAuthenticatedUsers"):
        return "a principal, not allUsers/allAuthenticatedUsers (set public=true to open the service)"
    if re.fullmatch(r"(user|group|serviceAccount|domain|principal|principalSet):\S+", value):
        return None
    return "IAM members such as user:me@example.com, group:team@example.com or serviceAccount:SA_EMAIL"


def project_version() -> str:
    """The model API's version (service/pyproject.toml): the image's default tag and OCI label."""
    with (REPO_ROOT / "service" / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def shipped_model_version() -> str | None:
    """The version in runtime/model/metadata.json (contract A), or None if no artifact is there."""
    metadata = REPO_ROOT / "runtime" / "model" / "metadata.json"
    try:
        return str(json.loads(metadata.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _unknown_keys() -> list[str]:
    """Keys set in the stack's scamguard: namespace that the program does not know (typos)."""
    from pulumi.runtime import config as runtime_config  # the SDK's view of the stack config

    try:
        present = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    except (AttributeError, ValueError):  # SDK internals moved, or a malformed PULUMI_CONFIG
        return []
    prefix = f"{NAMESPACE}:"
    return sorted(
        k[len(prefix) :]
        for k in present
        if k.startswith(prefix) and k[len(prefix) :] not in CONFIG_KEYS_BY_NAME
    )


def load_settings() -> Settings:
    """Read the stack's config once and validate it; raise pulumi.RunError on the first bad value."""
    project, stack = pulumi.get_project(), pulumi.get_stack()
    unknown = _unknown_keys()
    if unknown:
        raise pulumi.RunError(
            f"unknown config key(s) {', '.join(NAMESPACE + ':' + k for k in unknown)} in stack {stack!r}: "
            f"allowed keys are {', '.join(CONFIG_KEYS_BY_NAME)} (see docs/infrastructure/configuration.md)"
        )
    read = _Reader(stack)

    target = cast(Target, read.string("target", choices=TARGETS))
    region = read.string("region", check=_check_region)

    cpu = read.string("cpu", check=lambda v: None if _cpu_cores(v) else "a number of vCPUs from 0.08 to 32")
    memory = read.string(
        "memory", check=lambda v: None if _memory_mib(v) else "a size from 128Mi to 128Gi, e.g. 512Mi or 2Gi"
    )
    min_instances = read.integer("minInstances", minimum=0, maximum=1000)
    max_instances = read.integer("maxInstances", minimum=1, maximum=1000)
    if max_instances < min_instances:
        raise read.fail("maxInstances", max_instances, f"an integer >= minInstances ({min_instances})")
    scaling = ScalingSettings(
        min_instances=min_instances,
        max_instances=max_instances,
        concurrency=read.integer("concurrency", minimum=1, maximum=1000),
        cpu=cpu,
        cpu_cores=cast(float, _cpu_cores(cpu)),
        memory=memory,
        memory_mib=cast(int, _memory_mib(memory)),
    )

    # The container's settings are read as plain values here and validated once, by the service's
    # own settings model (check_container_environment): the deployment and the service agree.
    service = ServiceSettings(
        public=read.boolean("public"),
        canary_percent=read.integer("canaryPercent", minimum=0, maximum=100),
        rate_limit=read.string("rateLimit"),
        rate_limit_storage_uri=read.string("rateLimitStorageUri"),
        max_batch_size=read.integer("maxBatchSize"),
        max_text_chars=read.integer("maxTextChars"),
        max_body_bytes=read.integer("maxBodyBytes"),
        max_inflight=read.integer("maxInflight"),
        # Bounded here too: targets size their stop timeouts from it (ECS: at most 120 s).
        shutdown_grace_seconds=read.integer("shutdownGraceSeconds", minimum=1, maximum=600),
        log_level=read.string("logLevel"),
        docs_enabled=read.boolean("docsEnabled"),
        api_keys=read.secret("apiKeys"),
        instance_concurrency=scaling.concurrency,
    )
    check_container_environment(read, service)

    shipped = shipped_model_version()
    model_version = read.string("modelVersion", check=_check_version)
    if model_version and shipped is not None and model_version != shipped:
        raise read.fail(
            "modelVersion",
            model_version,
            f"empty or the version of the artifact in runtime/model/ ({shipped}); "
            "retrain or change the config",
        )
    image = ImageSettings(
        name=read.string("imageName", check=_check_name),
        version=read.string("imageVersion", check=_check_version) or project_version(),
        revision=read.string("imageRevision", check=_check_version) or "unknown",
        model_version=model_version or shipped or "unknown",
        base_image=read.string("baseImage", check=_check_image_ref),
    )

    alerting = AlertingSettings(
        availability_slo=read.number("availabilitySlo", low=0.5, high=1.0),
        latency_slo_seconds=read.number("latencySloSeconds", low=0.0, high=60.0, inclusive_low=False),
        alert_on_no_traffic=read.boolean("alertOnNoTraffic"),
        notification_email=read.string("notificationEmail", check=_check_email),
        scrape_interval_seconds=read.integer("scrapeIntervalSeconds", minimum=5, maximum=300),
    )
    monitoring = MonitoringSettings(
        prometheus_image=read.string("prometheusImage", check=_check_pinned_image),
        grafana_image=read.string("grafanaImage", check=_check_pinned_image),
    )

    local: LocalSettings | None = None
    if target == "local":
        ports = {
            key: read.integer(key, minimum=1024, maximum=65535)
            for key in ("localApiPort", "localPrometheusPort", "localGrafanaPort")
        }
        seen: dict[int, str] = {}
        for key, port in ports.items():
            if port in seen:
                raise read.fail(key, port, f"a port not already used by {NAMESPACE}:{seen[port]}")
            seen[port] = key
        local = LocalSettings(
            api_port=ports["localApiPort"],
            prometheus_port=ports["localPrometheusPort"],
            grafana_port=ports["localGrafanaPort"],
        )

    gcp: GcpSettings | None = None
    if target == "gcp":
        gcp_project = pulumi.Config("gcp").get("project")
        if not gcp_project or not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", gcp_project):
            raise pulumi.RunError(
                f"invalid config gcp:project = {gcp_project!r}: allowed a Google Cloud project id "
                f"(6-30 lowercase letters, digits, '-'). Fix it with: "
                f"pulumi config set gcp:project <project-id> --stack {stack}"
            )
        gcp = GcpSettings(
            project=gcp_project,
            region=region,
            subnet_cidr=read.string("gcpSubnetCidr", check=_check_cidr),
            vpc_egress=read.string("gcpVpcEgress", choices=GCP_VPC_EGRESS),
            invokers=read.string_list("gcpInvokers", check=_check_member),
            registry_keep_versions=read.integer("gcpRegistryKeepVersions", minimum=1, maximum=1000),
            ingress=read.string("gcpIngress", choices=GCP_INGRESS),
            stable_revision=read.string("gcpStableRevision", check=_check_revision),
            cpu_always_allocated=read.boolean("gcpCpuAlwaysAllocated"),
            domain=read.string("gcpDomain", check=_check_domain),
            grafana_domain=read.string("gcpGrafanaDomain", check=_check_domain),
            edge_rate_limit_per_minute=read.integer(
                "gcpEdgeRateLimitPerMinute", minimum=0, maximum=1_000_000
            ),
            grafana_viewers=read.string_list("gcpGrafanaViewers", check=_check_member),
        )
        if gcp.ingress == "internal-and-cloud-load-balancing" and not gcp.has_edge:
            raise read.fail(
                "gcpIngress",
                gcp.ingress,
                "'all' or 'internal', or set scamguard:gcpDomain: with this ingress only a load balancer "
                "reaches the service, and without gcpDomain none is created (the service would be "
                "unreachable)",
            )
        if gcp.grafana_domain and not gcp.has_edge:
            raise read.fail(
                "gcpGrafanaDomain",
                gcp.grafana_domain,
                "empty unless scamguard:gcpDomain sets the load balancer",
            )
        if gcp.grafana_domain and gcp.grafana_domain == gcp.domain:
            raise read.fail("gcpGrafanaDomain", gcp.grafana_domain, "a host name other than gcpDomain's")
        if service.canary_percent > 0 and not gcp.stable_revision:
            raise read.fail(
                "canaryPercent",
                service.canary_percent,
                "0 unless scamguard:gcpStableRevision names the revision that keeps the rest of the "
                "traffic (gcloud run revisions list)",
            )
        if service.shutdown_grace_seconds >= CLOUD_RUN_SIGTERM_SECONDS:
            raise read.fail(
                "shutdownGraceSeconds",
                service.shutdown_grace_seconds,
                f"less than {CLOUD_RUN_SIGTERM_SECONDS} on Cloud Run, which kills an instance "
                f"{CLOUD_RUN_SIGTERM_SECONDS} s after SIGTERM",
            )

    aws: AwsSettings | None = None
    if target == "aws":
        aws = _aws_settings(read, stack, region, scaling, service)

    kubernetes: KubernetesSettings | None = None
    if target == "kubernetes":
        kubernetes = _kubernetes_settings(read, project, stack, scaling, alerting)

    return Settings(
        project=project,
        stack=stack,
        target=target,
        region=region,
        deletion_protection=read.boolean("deletionProtection"),
        scaling=scaling,
        service=service,
        image=image,
        alerting=alerting,
        monitoring=monitoring,
        local=local,
        gcp=gcp,
        kubernetes=kubernetes,
        aws=aws,
    )


_ACM_ARN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}")
_IDENTITY_CENTER_GROUP = re.compile(
    r"([0-9a-f]{10}-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


def _check_vpc_cidr(value: str) -> str | None:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return "an IPv4 network in CIDR notation, e.g. 10.40.0.0/16"
    private = isinstance(network, ipaddress.IPv4Network) and any(network.subnet_of(r) for r in _SUBNET_RANGES)
    if not private or not 16 <= network.prefixlen <= 24:
        return "a private IPv4 network from /16 to /24 (four subnets are cut from it), e.g. 10.40.0.0/16"
    return None


def _check_allowed_cidr(value: str) -> str | None:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return "IPv4 networks in CIDR notation, e.g. 10.50.0.0/16"
    if network.prefixlen == 0:
        return "a network narrower than 0.0.0.0/0 (set public=true to open the service)"
    return None


def _aws_settings(
    read: _Reader, stack: str, region: str, scaling: ScalingSettings, service: ServiceSettings
) -> AwsSettings:
    """The aws target's keys, with the rules that tie them to the rest of the stack."""
    provider_region = pulumi.Config("aws").get("region")
    if provider_region and provider_region != region:
        raise read.fail("region", region, f"the same region as aws:region ({provider_region})")
    cpu_units = round(scaling.cpu_cores * 1024)
    if cpu_units not in FARGATE_MEMORY_MIB:
        raise read.fail("cpu", scaling.cpu, "0.25, 0.5, 1, 2 or 4 vCPUs on Fargate")
    if scaling.memory_mib not in FARGATE_MEMORY_MIB[cpu_units]:
        sizes = ", ".join(
            f"{m // 1024}Gi" if m % 1024 == 0 else f"{m}Mi" for m in FARGATE_MEMORY_MIB[cpu_units]
        )
        raise read.fail("memory", scaling.memory, f"a size Fargate allows with {scaling.cpu} vCPU: {sizes}")
    aws = AwsSettings(
        region=region,
        vpc_cidr=read.string("awsVpcCidr", check=_check_vpc_cidr),
        certificate_arn=read.string(
            "awsCertificateArn",
            check=lambda v: None if v == "" or _ACM_ARN.fullmatch(v) else "empty or an ACM certificate ARN",
        ),
        domain=read.string("awsDomain", check=_check_domain),
        allowed_cidrs=read.string_list("awsAllowedCidrs", check=_check_allowed_cidr),
        waf_rate_limit=read.integer("awsWafRateLimit", minimum=0, maximum=2_000_000_000),
        requests_per_target=read.integer("awsRequestsPerTarget", minimum=10, maximum=1_000_000),
        log_retention_days=read.integer("awsLogRetentionDays", minimum=1, maximum=3653),
        registry_keep_images=read.integer("awsRegistryKeepImages", minimum=1, maximum=1000),
        grafana_admin_groups=read.string_list(
            "awsGrafanaAdminGroups",
            check=lambda v: None if _IDENTITY_CENTER_GROUP.fullmatch(v) else "IAM Identity Center group ids",
        ),
        cpu_units=cpu_units,
        memory_mib=scaling.memory_mib,
    )
    if 0 < aws.waf_rate_limit < 10:
        raise read.fail("awsWafRateLimit", aws.waf_rate_limit, "0 (no rule) or at least 10 (WAF's minimum)")
    if not aws.https and (service.public or is_production_stack(stack)):
        raise read.fail(
            "awsCertificateArn",
            aws.certificate_arn,
            "an ACM certificate ARN on a public or production stack: its load balancer serves HTTPS only",
        )
    if aws.domain and not aws.https:
        raise read.fail("awsDomain", aws.domain, "empty unless awsCertificateArn names its certificate")
    if service.shutdown_grace_seconds + 2 > 120:
        raise read.fail(
            "shutdownGraceSeconds",
            service.shutdown_grace_seconds,
            "118 or less on ECS (stopTimeout is at most 120 s)",
        )
    return aws


def is_production_stack(stack: str) -> bool:
    """The policy pack's rule: any stack named like prod/production/prd is production."""
    return bool(re.search(r"(?:^|[-_.])(?:prod|production|prd)(?:$|[-_.])", stack.lower()))


_REGISTRY = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*")
_QUANTITY = re.compile(r"[1-9]\d*(Mi|Gi|Ti)")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?")
_SMARTHOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?:\d{1,5}")


def _check_registry(value: str) -> str | None:
    if value and _REGISTRY.fullmatch(value) and "." in value.split("/", 1)[0] + ".":
        return None
    return "an OCI registry and path without tag, e.g. ghcr.io/acme or registry.example.com:5000/team"


def _kubernetes_settings(
    read: _Reader, project: str, stack: str, scaling: ScalingSettings, alerting: AlertingSettings
) -> KubernetesSettings:
    """The kubernetes target's keys, with the rules that tie them together."""

    def optional_name(value: str) -> str | None:
        return None if value == "" else _check_name(value)

    k8s = KubernetesSettings(
        namespace=read.string("k8sNamespace", check=optional_name) or _label(f"{project}-{stack}"),
        registry=read.string("k8sRegistry", check=_check_registry),
        registry_username=read.string(
            "k8sRegistryUsername", check=lambda v: None if not re.search(r"\s", v) else "a user name"
        ),
        registry_password=read.secret("k8sRegistryPassword"),
        ingress_class=read.string("k8sIngressClass", check=_check_name),
        ingress_controller_namespace=read.string("k8sIngressControllerNamespace", check=_check_name),
        host=read.string("k8sHost", check=_check_domain),
        tls_secret=read.string("k8sTlsSecret", check=optional_name),
        cluster_issuer=read.string("k8sClusterIssuer", check=optional_name),
        forwarded_hops=read.integer("k8sForwardedHops", minimum=0, maximum=5),
        monitoring=read.string("k8sMonitoring", choices=K8S_MONITORING),
        monitoring_namespace=read.string("k8sMonitoringNamespace", check=_check_name),
        prometheus_url=read.string(
            "k8sPrometheusUrl",
            check=lambda v: (
                None if v == "" or re.fullmatch(r"https?://[^\s/]+(/\S*)?", v) else "an http(s) URL"
            ),
        ),
        monitoring_release_label=read.string(
            "k8sMonitoringReleaseLabel",
            check=lambda v: None if _LABEL_VALUE.fullmatch(v) else "empty or a Kubernetes label value",
        ),
        prometheus_storage=read.string(
            "k8sPrometheusStorage",
            check=lambda v: None if v == "" or _QUANTITY.fullmatch(v) else "empty or a size such as 20Gi",
        ),
        grafana_host=read.string("k8sGrafanaHost", check=_check_domain),
        smtp_smarthost=read.string(
            "k8sSmtpSmarthost",
            check=lambda v: None if v == "" or _SMARTHOST.fullmatch(v) else "empty or HOST:PORT",
        ),
        smtp_from=read.string("k8sSmtpFrom", check=_check_email),
        smtp_username=read.string(
            "k8sSmtpUsername", check=lambda v: None if not re.search(r"\s", v) else "a user name"
        ),
        smtp_password=read.secret("k8sSmtpPassword"),
    )
    if scaling.min_instances < 1:
        raise read.fail(
            "minInstances",
            scaling.min_instances,
            "1 or more on Kubernetes (the HorizontalPodAutoscaler cannot scale to zero)",
        )
    if bool(k8s.registry_username) != (k8s.registry_password is not None):
        raise read.fail(
            "k8sRegistryUsername",
            k8s.registry_username,
            "set together with k8sRegistryPassword (both, or neither for ambient credentials)",
        )
    if k8s.tls_secret and k8s.cluster_issuer:
        raise read.fail(
            "k8sClusterIssuer", k8s.cluster_issuer, "empty when k8sTlsSecret is set (one or the other)"
        )
    for key, host in (("k8sHost", k8s.host), ("k8sGrafanaHost", k8s.grafana_host)):
        if host and not k8s.tls:
            raise read.fail(
                key,
                host,
                "empty, or with k8sTlsSecret or k8sClusterIssuer set: the Ingress serves HTTPS only",
            )
    if k8s.grafana_host and k8s.grafana_host == k8s.host:
        raise read.fail("k8sGrafanaHost", k8s.grafana_host, "a host name other than k8sHost's")
    if k8s.installs_monitoring and k8s.prometheus_url:
        raise read.fail(
            "k8sPrometheusUrl", k8s.prometheus_url, "empty with k8sMonitoring install (the chart's is used)"
        )
    if not k8s.installs_monitoring and not k8s.prometheus_url:
        raise read.fail(
            "k8sPrometheusUrl",
            k8s.prometheus_url,
            "the in-cluster URL of the existing Prometheus, e.g. "
            "http://prometheus-operated.monitoring.svc:9090 (k8sMonitoring is existing)",
        )
    if k8s.installs_monitoring and alerting.notification_email and not (k8s.smtp_smarthost and k8s.smtp_from):
        raise read.fail(
            "k8sSmtpSmarthost",
            k8s.smtp_smarthost,
            "HOST:PORT of an SMTP relay, with k8sSmtpFrom, when notificationEmail is set: Alertmanager "
            "sends the e-mail itself",
        )
    return k8s
