"""The request pipeline: one pure ASGI layer that answers every route but /metrics and the docs.

Per HTTP request, in order:
- request id (X-Request-ID in and out), request metrics and the in-flight gauge; any unexpected
  exception becomes the JSON 500 with an error log;
- 413 when Content-Length is over the limit, or when a body without one (chunked) grows past it;
- on protected routes API-key auth (401) and rate limiting (429); for inference routes readiness (503)
  and the bound on in-flight inferences (503 + Retry-After);
- the routes (`FastRoute`: inference, probes, metadata) are answered right here, with the body read
  straight from the ASGI channel; an unknown path is a 404; /metrics and the OpenAPI pages go on to
  the application behind (FastAPI, `service.rest`, built on first use).

One layer instead of three, and no FastAPI routing, Request object or response class on the hot
routes: together they cost more per request than the HTTP server itself (scripts/bench_service.py
--stub-model measures the request path alone). Each hot route is declared once, here; the OpenAPI
document describes it from the same types (`service.openapi`), and FastAPI never sees it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service import metrics
from service.domain import DomainError
from service.errors import (
    HTTP_MESSAGES,
    INTERNAL_ERROR,
    REQUEST_ID_KEY,
    ApiError,
    count_rejection,
    from_domain,
    payload_too_large,
    request_timeout,
)
from service.openapi import Operation
from service.ratelimit import AuthFailureThrottle, RateLimiter, client_host
from service.state import ServiceState

if TYPE_CHECKING:  # types only: Starlette itself loads with FastAPI, on first use (service.app)
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("scamguard")

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
# Status recorded when the client went away before its body was read (nothing is answered).
CLIENT_CLOSED_REQUEST = 499

# (content type or None, body, request id) -> JSON response body. Raises ApiError.
FastHandler = Callable[[str | None, bytes, str], Awaitable[bytes]]


@dataclass(frozen=True)
class FastRoute:
    """A route answered by the pipeline itself, declared once: its handler, and how the OpenAPI
    document describes it (generated from the same types, see `service.openapi`)."""

    handler: FastHandler
    doc: Operation
    reads_body: bool = True


class ClientDisconnected(Exception):
    """The client closed the connection before sending its whole body."""


async def send_error(
    send: Send, error: ApiError, request_id: str, extra_headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with the JSON error directly from the pipeline (counted like the handler does)."""
    count_rejection(error)
    body = error.body(request_id)
    headers = error.raw_headers(len(body))
    headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _method_not_allowed(allowed: Iterable[str]) -> ApiError:
    allow = ", ".join(allowed)
    return ApiError(
        405,
        "method_not_allowed",
        "method not allowed on this endpoint; see the Allow header",
        headers={"Allow": allow},
    )


