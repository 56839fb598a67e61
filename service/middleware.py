"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task and a stream per request).

Outermost first:
- `RequestContextMiddleware`: request id (X-Request-ID in and out), request metrics, in-flight gauge,
  turns any unexpected exception into the JSON 500 with an error log.
- `BodyLimitMiddleware`: 413 when Content-Length is over the limit, or when a body without one
  (chunked) grows past it while being read.
- `GuardMiddleware`: on protected routes API-key auth (401), rate limiting (429), and for inference
  routes readiness (503) and the bound on in-flight inferences (503 + Retry-After).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics
from service.errors import INTERNAL_ERROR, REQUEST_ID_KEY, ApiError, count_rejection
from service.ratelimit import RateLimiter
from service.state import ServiceState

logger = logging.getLogger("scamguard")

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


async def send_error(send: Send, error: ApiError, request_id: str) -> None:
    """Answer with the JSON error directly from middleware (counted like the handler does)."""
    count_rejection(error)
    body = error.body(request_id)
    await send(
        {"type": "http.response.start", "status": error.status, "headers": error.raw_headers(len(body))}
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, routes: Iterable[str]) -> None:
        self.app = app
        self.routes = frozenset(routes)
        # prometheus children cached per label set: .labels() on every request is measurable.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def _count(self, route: str, method: str, status: int, seconds: float) -> None:
        counter = self._counters.get((route, method, status))
        if counter is None:
            counter = self._counters[(route, method, status)] = metrics.HTTP_REQUESTS.labels(
                route, method, str(status)
            )
        histogram = self._histograms.get((route, method))
        if histogram is None:
            histogram = self._histograms[(route, method)] = metrics.HTTP_REQUEST_DURATION.labels(
                route, method
            )
        counter.inc()
        histogram.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        if incoming is not None and _VALID_REQUEST_ID.fullmatch(incoming):
            request_id = incoming.decode("ascii")
        else:
            request_id = uuid.uuid4().hex
        scope[REQUEST_ID_KEY] = request_id
        request_id_header = (b"x-request-id", request_id.encode("ascii"))
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), request_id_header]
            await send(message)

        metrics.HTTP_REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started:
                logger.exception("error after the response started", extra={"request_id": request_id})
                raise
            if isinstance(exc, ApiError):
                await send_error(send_with_id, exc, request_id)
            else:
                logger.error(
                    "unhandled error",
                    exc_info=exc,
                    extra={"request_id": request_id, "path": scope["path"], "method": scope["method"]},
                )
                await send_error(send_with_id, INTERNAL_ERROR, request_id)
        finally:
            metrics.HTTP_REQUESTS_IN_FLIGHT.dec()
            path = scope["path"]
            route = path if path in self.routes else "unmatched"
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            seconds = time.perf_counter() - started
            self._count(route, method, status, seconds)
            if status >= 500 and status != 503:
                logger.error(
                    "request failed",
                    extra={"request_id": request_id, "route": route, "method": method, "status": status},
                )
            elif logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "request",
                    extra={
                        "request_id": request_id,
                        "route": route,
                        "method": method,
                        "status": status,
                        "duration_seconds": round(seconds, 6),
                    },
                )


def _payload_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"request body is larger than {limit} bytes; send fewer or shorter texts per request",
        reject_reason="payload_too_large",
    )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        length = _header(scope, b"content-length")
        if length is not None:
            # The server already rejects a malformed Content-Length, so this is a plain integer.
            if int(length) > limit:
                await send_error(send, _payload_too_large(limit), scope.get(REQUEST_ID_KEY, ""))
                return
            await self.app(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the endpoint's body read: the error handler answers 413.
                    raise _payload_too_large(limit)
            return message

        await self.app(scope, counting_receive, send)


class ApiKeyAuth:
    """API keys from settings; a request presents one as `Authorization: Bearer <key>` or `X-API-Key`."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(key.encode() for key in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    @staticmethod
    def presented_key(scope: Scope) -> bytes | None:
        key = _header(scope, b"x-api-key")
        if key is not None:
            return key.strip()
        authorization = _header(scope, b"authorization")
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


class GuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        state: ServiceState,
        auth: ApiKeyAuth,
        limiter: RateLimiter | None,
        protected: Iterable[str],
        inference: Iterable[str],
        max_inflight: int,
    ) -> None:
        self.app = app
        self.state = state
        self.auth = auth
        self.limiter = limiter
        self.protected = frozenset(protected)
        self.inference = frozenset(inference)
        self.max_inflight = max_inflight
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.protected:
            await self.app(scope, receive, send)
            return
        request_id = scope.get(REQUEST_ID_KEY, "")
        key: bytes | None = None
        if self.auth.enabled:
            key = self.auth.presented_key(scope)
            try:
                self.auth.verify(key)
            except ApiError as error:
                await send_error(send, error, request_id)
                return
        if self.limiter is not None:
            client = scope.get("client")
            decision = await self.limiter.check(self.limiter.identity(key, client[0] if client else None))
            if not decision.allowed:
                error = ApiError(
                    429,
                    "rate_limited",
                    f"rate limit exceeded; retry after {decision.retry_after} s",
                    headers={"Retry-After": str(decision.retry_after)},
                    reject_reason="rate_limited",
                )
                await send_error(_with_headers(send, decision.headers), error, request_id)
                return
            if decision.headers:
                send = _with_headers(send, decision.headers)
        if scope["method"] != "POST" or scope["path"] not in self.inference:
            await self.app(scope, receive, send)
            return
        if self.state.classifier is None:
            await send_error(send, self.state_error(), request_id)
            return
        if self.inflight >= self.max_inflight:
            error = ApiError(
                503,
                "overloaded",
                f"server is at its limit of {self.max_inflight} concurrent inferences; retry shortly",
                headers={"Retry-After": "1"},
                reject_reason="overloaded",
            )
            await send_error(send, error, request_id)
            return
        self.inflight += 1
        metrics.INFERENCES_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
            metrics.INFERENCES_IN_FLIGHT.dec()

    def state_error(self) -> ApiError:
        try:
            self.state.require_model()
        except ApiError as error:
            return error
        raise AssertionError("state_error() called with a loaded model")


def _with_headers(send: Send, headers: tuple[tuple[bytes, bytes], ...]) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *headers]
        await send(message)

    return send_with_headers
