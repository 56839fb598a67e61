"""The model API on Kubernetes: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget and
an Ingress, with the API keys in a Secret mounted as a file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.platform import Service
from infra.targets.kubernetes.meta import HTTP_PORT_NAME, SERVICE_UID

API_KEYS_DIR = "/secrets/api-keys"
API_KEYS_FILE = "keys"
# Between a pod being marked for deletion and its endpoints leaving every ingress controller and
# kube-proxy, requests still arrive: the preStop hook keeps the pod serving this long before
# SIGTERM starts the service's own drain (SCAMGUARD_SHUTDOWN_GRACE_SECONDS).
ENDPOINT_PROPAGATION_SECONDS = 5
# The kubelet's SIGKILL comes terminationGracePeriodSeconds after the preStop hook started: the hook,
# the drain and this margin for the process to exit.
EXIT_MARGIN_SECONDS = 2
CPU_TARGET_UTILIZATION = 70
# Scale in slowly (a spike often comes back), out at once.
SCALE_DOWN_STABILIZATION_SECONDS = 300
# Tells pulumi-kubernetes not to wait for the Ingress's load balancer status: some controllers
# never publish one, and `pulumi up` would hang until its timeout.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}
# Paths the Ingress routes to the API. /metrics and /readyz stay inside the cluster.
PUBLIC_PREFIXES = ("/v1", "/v2")
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")


@dataclass
class KubernetesServiceArgs:
    namespace: pulumi.Input[str]
    name: str
    labels: Mapping[str, str]
    selector: Mapping[str, str]
    image: pulumi.Input[str]  # by digest
    service_account_name: pulumi.Input[str]
    environment: Mapping[str, str]
    # Secret, one key per line; None = one random key is generated (never an open API by omission).
    api_keys: pulumi.Input[str] | None
    min_replicas: int
    max_replicas: int
    cpu: str
    memory: str
    shutdown_grace_seconds: int
    max_body_bytes: int
    docs_enabled: bool
    port: int = 8080
    host: str = ""  # "" = no Ingress
    ingress_class: str = "nginx"
    tls_secret: str = ""
    cluster_issuer: str = ""


class KubernetesService(Service):
    """``url``: https://<host> with an Ingress, else the in-cluster address of the Service."""

    deployment: k8s.apps.v1.Deployment
    api_keys_secret: k8s.core.v1.Secret
    api_keys_secret_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: KubernetesServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:kubernetes:Service", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = pulumi.Output.from_input(args.namespace)

        def metadata(object_name: str, **extra: object) -> k8s.meta.v1.ObjectMetaArgsDict:
            return {"name": object_name, "namespace": namespace, "labels": dict(args.labels), **extra}  # type: ignore[typeddict-item]

        keys = args.api_keys
        if keys is None:
            generated = random.RandomPassword(f"{name}-api-key", length=40, special=False, opts=child)
            keys = pulumi.Output.concat(generated.result, "\n")
        # No fixed name: pulumi-kubernetes replaces an auto-named Secret when its data changes, so
        # new keys reach the pods as a rollout (a mounted file would change under a running pod).
        self.api_keys_secret = k8s.core.v1.Secret(
            f"{name}-api-keys",
            metadata={"namespace": namespace, "labels": dict(args.labels)},
            type="Opaque",
            string_data={API_KEYS_FILE: pulumi.Output.secret(keys)},
            opts=child,
        )
        self.api_keys_secret_name = self.api_keys_secret.metadata.apply(lambda m: m.name or "")

        environment = {
            **args.environment,
            "SCAMGUARD_API_KEYS_FILE": f"{API_KEYS_DIR}/{API_KEYS_FILE}",
        }

        def probe(path: str, period: int, failures: int) -> k8s.core.v1.ProbeArgsDict:
            return {
                "http_get": {"path": path, "port": HTTP_PORT_NAME},
                "period_seconds": period,
                "timeout_seconds": 2,
                "failure_threshold": failures,
            }

        container: k8s.core.v1.ContainerArgsDict = {
            "name": "api",
            "image": args.image,
            # By digest: the same bytes whether pulled or cached.
            "image_pull_policy": "IfNotPresent",
            "ports": [{"name": HTTP_PORT_NAME, "container_port": args.port, "protocol": "TCP"}],
            "env": [{"name": key, "value": value} for key, value in sorted(environment.items())],
            # Limits equal requests: Guaranteed QoS, and the one-process server never competes for
            # more CPU than the scheduler reserved.
            "resources": {
                "requests": {"cpu": args.cpu, "memory": args.memory},
                "limits": {"cpu": args.cpu, "memory": args.memory},
            },
            "security_context": {
                "allow_privilege_escalation": False,
                "privileged": False,
                "read_only_root_filesystem": True,
                "run_as_non_root": True,
                "run_as_user": SERVICE_UID,
                "run_as_group": SERVICE_UID,
                "capabilities": {"drop": ["ALL"]},
                "seccomp_profile": {"type": "RuntimeDefault"},
            },
            # Startup: up to 60 s to load the model; readiness takes the pod out while it drains or
            # is overloaded; liveness restarts a wedged process only.
            "startup_probe": probe("/readyz", 2, 30),
            "readiness_probe": probe("/readyz", 5, 2),
            "liveness_probe": probe("/healthz", 10, 3),
            "lifecycle": {"pre_stop": {"sleep": {"seconds": ENDPOINT_PROPAGATION_SECONDS}}},
            "volume_mounts": [
                {"name": "api-keys", "mount_path": API_KEYS_DIR, "read_only": True},
                {"name": "tmp", "mount_path": "/tmp"},  # noqa: S108 - a private emptyDir
            ],
        }
        spread: list[k8s.core.v1.TopologySpreadConstraintArgsDict] = [
            {
                "topology_key": key,
                "max_skew": 1,
                # A single-zone cluster still schedules; a multi-zone one spreads.
                "when_unsatisfiable": "ScheduleAnyway",
                "label_selector": {"match_labels": dict(args.selector)},
                "match_label_keys": ["pod-template-hash"],
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ]
        pod_spec: k8s.core.v1.PodSpecArgsDict = {
            "service_account_name": args.service_account_name,
            "automount_service_account_token": False,
            "enable_service_links": False,
            "termination_grace_period_seconds": ENDPOINT_PROPAGATION_SECONDS
            + args.shutdown_grace_seconds
            + EXIT_MARGIN_SECONDS,
            "security_context": {
                "run_as_non_root": True,
                "run_as_user": SERVICE_UID,
                "run_as_group": SERVICE_UID,
                # The mounted key file gets this group: readable by the service, by nobody else.
                "fs_group": SERVICE_UID,
                "seccomp_profile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "topology_spread_constraints": spread,
            "volumes": [
                {
                    "name": "api-keys",
                    "secret": {"secret_name": self.api_keys_secret_name, "default_mode": 0o440},
                },
                {"name": "tmp", "empty_dir": {"medium": "Memory", "size_limit": "16Mi"}},
            ],
        }
        # No `replicas`: the HorizontalPodAutoscaler owns them, and an `up` must not reset its count.
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata(args.name),
            spec={
                "selector": {"match_labels": dict(args.selector)},
                "revision_history_limit": 5,
                "progress_deadline_seconds": 600,
                "strategy": {
                    "type": "RollingUpdate",
                    "rolling_update": {"max_surge": "25%", "max_unavailable": 0},
                },
                "template": {"metadata": {"labels": dict(args.labels)}, "spec": pod_spec},
            },
            opts=child,
        )
        self.kube_service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata(args.name),
            spec={
                "type": "ClusterIP",
                "selector": dict(args.selector),
                "ports": [
                    {"name": HTTP_PORT_NAME, "port": 80, "target_port": HTTP_PORT_NAME, "protocol": "TCP"}
                ],
            },
            opts=child,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-autoscaler",
            metadata=metadata(args.name),
            spec={
                "scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": args.name},
                "min_replicas": args.min_replicas,
                "max_replicas": args.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "average_utilization": CPU_TARGET_UTILIZATION},
                        },
                    }
                ],
                "behavior": {
                    "scale_down": {
                        "stabilization_window_seconds": SCALE_DOWN_STABILIZATION_SECONDS,
                        "policies": [{"type": "Pods", "value": 1, "period_seconds": 60}],
                    },
                    "scale_up": {
                        "stabilization_window_seconds": 0,
                        "policies": [{"type": "Percent", "value": 100, "period_seconds": 15}],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]),
        )
        # One pod at a time may be evicted (node drains, upgrades); minAvailable would block every
        # drain of a one-replica staging stack.
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-disruption-budget",
            metadata=metadata(args.name),
            spec={
                "max_unavailable": 1,
                "selector": {"match_labels": dict(args.selector)},
                "unhealthy_pod_eviction_policy": "AlwaysAllow",
            },
            opts=child,
        )
        in_cluster = namespace.apply(lambda ns: f"http://{args.name}.{ns}.svc.cluster.local")
        if args.host:
            self.ingress = self._ingress(name, args, metadata)
            self.url = pulumi.Output.from_input(f"https://{args.host}")
        else:
            self.url = in_cluster
        self.in_cluster_url = in_cluster
        # Prometheus finds the pods through the ServiceMonitor (infra/targets/kubernetes/monitoring.py).
        self.scrape_targets = pulumi.Output.from_input([])
        self.register_outputs({"url": self.url, "api_keys_secret_name": self.api_keys_secret_name})

    def _ingress(
        self, name: str, args: KubernetesServiceArgs, metadata: Callable[..., k8s.meta.v1.ObjectMetaArgsDict]
    ) -> k8s.networking.v1.Ingress:
        annotations = {
            **SKIP_AWAIT,
            # ingress-nginx answers 413 above 1 MiB by default: let the API's own limit decide.
            "nginx.ingress.kubernetes.io/proxy-body-size": str(args.max_body_bytes),
        }
        if args.cluster_issuer:
            annotations["cert-manager.io/cluster-issuer"] = args.cluster_issuer
        backend: k8s.networking.v1.IngressBackendArgsDict = {
            "service": {"name": args.name, "port": {"name": HTTP_PORT_NAME}}
        }
        paths: list[k8s.networking.v1.HTTPIngressPathArgsDict] = [
            {"path": prefix, "path_type": "Prefix", "backend": backend} for prefix in PUBLIC_PREFIXES
        ]
        if args.docs_enabled:
            exact: list[k8s.networking.v1.HTTPIngressPathArgsDict] = [
                {"path": path, "path_type": "Exact", "backend": backend} for path in DOCS_PATHS
            ]
            paths += exact
        return k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=metadata(args.name, annotations=annotations),
            spec={
                "ingress_class_name": args.ingress_class,
                "tls": [{"hosts": [args.host], "secret_name": args.tls_secret or f"{args.name}-tls"}],
                "rules": [{"host": args.host, "http": {"paths": paths}}],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.kube_service]),
        )
