"""The local stack's Docker containers: reachable from this machine only, and locked down."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .core import UNKNOWN, Resource, Rule, StackContext, get, items, type_is

CONTAINER = "docker:index/container:Container"
COMPONENT_LABEL = "io.scamguard.component"
LOOPBACK = frozenset({"127.0.0.1", "::1"})
# Prometheus and Grafana keep a writable root filesystem: the Docker provider copies their
# rendered config into the container (`uploads`), which it cannot do into a read-only one
# (infra/targets/local/monitoring.py).  For them hardening is advice, for everything else a must.
WRITABLE_ROOTFS_COMPONENTS = frozenset({"prometheus", "grafana"})


def component(props: Mapping[str, Any]) -> Any:
    for label in items(props.get("labels")):
        if isinstance(label, Mapping) and label.get("label") == COMPONENT_LABEL:
            return label.get("value")
    return None


def check_loopback_ports(resource: Resource, stack: StackContext) -> Iterator[str]:
    for port in items(resource.props.get("ports")):
        if not isinstance(port, Mapping):
            continue
        ip = port.get("ip")
        if ip is UNKNOWN or ip in LOOPBACK:
            continue
        published = port.get("external", port.get("internal"))
        shown = f"{int(published)}" if isinstance(published, int | float) else "a port"
        yield (
            f"container {resource.name} publishes {shown} on {ip or '0.0.0.0 (all interfaces)'}: "
            "set ports[].ip='127.0.0.1' so the local stack is reachable from this machine only."
        )


def check_hardening(resource: Resource, stack: StackContext) -> Iterator[str]:
    props = resource.props
    if props.get("readOnly") not in (True, UNKNOWN):
        yield (
            f"container {resource.name} has a writable root filesystem: set read_only=True (and a "
            "small tmpfs for paths that must be written)."
        )
    drops = get(props, "capabilities", "drops")
    if drops is not UNKNOWN and "ALL" not in {str(d).upper() for d in items(drops)}:
        yield f"container {resource.name} keeps Linux capabilities: set capabilities.drops=['ALL']."
    adds = items(get(props, "capabilities", "adds"))
    if adds:
        yield f"container {resource.name} adds capabilities {sorted(map(str, adds))}: remove them."
    if props.get("privileged") is True:
        yield f"container {resource.name} is privileged: remove privileged=True."


def _is_writable_component(resource: Resource) -> bool:
    return component(resource.props) in WRITABLE_ROOTFS_COMPONENTS


_CONTAINERS = type_is(CONTAINER)


def _strict(resource: Resource, stack: StackContext) -> Iterator[str]:
    if not _is_writable_component(resource):
        yield from check_hardening(resource, stack)


def _advisory(resource: Resource, stack: StackContext) -> Iterator[str]:
    if _is_writable_component(resource):
        for message in check_hardening(resource, stack):
            yield (
                f"{message} (Advice only for {component(resource.props)}: its config is copied in with "
                "`uploads`, which needs a writable root filesystem; mounting the rendered files "
                "read-only from a volume would allow read_only=True.)"
            )


RULES = (
    Rule(
        name="docker-ports-loopback",
        description="Local Docker containers publish ports on 127.0.0.1 only.",
        enforcement="mandatory",
        applies_to=_CONTAINERS,
        check=check_loopback_ports,
    ),
    Rule(
        name="docker-container-hardening",
        description=(
            "Local Docker containers (the API and anything unlabelled) run with a read-only root "
            "filesystem, all capabilities dropped, unprivileged."
        ),
        enforcement="mandatory",
        applies_to=_CONTAINERS,
        check=_strict,
    ),
    Rule(
        name="docker-monitoring-container-hardening",
        description=(
            "Advice for Prometheus/Grafana containers, which need a writable root filesystem for "
            "their uploaded config: the same hardening as the API where possible."
        ),
        enforcement="advisory",
        applies_to=_CONTAINERS,
        check=_advisory,
    ),
)
