"""Names and labels shared by the Kubernetes target's components."""

from __future__ import annotations

APP = "scamguard"
# The API container's port name: the Service, the ServiceMonitor and the probes refer to it.
HTTP_PORT_NAME = "http"
# The image's fixed unprivileged user and group (service/Dockerfile).
SERVICE_UID = 10001
# Always set on namespaces since Kubernetes 1.21: how NetworkPolicies select a namespace by name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def selector(stack: str) -> dict[str, str]:
    """The labels that identify this stack's API pods (immutable in a Deployment's selector)."""
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": stack}


def labels(stack: str, component: str) -> dict[str, str]:
    """The recommended app.kubernetes.io labels of every object of the stack."""
    return {
        **selector(stack),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": APP,
        "app.kubernetes.io/managed-by": "pulumi",
    }
