"""One interface for every deployment target (local Docker, GCP Cloud Run, AWS ECS Fargate, Kubernetes).

A target is a :class:`Platform` subclass that creates one ComponentResource per concern:

==============  =====================================  ==========================================
concern         returns (typed outputs, see below)     e.g. local / GCP / AWS / Kubernetes
==============  =====================================  ==========================================
registry()      Registry: repository, push, creds      none / Artifact Registry / ECR / any OCI
network()       Network: network_id                    bridge / VPC+subnet / VPC+SGs / namespace
identity(r, n)  Identity: principal                    uid / service account / task role / KSA
service(...)    Service: url, scrape_targets           container / Cloud Run / ECS svc / Deploy.
monitoring(...) Monitoring: prometheus_url, grafana    containers / GMP+Grafana / AMP+AMG / ...
edge(...)       optional front door, or None           none / HTTPS LB + Cloud Armor / in service
==============  =====================================  ==========================================

The image is built once by the shared :class:`infra.image.ServiceImage` between ``identity`` and
``service`` (see :func:`infra.deploy.deploy`).  Each target subclasses the output classes below
(so ``GcpNetwork`` may add ``subnet_id``) and parameterises :class:`Platform` with them, so its own
``service()`` sees its own network type while ``deploy()`` only relies on the common fields.
Target-specific knobs live in the target's settings (``Settings.local``, ``Settings.gcp``), never
in this interface.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import pulumi

from infra.config import Settings
from infra.image import RegistryCredentials, ServiceImage

if TYPE_CHECKING:
    from infra.monitoring.config import MonitoringConfig


class Registry(pulumi.ComponentResource):
    """Where the service image is stored.

    repository: image name without tag, e.g. ``scamguard-api`` (local, not pushed) or
        ``europe-west1-docker.pkg.dev/PROJECT/scamguard/scamguard-api``.
    push: whether the build pushes the image (False only for the local engine).
    credentials: push credentials, or None when the builder's ambient credentials are used.
    """

    repository: pulumi.Output[str]
    push: bool
    credentials: RegistryCredentials | None
    # A registry with immutable tags (ECR) gets a tag per source revision (version-revision): the
    # same version tag cannot be pushed twice.
    immutable_tags: bool = False


class Network(pulumi.ComponentResource):
    """Private networking of the stack.

    network_id: the target's id for it: Docker network name, VPC self-link / id, or namespace.
    """

    network_id: pulumi.Output[str]


class Identity(pulumi.ComponentResource):
    """The runtime principal of the service, with least-privilege grants.

    principal: e.g. ``10001:10001`` (local uid:gid), a service account e-mail, an IAM role ARN,
        or a Kubernetes ServiceAccount name.
    """

    principal: pulumi.Output[str]


class Service(pulumi.ComponentResource):
    """The running, autoscaled API.

    url: base URL callers use (``http://127.0.0.1:8080``, the Cloud Run URL, ...).
    scrape_targets: ``host:port`` of the API as the target's Prometheus reaches it (for
        prometheus.yml; empty when the target scrapes by other means, e.g. a sidecar collector).
    """

    url: pulumi.Output[str]
    scrape_targets: pulumi.Output[Sequence[str]]


class Monitoring(pulumi.ComponentResource):
    """Prometheus (or a managed equivalent) with the project's rules, and Grafana with its dashboards."""

    prometheus_url: pulumi.Output[str]
    grafana_url: pulumi.Output[str]


RegistryT = TypeVar("RegistryT", bound=Registry)
NetworkT = TypeVar("NetworkT", bound=Network)
IdentityT = TypeVar("IdentityT", bound=Identity)
ServiceT = TypeVar("ServiceT", bound=Service)
MonitoringT = TypeVar("MonitoringT", bound=Monitoring)


class Platform(abc.ABC, Generic[RegistryT, NetworkT, IdentityT, ServiceT, MonitoringT]):
    """One deployment target.  Each method creates one ComponentResource and returns it.

    Components are named ``self.prefix`` with a type token ``scamguard:<target>:<Concern>``; their
    children are named ``f"{name}-..."`` with ``parent=self``.
    """

    target: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = settings.project

    @abc.abstractmethod
    def registry(self) -> RegistryT: ...

    @abc.abstractmethod
    def network(self) -> NetworkT: ...

    @abc.abstractmethod
    def identity(self, registry: RegistryT, network: NetworkT) -> IdentityT:
        """The runtime principal; ``network`` for targets whose principal lives in it (a namespace)."""

    @abc.abstractmethod
    def service(self, image: ServiceImage, network: NetworkT, identity: IdentityT) -> ServiceT: ...

    @abc.abstractmethod
    def monitoring(self, service: ServiceT, network: NetworkT) -> MonitoringT: ...

    def edge(self, service: ServiceT, monitoring: MonitoringT) -> pulumi.ComponentResource | None:
        """An optional last concern: a front door for the service and Grafana both (GCP's external
        HTTPS load balancer). Targets whose way in belongs to the service itself return None."""
        return None

    def extra_outputs(
        self,
        image: ServiceImage,
        service: ServiceT,
        monitoring: MonitoringT,
        edge: pulumi.ComponentResource | None = None,
    ) -> Mapping[str, pulumi.Input[Any]]:
        """Target-specific stack outputs beyond the common four (e.g. a secret admin password), from
        the components ``deploy()`` created."""
        return {}


# What a target factory returns; deploy() itself stays generic over the concrete types.
AnyPlatform = Platform[Any, Any, Any, Any, Any]


def monitoring_config(
    settings: Settings, scrape_targets: Sequence[str], prometheus_url: str, series_selector: str = ""
) -> MonitoringConfig:
    """The shared monitoring-as-code input (contract D) for this stack's settings."""
    from infra.monitoring.config import MonitoringConfig

    return MonitoringConfig(
        environment=settings.stack,
        scrape_targets=list(scrape_targets),
        prometheus_url=prometheus_url,
        availability_slo=settings.alerting.availability_slo,
        latency_slo_seconds=settings.alerting.latency_slo_seconds,
        alert_on_no_traffic=settings.alerting.alert_on_no_traffic,
        # The local target always runs its one container; the cloud ones may scale to zero.
        always_running=settings.target == "local" or settings.scaling.min_instances > 0,
        scrape_interval_seconds=settings.alerting.scrape_interval_seconds,
        series_selector=series_selector,
    )
