"""What FastAPI serves: /metrics, the OpenAPI document and its pages.

Every other route is answered by the request pipeline (`service.middleware`), so this application is
built on first use (`service.app.ScamguardApp.rest`): importing FastAPI and Starlette is a third of
the process's start, and no probe or inference needs them. `service.api.rest_paths` names its
routes before it exists, so that the pipeline can authorise and label them (a test keeps the two equal).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service.api import METRICS_PATH
from service.domain import DomainError
from service.errors import (
    HTTP_CODES,
    HTTP_MESSAGES,
    INTERNAL_ERROR,
    ApiError,
    count_rejection,
    from_domain,
    request_id_of,
    validation_error,
)
from service.middleware import FastRoute
from service.openapi import add_operations

DESCRIPTION = (
    "Errors share one JSON shape: `{error, code, status, request_id, details?}`. "
    "With API keys configured, send `Authorization: Bearer <key>` or `X-API-Key: <key>`."
)


def error_response(error: ApiError, request_id: str) -> Response:
    count_rejection(error)
    return Response(
        error.body(request_id), status_code=error.status, headers=error.headers, media_type="application/json"
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc, request_id_of(request.scope))


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error_response(from_domain(exc), request_id_of(request.scope))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(validation_error(exc), request_id_of(request.scope))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(
        ApiError(exc.status_code, code, message, headers=exc.headers), request_id_of(request.scope)
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    """The last-resort 500 in the one JSON shape (the pipeline logs the error)."""
    return error_response(INTERNAL_ERROR, request_id_of(request.scope))


def build_rest_app(
    *,
    version: str,
    docs_enabled: bool,
    fast_routes: dict[tuple[str, str], FastRoute],
    open_paths: Iterable[str],
    api_keys_enabled: bool,
) -> FastAPI:
    """FastAPI with /metrics and (when enabled) the OpenAPI document, which also describes every
    route the pipeline answers, from the types that validate them (`service.openapi`)."""
    app = FastAPI(
        title="scamguard",
        version=version,
        summary="Classifies an email as scam/phishing or legitimate.",
        docs_url="/docs" if docs_enabled else None,
        redoc_url="/redoc" if docs_enabled else None,
        openapi_url="/openapi.json" if docs_enabled else None,
    )
    # Every exception FastAPI or Starlette raise, in the one shape (unexpected ones: the pipeline logs).
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)

    @app.get(
        METRICS_PATH,
        tags=["probes"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"}
        },
    )
    async def prometheus_metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        # Off the event loop: a collection reads the admission proxy's stats socket (service.admission).
        body = await asyncio.to_thread(encoder, REGISTRY)
        return Response(body, headers={"Content-Type": content_type})

    open_paths = frozenset(open_paths)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=DESCRIPTION,
            routes=app.routes,
        )
        add_operations(
            schema, [(method, path, route.doc) for (method, path), route in sorted(fast_routes.items())]
        )
        if api_keys_enabled:
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            for path, operations in schema.get("paths", {}).items():
                if path not in open_paths:
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}, {"apiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
