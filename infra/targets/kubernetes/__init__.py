"""The Kubernetes target: any conformant cluster, from the stack's kubeconfig / context."""

from infra.targets.kubernetes.platform import KubernetesPlatform

__all__ = ["KubernetesPlatform"]
