"""The stack's namespace (Pod Security "restricted") and its NetworkPolicies: deny by default.

Allowed: ingress to the API port from the ingress controller's namespace and from the monitoring
namespace (Prometheus scrapes /metrics); egress to the cluster DNS, and to the shared rate-limit
store when one is configured. Nothing else in or out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.platform import Network
from infra.targets.kubernetes.meta import NAMESPACE_NAME_LABEL

# Pod Security admission: reject any pod of the namespace that is not "restricted".
POD_SECURITY_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
} | {f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "audit", "warn")}
# CoreDNS / kube-dns pods, labelled k8s-app=kube-dns by kubeadm, GKE, EKS and AKS alike.
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}


@dataclass
class NamespaceNetworkArgs:
    namespace: str
    labels: Mapping[str, str]
    api_selector: Mapping[str, str]
    api_port: int
    ingress_controller_namespace: str
    monitoring_namespace: str
    # TCP port of the shared rate-limit store (Redis) the API calls; None = in-memory limits.
    redis_port: int | None = None


class NamespaceNetwork(Network):
    """``network_id`` is the namespace name; every namespaced object of the stack uses it (and so
    waits for the namespace)."""

    namespace: k8s.core.v1.Namespace

    def __init__(
        self, name: str, args: NamespaceNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:kubernetes:NamespaceNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.namespace, "labels": {**args.labels, **POD_SECURITY_LABELS}},
            opts=child,
        )
        self.network_id = self.namespace.metadata.apply(lambda m: m.name or args.namespace)

        def policy(suffix: str, spec: k8s.networking.v1.NetworkPolicySpecArgsDict) -> None:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{suffix}",
                metadata={"name": suffix, "namespace": self.network_id, "labels": dict(args.labels)},
                spec=spec,
                opts=child,
            )

        policy("default-deny", {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]})

        def from_namespace(namespace: str) -> k8s.networking.v1.NetworkPolicyPeerArgsDict:
            return {"namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: namespace}}}

        policy(
            "api-ingress",
            {
                "pod_selector": {"match_labels": dict(args.api_selector)},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from_": [
                            from_namespace(args.ingress_controller_namespace),
                            from_namespace(args.monitoring_namespace),
                        ],
                        "ports": [{"protocol": "TCP", "port": args.api_port}],
                    }
                ],
            },
        )
        policy(
            "dns-egress",
            {
                "pod_selector": {},
                "policy_types": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                **from_namespace(DNS_NAMESPACE),
                                "pod_selector": {"match_labels": DNS_POD_LABELS},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        )
        if args.redis_port is not None:
            # The store's address is a host name the policy cannot resolve: any in-cluster pod on
            # the store's port (a Redis outside the cluster needs its own ipBlock rule).
            policy(
                "redis-egress",
                {
                    "pod_selector": {"match_labels": dict(args.api_selector)},
                    "policy_types": ["Egress"],
                    "egress": [
                        {
                            "to": [{"namespace_selector": {}}],
                            "ports": [{"protocol": "TCP", "port": args.redis_port}],
                        }
                    ],
                },
            )
        self.register_outputs({"network_id": self.network_id})
