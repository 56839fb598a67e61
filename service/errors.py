"""One error type and one JSON error shape for every failure the API answers.

Shape (also valid as an Open Inference Protocol error, whose only required field is a string
`error`): `{"error": "<what went wrong and what to do>", "code": "<machine code>",
"status": <http status>, "request_id": "<id>", "details": [...]}` (`details` only for validation
errors: one entry per problem with `loc`, `msg`, `type`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service import metrics
from service.domain import DomainError, ModelNotReady

REQUEST_ID_KEY = "scamguard.request_id"


class ApiError(Exception):
    """An error answered to the client: status code, stable machine code, human message.

    `reject_reason` (a `scamguard_requests_rejected_total` reason) is counted once when answered.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: Sequence[Mapping[str, Any]] | None = None,
        reject_reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = list(details) if details is not None else None
        self.reject_reason = reject_reason

    def body(self, request_id: str) -> bytes:
        payload: dict[str, Any] = {
            "error": self.message,
            "code": self.code,
            "status": self.status,
            "request_id": request_id,
        }
        if self.details is not None:
            payload["details"] = self.details
        return json.dumps(payload, separators=(",", ":"), default=str).encode()

    def raw_headers(self, body_length: int) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(body_length).encode()),
        ]
        headers.extend(
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()
        )
        return headers

    def to_response(self, request_id: str) -> Response:
        count_rejection(self)
        return Response(
            self.body(request_id),
            status_code=self.status,
            headers=self.headers,
            media_type="application/json",
        )


def count_rejection(error: ApiError) -> None:
    if error.reject_reason is not None:
        metrics.REJECTED[error.reject_reason].inc()


def request_id_of(scope: Mapping[str, Any]) -> str:
    return scope.get(REQUEST_ID_KEY, "")


_MESSAGES = {"string_pattern_mismatch": "must not be blank (needs a non-whitespace character)"}
# The first problems say what to fix; thousands of them only make the answer large.
MAX_DETAILS = 20


def validation_error(
    exc: ValidationError | RequestValidationError, prefix: tuple[str | int, ...] = ()
) -> ApiError:
    """422 from pydantic errors, keeping only what helps the client (never echoing the input text)."""
    errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else exc.errors()
    details = [
        {
            "loc": [*prefix, *err.get("loc", ())],
            "msg": _MESSAGES.get(err["type"], err["msg"]),
            "type": err["type"],
        }
        for err in errors[:MAX_DETAILS]
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return ApiError(
        422,
        "invalid_request",
        f"invalid request: {where}: {first['msg']}",
        details=details,
        reject_reason="invalid_request",
    )


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
_HTTP_MESSAGES = {
    404: "no such endpoint; see /docs for the API",
    405: "method not allowed on this endpoint; see the Allow header",
}


def from_domain(exc: DomainError) -> ApiError:
    """The one mapping from domain errors to the API's error shape."""
    if isinstance(exc, ModelNotReady):
        return ApiError(
            503,
            "not_ready",
            str(exc),
            headers={"Retry-After": str(exc.retry_after)},
            reject_reason="not_ready",
        )
    return ApiError(500, "internal_error", "internal server error; retry later or report the request id")


async def _domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return from_domain(exc).to_response(request_id_of(request.scope))


async def _api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.to_response(request_id_of(request.scope))


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return validation_error(exc).to_response(request_id_of(request.scope))


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
    error = ApiError(
        exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), message, headers=exc.headers
    )
    return error.to_response(request_id_of(request.scope))


INTERNAL_ERROR = ApiError(
    500, "internal_error", "internal server error; retry later or report the request id"
)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception FastAPI/Starlette raise to the one shape (unexpected ones: middleware)."""
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(DomainError, _domain_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)


class ErrorBody(BaseModel):
    """The JSON error shape, for the OpenAPI document."""

    error: str
    code: str
    status: int
    request_id: str
    details: list[dict[str, Any]] | None = None
