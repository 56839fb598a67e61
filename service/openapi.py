"""The OpenAPI entries of the routes the request pipeline answers, generated from the types that
validate their bodies and shape their answers (pydantic's JSON schema), so the document and the
implementation cannot drift: each route is declared once, as a `service.middleware.FastRoute`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from service.errors import ErrorBody

REF_TEMPLATE = "#/components/schemas/{model}"
JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    """How the document describes one route: its body and answer as types, its errors by status."""

    operation_id: str
    summary: str
    tags: tuple[str, ...]
    response: Any  # the type of the 200 answer (a pydantic model, a union of them, bool...)
    request: Mapping[str, Any] = field(default_factory=dict)  # media type -> body type
    errors: Mapping[int, str] = field(default_factory=dict)  # status -> description (an ErrorBody)


class _Schemas:
    """JSON schemas of types; every model they name becomes a component, referred to by $ref."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, type_: Any, mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        if isinstance(type_, type) and issubclass(type_, BaseModel):
            refs, defs = models_json_schema([(type_, mode)], ref_template=REF_TEMPLATE)
            self.components.update(defs.get("$defs", {}))
            return dict(refs[(type_, mode)])
        schema = TypeAdapter(type_).json_schema(ref_template=REF_TEMPLATE, mode=mode)
        self.components.update(schema.pop("$defs", {}))
        return schema


def add_operations(document: dict[str, Any], routes: Iterable[tuple[str, str, Operation]]) -> dict[str, Any]:
    """`document` (FastAPI's, for the routes it serves) with these routes' operations added."""
    schemas = _Schemas()
    paths = document.setdefault("paths", {})
    for method, path, op in routes:
        responses: dict[str, Any] = {
            "200": {
                "description": "Successful Response",
                "content": {JSON: {"schema": schemas.of(op.response)}},
            }
        }
        for status, description in sorted(op.errors.items()):
            responses[str(status)] = {
                "description": description,
                "content": {JSON: {"schema": schemas.of(ErrorBody)}},  # the one error shape
            }
        operation: dict[str, Any] = {
            "tags": list(op.tags),
            "summary": op.summary,
            "operationId": op.operation_id,
            "responses": responses,
        }
        if op.request:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    media: {"schema": schemas.of(t, "validation")} for media, t in op.request.items()
                },
            }
        paths.setdefault(path, {})[method.lower()] = operation
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.components.items():
        components.setdefault(name, schema)
    return document
