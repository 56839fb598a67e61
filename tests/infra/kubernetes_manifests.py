"""The Kubernetes target's mocked resources as the manifests the provider would apply, and the offline
validators they must pass (no API server can run here).

- built-in objects: kubernetes-validate in strict mode (unknown fields fail), per Kubernetes version;
- custom resources: the CRDs' own openAPIV3Schema from ../shared/schemas/, with unknown fields
  rejected as the API server's strict field validation does (kubernetes-validate only warns on them).
"""

from __future__ import annotations

import copy
import functools
import pathlib
from collections.abc import Mapping
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.tools import missing

from .mocked_program import Registered, unwrap

# Oldest and newest Kubernetes minor the target supports: 1.30 is the first where the preStop
# `sleep` action is on by default (beta; GA in 1.34); 1.37 is the newest schema kubernetes-validate has.
K8S_VERSIONS = ("1.30.0", "1.37.0")
SHARED_SCHEMAS = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "schemas"
OPERATOR_SCHEMAS = SHARED_SCHEMAS / "prometheus-operator-v0.93.1"
CRD_FILES = {"ServiceMonitor": "crd-servicemonitors.yaml", "PrometheusRule": "crd-prometheusrules.yaml"}
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def _plain(value: Any) -> Any:
    value = unwrap(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    # The mocks' wire format carries every number as a double; the provider sends the schema's integers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def manifest(resource: Registered) -> dict[str, Any]:
    """What pulumi-kubernetes sends for one mocked object (secrets unwrapped; an auto-named object
    gets the provider's name: its logical name plus a suffix)."""
    document = _plain(copy.deepcopy(resource.inputs))
    document.setdefault("metadata", {}).setdefault("name", f"{resource.name}-mock1234")
    return document


def manifests(resources: list[Registered]) -> list[dict[str, Any]]:
    return [manifest(r) for r in resources if r.type.startswith("kubernetes:") and r.type != HELM_RELEASE]


def is_custom(document: Mapping[str, Any]) -> bool:
    return str(document.get("kind")) in CRD_FILES


def validate_builtin(document: Mapping[str, Any], version: str) -> None:
    """Raises kubernetes_validate.ValidationError (unknown fields included)."""
    kubernetes_validate.validate(dict(document), version, strict=True)


def _strict(schema: Any) -> Any:
    """The schema with additionalProperties: false wherever it lists properties and keeps no unknown
    fields (what `kubectl apply --validate=strict` enforces for custom resources)."""
    if isinstance(schema, dict):
        result = {k: _strict(v) for k, v in schema.items()}
        pattern = result.get("pattern")
        if isinstance(pattern, str) and pattern.startswith("^(?i)"):
            # Go's RE2 takes inline flags anywhere; Python's re only at the start.
            result["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            result["additionalProperties"] = False
        return result
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def require_schemas() -> pathlib.Path:
    if not OPERATOR_SCHEMAS.is_dir():
        missing(f"{OPERATOR_SCHEMAS} is missing: clone the project with ../shared beside it")
    return OPERATOR_SCHEMAS


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((require_schemas() / CRD_FILES[kind]).read_text(encoding="utf-8"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return _strict(version["schema"]["openAPIV3Schema"])


def validate_custom(document: Mapping[str, Any]) -> None:
    """Raises jsonschema.ValidationError. metadata is the API server's (ObjectMeta), checked apart."""
    kind = str(document["kind"])
    body = {k: v for k, v in document.items() if k != "metadata"}
    schema = {**crd_schema(kind), "properties": {**crd_schema(kind)["properties"], "metadata": {}}}
    # Structural schemas are OpenAPI v3 (a draft-4 subset).
    jsonschema.Draft4Validator(schema).validate(body)
    meta = document.get("metadata", {})
    assert set(meta) <= {"name", "namespace", "labels", "annotations"}, meta


def write_all(documents: list[dict[str, Any]], folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, document in enumerate(documents):
        name = f"{index:02d}-{document['kind'].lower()}-{document['metadata']['name']}.yaml"
        (folder / name).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return folder
