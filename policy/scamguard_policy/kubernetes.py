"""Kubernetes workloads: Pod Security "restricted", no host access, resources, probes, images by
digest, a ServiceAccount of their own; and a default-deny NetworkPolicy in every namespace that runs one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .core import UNKNOWN, Resource, Rule, StackContext, StackRule, get, items

# Type token -> path from the props to the pod spec.
POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
# Workloads that must serve traffic, so need probes (a Job or CronJob runs to completion).
SERVING = frozenset(POD_SPEC_PATHS) - {"kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob"}
ALLOWED_SECCOMP = frozenset({"RuntimeDefault", "Localhost"})


def _workloads(type_: str) -> bool:
    return type_ in POD_SPEC_PATHS


def pod_spec(resource: Resource) -> Any:
    return get(resource.props, *POD_SPEC_PATHS[resource.type])


def containers(spec: Any) -> list[Mapping[str, Any]]:
    return [
        c
        for c in (*items(get(spec, "initContainers")), *items(get(spec, "containers")))
        if isinstance(c, Mapping)
    ]


def _label(resource: Resource, container: Mapping[str, Any]) -> str:
    return f"{resource.name} container {container.get('name', '?')}"


def check_restricted(resource: Resource, stack: StackContext) -> Iterator[str]:
    spec = pod_spec(resource)
    if spec is UNKNOWN or not isinstance(spec, Mapping):
        return
    pod_context = get(spec, "securityContext") or {}
    for container in containers(spec):
        context = container.get("securityContext") or {}
        where = _label(resource, container)
        non_root = context.get("runAsNonRoot", get(pod_context, "runAsNonRoot"))
        if non_root not in (True, UNKNOWN):
            yield f"{where} may run as root: set securityContext.runAsNonRoot=true (and a runAsUser >= 1)."
        if context.get("allowPrivilegeEscalation") not in (False, UNKNOWN):
            yield f"{where} allows privilege escalation: set securityContext.allowPrivilegeEscalation=false."
        if context.get("privileged") is True:
            yield f"{where} is privileged: remove securityContext.privileged."
        drops = {str(d).upper() for d in items(get(context, "capabilities", "drop"))}
        if "ALL" not in drops:
            yield f"{where} keeps Linux capabilities: set securityContext.capabilities.drop=['ALL']."
        if items(get(context, "capabilities", "add")):
            yield f"{where} adds capabilities: remove securityContext.capabilities.add."
        seccomp = get(context, "seccompProfile", "type") or get(pod_context, "seccompProfile", "type")
        if seccomp is not UNKNOWN and seccomp not in ALLOWED_SECCOMP:
            yield f"{where} has no seccomp profile: set securityContext.seccompProfile.type=RuntimeDefault."


def check_no_host_access(resource: Resource, stack: StackContext) -> Iterator[str]:
    spec = pod_spec(resource)
    if not isinstance(spec, Mapping):
        return
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) is True:
            yield f"{resource.name} shares the node's namespaces: remove {field}=true."
    for volume in items(spec.get("volumes")):
        if isinstance(volume, Mapping) and "hostPath" in volume:
            yield (
                f"{resource.name} mounts the node's filesystem (volume {volume.get('name')}): "
                "use another volume type."
            )
    for container in containers(spec):
        for port in items(container.get("ports")):
            if isinstance(port, Mapping) and port.get("hostPort"):
                yield f"{_label(resource, container)} binds a node port: remove ports[].hostPort."


def check_resources(resource: Resource, stack: StackContext) -> Iterator[str]:
    spec = pod_spec(resource)
    for container in containers(spec):
        resources = container.get("resources")
        if resources is UNKNOWN:
            continue
        where = _label(resource, container)
        if get(resources, "limits", "memory") is None:
            yield f"{where} has no memory limit: set resources.limits.memory (or it may starve its node)."
        for kind in ("cpu", "memory"):
            if get(resources, "requests", kind) is None:
                yield f"{where} has no {kind} request: set resources.requests.{kind} (the HPA scales on it)."


def check_probes(resource: Resource, stack: StackContext) -> Iterator[str]:
    if resource.type not in SERVING:
        return
    for container in items(get(pod_spec(resource), "containers")):
        if not isinstance(container, Mapping):
            continue
        for probe in ("readinessProbe", "livenessProbe"):
            if container.get(probe) is None:
                yield f"{_label(resource, container)} has no {probe}: add one (the API's: /readyz, /healthz)."


def check_image_digest(resource: Resource, stack: StackContext) -> Iterator[str]:
    for container in containers(pod_spec(resource)):
        image = container.get("image")
        if image is UNKNOWN:  # the digest of an image built in this update
            continue
        if not isinstance(image, str) or "@sha256:" not in image:
            yield (
                f"{_label(resource, container)} runs {image!r} by tag: deploy by digest "
                "(REPOSITORY@sha256:...), so every node runs the same bytes."
            )


def check_service_account(resource: Resource, stack: StackContext) -> Iterator[str]:
    spec = pod_spec(resource)
    if not isinstance(spec, Mapping):
        return
    account = spec.get("serviceAccountName")
    if account in (None, "", "default"):
        yield f"{resource.name} runs as the namespace's default ServiceAccount: give it its own."
    if spec.get("automountServiceAccountToken") not in (False, UNKNOWN):
        yield (
            f"{resource.name} mounts a Kubernetes API token: set automountServiceAccountToken=false "
            "unless it calls the API."
        )


def _namespace(props: Mapping[str, Any]) -> Any:
    return get(props, "metadata", "namespace")


def _denies_all(props: Mapping[str, Any]) -> bool:
    spec = props.get("spec")
    return (
        isinstance(spec, Mapping)
        and spec.get("podSelector") == {}
        and set(items(spec.get("policyTypes"))) == {"Ingress", "Egress"}
        and not items(spec.get("ingress"))
        and not items(spec.get("egress"))
    )


def check_default_deny(resources: Sequence[Resource], stack: StackContext) -> Iterator[str]:
    denied = {_namespace(r.props) for r in resources if r.type == NETWORK_POLICY and _denies_all(r.props)}
    for resource in resources:
        if not _workloads(resource.type):
            continue
        namespace = _namespace(resource.props)
        if namespace is UNKNOWN or namespace in denied:
            continue
        yield (
            f"{resource.name} runs in namespace {namespace!r}, which has no default-deny NetworkPolicy: add "
            "one (podSelector {}, policyTypes [Ingress, Egress]) and allow only the traffic it needs."
        )


RULES = (
    Rule(
        name="k8s-pod-security-restricted",
        description="Kubernetes pods meet Pod Security 'restricted': non-root, no privilege escalation, "
        "all capabilities dropped, a seccomp profile.",
        enforcement="mandatory",
        applies_to=_workloads,
        check=check_restricted,
    ),
    Rule(
        name="k8s-no-host-access",
        description="Kubernetes pods use no host network/PID/IPC, hostPath volume or hostPort.",
        enforcement="mandatory",
        applies_to=_workloads,
        check=check_no_host_access,
    ),
    Rule(
        name="k8s-resources",
        description="Every Kubernetes container requests CPU and memory and has a memory limit.",
        enforcement="mandatory",
        applies_to=_workloads,
        check=check_resources,
    ),
    Rule(
        name="k8s-probes",
        description="Every serving Kubernetes container has readiness and liveness probes.",
        enforcement="mandatory",
        applies_to=_workloads,
        check=check_probes,
    ),
    Rule(
        name="k8s-image-digest",
        description="Kubernetes containers run images by digest.",
        enforcement="mandatory",
        applies_to=_workloads,
        check=check_image_digest,
    ),
    Rule(
        name="k8s-own-service-account",
        description="Kubernetes pods run as their own ServiceAccount with no API token mounted.",
        enforcement="mandatory",
        applies_to=_workloads,
        check=check_service_account,
    ),
)

STACK_RULES = (
    StackRule(
        name="k8s-default-deny-network-policy",
        description="Every namespace that runs a Kubernetes workload of the stack has a default-deny "
        "NetworkPolicy.",
        enforcement="mandatory",
        check=check_default_deny,
    ),
)