class ApiKeyAuth:
    """API keys from settings; a request presents one as `Authorization: Bearer <key>` or `X-API-Key`."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(key.encode() for key in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    @staticmethod
    def presented_key(x_api_key: bytes | None, authorization: bytes | None) -> bytes | None:
        if x_api_key is not None:
            return x_api_key.strip()
        if authorization is not None:
            scheme, _, credentials = authorization.strip().partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return credentials.strip()
        return None

    def verify(self, key: bytes | None) -> None:
        if key is None:
            raise ApiError(
                401,
                "unauthorized",
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="scamguard"'},
                reject_reason="unauthorized",
            )
        # Compare against every key, without stopping at a match, so timing reveals nothing.
        matched = False
        for candidate in self._keys:
            matched |= hmac.compare_digest(key, candidate)
        if not matched:
            raise ApiError(
                401,
                "unauthorized",
                "invalid API key",
                headers={"WWW-Authenticate": 'Bearer realm="scamguard", error="invalid_token"'},
                reject_reason="unauthorized",
            )


# Every live pipeline (one per app; tests build several): the in-flight gauges sum their counters.
_PIPELINES: weakref.WeakSet[RequestPipeline] = weakref.WeakSet()


def _requests_in_flight() -> float:
    return sum(pipeline.requests_in_flight for pipeline in _PIPELINES)


def _inferences_in_flight() -> float:
    return sum(pipeline.inflight for pipeline in _PIPELINES)


class RequestPipeline:
    """The service's only middleware; `app` serves the known paths that are not FastRoutes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        state: ServiceState,
        routes: Iterable[str],
        protected: Iterable[str],
        inference: Iterable[str],
        fast_routes: Mapping[tuple[str, str], FastRoute],
        auth: ApiKeyAuth,
        limiter: RateLimiter | None,
        max_body_bytes: int,
        max_inflight: int,
        forwarded_hops: int = 0,
        body_timeout_seconds: float = 15.0,
        draining_headers: Iterable[tuple[bytes, bytes]] = ((b"connection", b"close"),),
    ) -> None:
        self.app = app
        self.forwarded_hops = forwarded_hops
        self.body_timeout_seconds = body_timeout_seconds
        # What answers carry while draining; a proxy in front turns its own marker into the close.
        self.draining_headers = tuple(draining_headers)
        self.auth_failures = AuthFailureThrottle()
        self.state = state
        self.routes = frozenset(routes)
        self.protected = frozenset(protected)
        self.inference = frozenset(inference)
        # Admission (readiness, the in-flight bound) is applied where FastRoutes are dispatched only.
        unrouted = self.inference - {path for method, path in fast_routes if method == "POST"}
        if unrouted:
            raise ValueError(f"inference paths without a POST FastRoute: {sorted(unrouted)}")
        self.fast_routes = dict(fast_routes)
        # The methods each pipeline-answered path takes: any other is a 405 naming them (HEAD is
        # answered as GET without the body, as every HTTP server does for GET routes).
        self._fast_methods: dict[str, list[str]] = {}
        for method, path in sorted(self.fast_routes):
            self._fast_methods.setdefault(path, []).append(method)
        self.auth = auth
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.max_inflight = max_inflight
        self.inflight = 0  # admitted inference requests
        self.requests_in_flight = 0
        # prometheus children cached per label set: .labels() on every request is measurable.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}
        # The in-flight gauges read plain counters at scrape time: no lock taken twice per request.
        _PIPELINES.add(self)
        metrics.HTTP_REQUESTS_IN_FLIGHT.set_function(_requests_in_flight)
        metrics.INFERENCES_IN_FLIGHT.set_function(_inferences_in_flight)

    def _count(self, path: str, method: str, status: int, seconds: float) -> None:
        counter = self._counters.get((path, method, status))
        histogram = self._histograms.get((path, method))
        if counter is None or histogram is None:
            labels = self._labels(path, method)
            route, label_method = labels["route"], labels["method"]
            counter = metrics.HTTP_REQUESTS.labels(route, label_method, str(status))
            histogram = metrics.HTTP_REQUEST_DURATION.labels(route, label_method)
            # Cache by raw path only for known routes: unknown paths are unbounded.
            if route != "unmatched" and label_method != "OTHER":
                self._counters[(path, method, status)] = counter
                self._histograms[(path, method)] = histogram
        counter.inc()
        histogram.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # One pass over the headers for everything the pipeline needs (names arrive lowercased);
        # backwards, so that of a repeated header the first one wins, as in starlette's Headers.get.
        incoming_id = content_length = content_type = x_api_key = authorization = None
        for name, value in reversed(scope["headers"]):
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
            elif name == b"x-request-id":
                incoming_id = value
            elif name == b"x-api-key":
                x_api_key = value
            elif name == b"authorization":
                authorization = value
        if incoming_id is not None and _VALID_REQUEST_ID.fullmatch(incoming_id):
            request_id_bytes = incoming_id
        else:
            request_id_bytes = os.urandom(16).hex().encode()
        request_id = request_id_bytes.decode("ascii")
        scope[REQUEST_ID_KEY] = request_id
        path: str = scope["path"]
        method: str = scope["method"]
        # Response headers this pipeline adds to whatever answers: the request id, rate-limit state.
        extra_headers: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id_bytes)]
        if self.state.draining:
            # Tell keep-alive clients (and load balancers) to reconnect elsewhere instead of
            # racing the close of an idle connection; the server closes it after this answer.
            extra_headers.extend(self.draining_headers)
        status = 500
        response_started = response_complete = False

        async def send_tracked(message: Message) -> None:
            nonlocal status, response_started, response_complete
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            elif not message.get("more_body", False):
                response_complete = True
            await send(message)

        inference_admitted = False
        self.requests_in_flight += 1
        try:
            limit = self.max_body_bytes
            if content_length is not None and int(content_length) > limit:
                # The server already rejects a malformed Content-Length, so it is a plain integer.
                raise payload_too_large(limit)
            if path in self.protected:
                key: bytes | None = None
                # The client's address, once: the key-guess throttle and the rate limit key on it.
                host = client_host(scope, self.forwarded_hops)
                if self.auth.enabled:
                    key = self.auth.presented_key(x_api_key, authorization)
                    if wait := self.auth_failures.retry_after(host):
                        raise ApiError(
                            429,
                            "rate_limited",
                            f"too many failed API-key attempts from this address; retry after {wait} s",
                            headers={"Retry-After": str(wait)},
                            reject_reason="rate_limited",
                        )
                    try:
                        self.auth.verify(key)
                    except ApiError:
                        self.auth_failures.failed(host)
                        raise
                if self.limiter is not None:
                    await self._rate_limit(host, key, extra_headers)
            inference = method == "POST" and path in self.inference
            route = self.fast_routes.get((method, path))
            head_only = False
            if route is None and path in self._fast_methods:
                allowed = self._fast_methods[path]
                if method == "HEAD" and "GET" in allowed:
                    route, head_only = self.fast_routes[("GET", path)], True
                else:
                    raise _method_not_allowed([*allowed, "HEAD"] if "GET" in allowed else allowed)
            if route is not None:
                body = b""
                if route.reads_body:
                    # The whole body first, within its deadline, and only then a slot: a client that
                    # stalls mid-upload must not hold one of the inference slots.
                    body = await self._read_body_in_time(
                        receive, limit, None if content_length is None else int(content_length)
                    )
                if inference:
                    self._admit_inference()
                    inference_admitted = True
                    self.inflight += 1
                answer = await route.handler(
                    None if content_type is None else content_type.decode("latin-1"), body, request_id
                )
                status = 200
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(answer)).encode()),
                            *extra_headers,
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"" if head_only else answer})
                return
            if path not in self.routes:
                # Answered here: a scanner's paths never wake the application behind the pipeline.
                raise ApiError(404, "not_found", HTTP_MESSAGES[404])
            if content_length is None and scope["method"] not in ("GET", "HEAD"):
                receive = _limited_receive(receive, limit)
            await self.app(scope, receive, send_tracked)
        except ClientDisconnected:
            status = CLIENT_CLOSED_REQUEST
        except asyncio.CancelledError:
            # The server cancels a request's task when its client's connection drops: the client
            # left (not a server error, which would feed the 5xx alert); the cancellation goes on.
            status = CLIENT_CLOSED_REQUEST
            raise
        except Exception as exc:
            if response_started:
                if response_complete:
                    # FastAPI's outermost handler already answered the JSON 500; it re-raises for logging.
                    logger.error(
                        "unhandled error",
                        exc_info=exc,
                        extra={"request_id": request_id, "path": path, "method": method},
                    )
                    return
                logger.exception("error after the response started", extra={"request_id": request_id})
                raise
            if isinstance(exc, DomainError):
                exc = from_domain(exc)
            if isinstance(exc, ApiError):
                status = exc.status
                await send_error(send, exc, request_id, extra_headers)
            else:
                logger.error(
                    "unhandled error",
                    exc_info=exc,
                    extra={"request_id": request_id, "path": path, "method": method},
                )
                status = 500
                await send_error(send, INTERNAL_ERROR, request_id, extra_headers)
        finally:
            if inference_admitted:
                self.inflight -= 1
            self.requests_in_flight -= 1
            seconds = time.perf_counter() - started
            self._count(path, method, status, seconds)
            if status >= 500 and status != 503:
                logger.error(
                    "request failed",
                    extra={"request_id": request_id, **self._labels(path, method), "status": status},
                )
            elif logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "request",
                    extra={
                        "request_id": request_id,
                        **self._labels(path, method),
                        "status": status,
                        "duration_seconds": round(seconds, 6),
                    },
                )

    def _labels(self, path: str, method: str) -> dict[str, str]:
        """route and method as the metrics label them (bounded values; logs use the same)."""
        return {
            "route": path if path in self.routes else "unmatched",
            "method": method if method in _KNOWN_METHODS else "OTHER",
        }

    async def _rate_limit(
        self, host: str | None, key: bytes | None, extra_headers: list[tuple[bytes, bytes]]
    ) -> None:
        assert self.limiter is not None
        decision = await self.limiter.check(self.limiter.identity(key, host))
        extra_headers.extend(decision.headers)
        if not decision.allowed:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit exceeded; retry after {decision.retry_after} s",
                headers={"Retry-After": str(decision.retry_after)},
                reject_reason="rate_limited",
            )

    async def _read_body_in_time(self, receive: Receive, limit: int, expected: int | None) -> bytes:
        try:
            async with asyncio.timeout(self.body_timeout_seconds):
                return await _read_body(receive, limit, expected)
        except TimeoutError:
            raise request_timeout(self.body_timeout_seconds) from None

    def _admit_inference(self) -> None:
        """503 without a model, or when the bound on in-flight inferences is reached."""
        if self.state.classifier is None:
            self.state.require_model()
        if self.inflight >= self.max_inflight:
            raise ApiError(
                503,
                "overloaded",
                f"server is at its limit of {self.max_inflight} concurrent inferences; retry shortly",
                headers={"Retry-After": "1"},
                reject_reason="overloaded",
            )


async def _read_body(receive: Receive, limit: int, expected: int | None) -> bytes:
    """The whole request body: `expected` (its Content-Length, already checked against `limit`)
    bytes, or with no Content-Length (chunked) every chunk up to the last, 413 as soon as they
    pass `limit`.

    With a Content-Length the body is complete once that many bytes arrived, and reading stops
    there: granian sends the last chunk with more_body=True and the end as a second, empty message,
    and waiting for it costs a hand-off between its thread and the event loop on every request.
    (The server never delivers more bytes than Content-Length says.)
    """
    if expected == 0:
        return b""
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnected
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if expected is None and received > limit:
            raise payload_too_large(limit)
        chunks.append(chunk)
        if received == expected or not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _limited_receive(receive: Receive, limit: int) -> Receive:
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                # Raised inside the endpoint's body read: the error handler answers 413.
                raise payload_too_large(limit)
        return message

    return counting_receive
