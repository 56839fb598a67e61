"""Cloud Run v2 services (and jobs): safe to run in production."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .core import UNKNOWN, Resource, Rule, StackContext, get, items, type_is

SERVICE = "gcp:cloudrunv2/service:Service"
JOB = "gcp:cloudrunv2/job:Job"

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# Env names that smell like a credential; *_FILE / *_PATH / *_DIR pointing at an absolute path
# name a mounted secret file instead (the service reads SCAMGUARD_API_KEYS_FILE that way).
_SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL", re.IGNORECASE)
_FILE_POINTER = re.compile(r"_(FILE|PATH|DIR)$", re.IGNORECASE)
_DEFAULT_ACCOUNTS = ("-compute@developer.gserviceaccount.com", "@appspot.gserviceaccount.com")


def containers(resource: Resource) -> list[Mapping[str, Any]]:
    """The containers of a service (template.containers) or a job (template.template.containers)."""
    path = ("template", "template", "containers") if resource.type == JOB else ("template", "containers")
    return [c for c in items(get(resource.props, *path)) if isinstance(c, Mapping)]


def ingress_container(resource: Resource) -> Mapping[str, Any] | None:
    """The container that receives requests: the one declaring a port, or the only one."""
    found = containers(resource)
    with_port = [c for c in found if c.get("ports") not in (None, [], {})]
    if len(with_port) == 1:
        return with_port[0]
    return found[0] if len(found) == 1 else None


def _label(resource: Resource, key: str) -> Any:
    return get(resource.props, "labels", key)


def _is_workload(resource: Resource, stack: StackContext) -> bool:
    return _label(resource, "component") == stack.workload_component


def _container_name(container: Mapping[str, Any], index: int) -> str:
    return str(container.get("name") or f"#{index}")


def check_deletion_protection(resource: Resource, stack: StackContext) -> Iterator[str]:
    value = resource.props.get("deletionProtection")
    if stack.production and value is not True and value is not UNKNOWN:
        yield (
            f"Cloud Run service {resource.name} in production stack {stack.stack!r} must set "
            "deletion_protection=True explicitly (scamguard:deletionProtection: true), so a "
            "`pulumi destroy` or a replacement cannot delete the live service."
        )


def check_probes(resource: Resource, stack: StackContext) -> Iterator[str]:
    container = ingress_container(resource)
    if container is None:
        if containers(resource):
            yield (
                f"Cloud Run service {resource.name} has several containers and none declares a port: "
                "give the ingress container `ports` so its probes can be checked."
            )
        return
    name = _container_name(container, 0)
    if container.get("startupProbe") is None:
        yield (
            f"container {name!r} of Cloud Run service {resource.name} has no startup_probe: add one "
            "(httpGet on the readiness path, e.g. /readyz) so traffic only reaches started instances."
        )
    if _is_workload(resource, stack) and container.get("livenessProbe") is None:
        yield (
            f"container {name!r} of Cloud Run service {resource.name} has no liveness_probe: add an "
            "httpGet probe on /healthz so Cloud Run restarts an instance that stopped answering."
        )


def check_max_instances(resource: Resource, stack: StackContext) -> Iterator[str]:
    scaling = get(resource.props, "template", "scaling")
    if scaling is UNKNOWN:
        return
    maximum = get(scaling, "maxInstanceCount")
    minimum = get(scaling, "minInstanceCount")
    limit = stack.max_instances_limit
    if maximum is UNKNOWN:
        return
    if not isinstance(maximum, int | float) or maximum < 1:
        yield (
            f"Cloud Run service {resource.name} sets no template.scaling.max_instance_count: bound it "
            f"(scamguard:maxInstances, at most {limit}) so a traffic spike cannot scale cost without limit."
        )
    elif maximum > limit:
        yield (
            f"Cloud Run service {resource.name} may scale to {int(maximum)} instances, above the "
            f"policy limit of {limit}: lower scamguard:maxInstances, or raise maxInstanceCount in the "
            "policy config of cloud-run-max-instances if that is intended."
        )
    elif isinstance(minimum, int | float) and minimum > maximum:
        yield (
            f"Cloud Run service {resource.name} has min_instance_count {int(minimum)} above "
            f"max_instance_count {int(maximum)}: make the minimum at most the maximum."
        )


def _first_party(image: str, project: Any) -> bool:
    """An image in the service's own project's Artifact Registry (the one this stack builds)."""
    host, _, rest = image.partition("/")
    return host.endswith("-docker.pkg.dev") and isinstance(project, str) and rest.startswith(project + "/")


def _pinned_tag(image: str) -> bool:
    last = image.rsplit("/", 1)[-1]
    _, sep, tag = last.partition(":")
    return bool(sep) and tag != "latest"


def check_image_digest(resource: Resource, stack: StackContext) -> Iterator[str]:
    ingress = ingress_container(resource)
    for index, container in enumerate(containers(resource)):
        image = container.get("image")
        if not isinstance(image, str):  # absent, or UNKNOWN until the build ran
            continue
        name = _container_name(container, index)
        if _DIGEST.search(image):
            continue
        ours = _first_party(image, resource.props.get("project")) or (
            container is ingress and _is_workload(resource, stack)
        )
        if ours:
            yield (
                f"container {name!r} of Cloud Run service {resource.name} runs {image!r} by tag: "
                "reference the image by digest (NAME@sha256:...; ServiceImage.ref) so every revision "
                "runs exactly the image that was built and scanned."
            )
        elif not _pinned_tag(image):
            yield (
                f"container {name!r} of Cloud Run service {resource.name} runs {image!r}, which is "
                "unpinned or :latest: pin a version tag or, better, a digest (@sha256:...)."
            )


def check_no_plain_secret_env(resource: Resource, stack: StackContext) -> Iterator[str]:
    for index, container in enumerate(containers(resource)):
        for env in items(container.get("envs")):
            if not isinstance(env, Mapping) or not isinstance(env.get("name"), str):
                continue
            name: str = env["name"]
            if not _SECRET_NAME.search(name) or get(env, "valueSource", "secretKeyRef") is not None:
                continue
            value = env.get("value")
            if value in (None, "") or value is UNKNOWN:
                continue  # no plain value (or not known yet)
            if _FILE_POINTER.search(name) and isinstance(value, str) and value.startswith("/"):
                continue  # names a mounted secret file, not the secret itself
            yield (
                f"env {name} of container {_container_name(container, index)!r} in Cloud Run "
                f"{resource.name} holds a plain value: store it in Secret Manager and reference it "
                "with value_source.secret_key_ref (or mount it as a file), so it never sits in the "
                "revision spec or the Pulumi state."
            )


def check_dedicated_service_account(resource: Resource, stack: StackContext) -> Iterator[str]:
    template = get(resource.props, "template")
    if resource.type == JOB:
        template = get(template, "template")
    account = get(template, "serviceAccount")
    if account is UNKNOWN:
        return
    if not isinstance(account, str) or not account or account.endswith(_DEFAULT_ACCOUNTS):
        yield (
            f"Cloud Run {resource.name} runs as {account or 'the default compute service account'}: "
            "set template.service_account to a dedicated, least-privilege service account (the "
            "default one has roles/editor on the project)."
        )


_RUN = type_is(SERVICE, JOB)


def check_secret_volumes_readable(resource: Resource, stack: StackContext) -> Iterator[str]:
    """Cloud Run mounts secret volumes owned by root (gen2, and always with sidecars): a container
    running as another user reads the files only through the 'others' read bit."""
    volumes = items(get(resource.props, "template", "volumes"))
    for volume in volumes:
        secret = get(volume, "secret")
        if not isinstance(secret, Mapping):
            continue
        modes = [secret.get("defaultMode"), *(get(i, "mode") for i in items(secret.get("items")))]
        for mode in modes:
            if isinstance(mode, int) and not mode & 0o004:
                yield (
                    f"Cloud Run service {resource.name}: secret volume {volume.get('name')!r} has mode "
                    f"{mode:#o}; Cloud Run mounts it owned by root, so a non-root container cannot read "
                    "it (the service then refuses to start). Use 0o444."
                )


def check_production_behind_edge(resource: Resource, stack: StackContext) -> Iterator[str]:
    """A production API is not reachable from the internet except through the load balancer (Cloud
    Armor, managed certificate) unless the stack is deliberately public."""
    if not stack.production or stack.public_allowed or not _is_workload(resource, stack):
        return
    ingress = resource.props.get("ingress")
    if ingress == "INGRESS_TRAFFIC_ALL":
        yield (
            f"Cloud Run service {resource.name} in production stack {stack.stack!r} takes traffic "
            "from the whole internet: set scamguard:gcpIngress internal-and-cloud-load-balancing "
            "with scamguard:gcpDomain, so the edge load balancer (Cloud Armor, TLS) is the way in."
        )


def check_backend_has_security_policy(resource: Resource, stack: StackContext) -> Iterator[str]:
    if resource.props.get("loadBalancingScheme") in (
        "EXTERNAL",
        "EXTERNAL_MANAGED",
    ) and not resource.props.get("securityPolicy"):
        yield (
            f"Backend service {resource.name} faces the internet without a Cloud Armor security "
            "policy: attach one (the edge rate limit and OWASP rules)."
        )


RULES = (
    Rule(
        name="cloud-run-secret-volume-readable",
        description="Cloud Run v2 secret volumes are readable by the container's non-root user (mode 0o444).",
        enforcement="mandatory",
        applies_to=type_is(SERVICE),
        check=check_secret_volumes_readable,
    ),
    Rule(
        name="cloud-run-production-behind-edge",
        description=(
            "The production API's ingress admits only the load balancer and the VPC, unless the "
            "stack is deliberately public."
        ),
        enforcement="mandatory",
        applies_to=type_is(SERVICE),
        check=check_production_behind_edge,
    ),
    Rule(
        name="gcp-edge-backend-security-policy",
        description="Internet-facing backend services carry a Cloud Armor security policy.",
        enforcement="mandatory",
        applies_to=type_is("gcp:compute/backendService:BackendService"),
        check=check_backend_has_security_policy,
    ),
    Rule(
        name="cloud-run-deletion-protection",
        description="Cloud Run v2 services in a production stack set deletion_protection=True.",
        enforcement="mandatory",
        applies_to=type_is(SERVICE),
        check=check_deletion_protection,
    ),
    Rule(
        name="cloud-run-probes",
        description=(
            "Cloud Run v2 services: a startup probe on the ingress container; the API (component "
            "label 'service') also a liveness probe."
        ),
        enforcement="mandatory",
        applies_to=type_is(SERVICE),
        check=check_probes,
    ),
    Rule(
        name="cloud-run-max-instances",
        description="Cloud Run v2 services bound template.scaling.max_instance_count (default limit 100).",
        enforcement="mandatory",
        applies_to=type_is(SERVICE),
        check=check_max_instances,
        config_schema={
            "maxInstanceCount": {
                "type": "integer",
                "minimum": 1,
                "default": 100,
                "description": "Highest max_instance_count a service may set.",
            }
        },
    ),
    Rule(
        name="cloud-run-image-digest",
        description=(
            "Cloud Run v2: the stack's own image is referenced by digest (@sha256:); third-party "
            "images at least by a pinned tag."
        ),
        enforcement="mandatory",
        applies_to=_RUN,
        check=check_image_digest,
    ),
    Rule(
        name="cloud-run-no-plain-secret-env",
        description=(
            "Cloud Run v2: env vars named like *KEY*, *SECRET*, *PASSWORD*, *TOKEN* use "
            "value_source.secret_key_ref, never a plain value."
        ),
        enforcement="mandatory",
        applies_to=_RUN,
        check=check_no_plain_secret_env,
    ),
    Rule(
        name="cloud-run-dedicated-service-account",
        description="Cloud Run v2 runs as a dedicated service account, never the default compute one.",
        enforcement="mandatory",
        applies_to=_RUN,
        check=check_dedicated_service_account,
    ),
)
