"""`create_app(settings)`: the ASGI application of the scam classifier API.

`ScamguardApp` runs the lifespan (the model loads at startup) and hands every HTTP request to the
request pipeline (`service.middleware`), which answers all routes but /metrics and the OpenAPI pages.
Those are FastAPI's (`service.rest`), built on the first request that needs them: the process starts
and answers probes and inferences without importing FastAPI or Starlette.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.classifier import MODEL_NAME
from service import metrics
from service.admission import DRAINING_HEADER
from service.api import DOCS_PATHS, METRICS_PATH, build_routes, rest_paths
from service.middleware import ApiKeyAuth, RequestPipeline
from service.ratelimit import RateLimiter
from service.schemas import build_request_models
from service.settings import Settings, get_settings
from service.state import ServiceState
from service.v2 import build_v2_routes

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

# Probes, metrics and docs stay open: orchestrators and scrapers carry no API key.
OPEN_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        METRICS_PATH,
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{MODEL_NAME}/ready",
        *DOCS_PATHS,
    }
)
INFERENCE_PATHS = frozenset({"/v1/classify", "/predict", f"/v2/models/{MODEL_NAME}/infer"})


def _version() -> str:
    try:
        return importlib.metadata.version("scamguard")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


@dataclass
class AppState:
    service: ServiceState
    limiter: RateLimiter | None


class ScamguardApp:
    """The ASGI application: lifespan, then the request pipeline for every HTTP request."""

    pipeline: RequestPipeline  # set by create_app; it passes what it does not answer to serve_rest

    def __init__(self, settings: Settings, state: AppState, build_rest: Callable[[], ASGIApp]) -> None:
        self.settings = settings
        self.state = state
        self._build_rest = build_rest
        self._rest: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.pipeline(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets (the server has them off): FastAPI refuses them
            await (await self.rest())(scope, receive, send)

    async def rest(self) -> ASGIApp:
        """The FastAPI application, built once, off the event loop (its imports take ~0.3 s)."""
        if self._rest is None:
            built = await asyncio.to_thread(self._build_rest_frozen)
            # (two first requests at once may both build it: harmless, and no lock to bind to a loop)
            if self._rest is None:
                self._rest = built
        return self._rest

    def _build_rest_frozen(self) -> ASGIApp:
        # Built on the first /metrics scrape: FastAPI, its routes and schemas are over 10,000
        # long-lived objects that every full GC pass would walk again (6.6 ms each on this VM, on
        # the event loop); out of the collector's reach like the model's (see `_startup`).
        built = self._build_rest()
        gc.collect()
        gc.freeze()
        return built

    async def serve_rest(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (await self.rest())(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document (what /openapi.json serves)."""
        if self._rest is None:
            self._rest = self._build_rest()
        return self._rest.openapi()  # type: ignore[attr-defined]

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Reached after the server stopped taking requests (or the test client closed).
                self.state.service.start_draining()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _startup(self) -> None:
        metrics.INFERENCE_CONCURRENCY_LIMIT.set(self.settings.max_inflight)
        metrics.MODEL_READY.set(0)
        await asyncio.to_thread(self.state.service.load_model)
        # The model's term table is hundreds of thousands of long-lived objects: move them out of the
        # collector's reach so full GC passes do not add milliseconds to the latency tail.
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None, proxy_hops: int = 0) -> ScamguardApp:
    """The application; `proxy_hops` counts proxies of the service's own in front of it (the
    admission proxy), which append to X-Forwarded-For beyond `SCAMGUARD_FORWARDED_HOPS`."""
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
    fast = {**build_routes(state, models), **build_v2_routes(state, models, version)}

    def build_rest() -> ASGIApp:
        from service.rest import build_rest_app

        return build_rest_app(
            version=version,
            docs_enabled=settings.docs_enabled,
            fast_routes=fast,
            open_paths=OPEN_PATHS,
            api_keys_enabled=auth.enabled,
        )

    app = ScamguardApp(settings, AppState(state, limiter), build_rest)
    routes = rest_paths(settings.docs_enabled) | {path for _, path in fast}
    app.pipeline = RequestPipeline(
        app.serve_rest,
        state=state,
        routes=routes,
        protected=routes - OPEN_PATHS,
        inference=INFERENCE_PATHS,
        fast_routes=fast,
        auth=auth,
        limiter=limiter,
        max_body_bytes=settings.max_body_bytes,
        max_inflight=settings.max_inflight,
        forwarded_hops=settings.forwarded_hops + proxy_hops,
        body_timeout_seconds=settings.body_timeout_seconds,
        # Behind the admission proxy a Connection header reaches only the proxy, which closes its
        # own connection to us: the marker makes it close the client's instead.
        draining_headers=((DRAINING_HEADER.encode(), b"1"),) if proxy_hops else ((b"connection", b"close"),),
    )
    return app
