"""`create_app(settings)`: the FastAPI application of the scam classifier API."""

from __future__ import annotations

import gc
import importlib.metadata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from runtime.classifier import MODEL_NAME
from service import metrics
from service.api import build_router
from service.errors import INTERNAL_ERROR, REQUEST_ID_KEY, install_error_handlers
from service.middleware import ApiKeyAuth, RequestPipeline
from service.openapi import add_operations
from service.ratelimit import RateLimiter
from service.schemas import build_request_models
from service.settings import Settings, get_settings
from service.state import ServiceState
from service.v2 import build_v2_router

# Probes, metrics and docs stay open: orchestrators and scrapers carry no API key.
OPEN_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{MODEL_NAME}/ready",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
INFERENCE_PATHS = frozenset({"/v1/classify", "/predict", f"/v2/models/{MODEL_NAME}/infer"})


def _version() -> str:
    try:
        return importlib.metadata.version("scamguard")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def _paths(routes: list[BaseRoute]) -> set[str]:
    return {route.path for route in routes if isinstance(route, Route)}


class ScamguardApp(FastAPI):
    """FastAPI with the request pipeline in front of its whole stack (see `service.middleware`).

    The pipeline sits outside FastAPI's own middleware (server-error, exception handling, routing), so
    the hot routes it answers pay for none of them; every other request continues into that stack.
    """

    pipeline: RequestPipeline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.pipeline(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """FastAPI's last-resort 500 in the one JSON shape (the pipeline logs the error)."""
    return INTERNAL_ERROR.to_response(request.scope.get(REQUEST_ID_KEY, ""))


def create_app(settings: Settings | None = None) -> ScamguardApp:
    settings = settings or get_settings()
    state = ServiceState(settings)
    models = build_request_models(settings.max_text_chars, settings.max_batch_size)
    auth = ApiKeyAuth(settings.load_api_keys())
    limiter = (
        RateLimiter(settings.rate_limit, settings.rate_limit_storage_uri, settings.rate_limit_strategy)
        if settings.rate_limit
        else None
    )
    version = _version()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        metrics.INFERENCE_CONCURRENCY_LIMIT.set(settings.max_inflight)
        metrics.MODEL_READY.set(0)
        await run_in_threadpool(state.load_model)
        # The model's term table is hundreds of thousands of long-lived objects: move them out of the
        # collector's reach so full GC passes do not add milliseconds to the latency tail.
        gc.collect()
        gc.freeze()
        yield
        # Reached after the server stopped taking requests (or the test client closed).
        state.start_draining()

    app = ScamguardApp(
        title="scamguard",
        version=version,
        summary="Classifies an email as scam/phishing or legitimate.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.service = state
    app.state.limiter = limiter
    install_error_handlers(app)
    app.add_exception_handler(Exception, _internal_error)
    v1_router, v1_fast = build_router(state, models)
    v2_router, v2_fast = build_v2_router(state, models, version)
    app.include_router(v1_router)
    app.include_router(v2_router)
    fast = {**v1_fast, **v2_fast}

    routes = _paths([*app.routes, *v1_router.routes, *v2_router.routes]) | {path for _, path in fast}
    app.pipeline = RequestPipeline(
        app._fastapi,
        state=state,
        routes=routes,
        protected=routes - OPEN_PATHS,
        inference=INFERENCE_PATHS,
        fast_routes=fast,
        auth=auth,
        limiter=limiter,
        max_body_bytes=settings.max_body_bytes,
        max_inflight=settings.max_inflight,
        forwarded_hops=settings.forwarded_hops,
        body_timeout_seconds=settings.body_timeout_seconds,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=(
                "Errors share one JSON shape: `{error, code, status, request_id, details?}`. "
                "With API keys configured, send `Authorization: Bearer <key>` or `X-API-Key: <key>`."
            ),
            routes=app.routes,
        )
        # The routes the pipeline answers, from the types that validate them (service.openapi).
        add_operations(schema, [(method, path, route.doc) for (method, path), route in sorted(fast.items())])
        components = schema.setdefault("components", {})
        if auth.enabled:
            components["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            for path, operations in schema.get("paths", {}).items():
                if path not in OPEN_PATHS:
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}, {"apiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
