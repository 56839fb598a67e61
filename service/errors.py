"""One error type and one JSON error shape for every failure the API answers.

Shape (also valid as an Open Inference Protocol error, whose only required field is a string
`error`): `{"error": "<what went wrong and what to do>", "code": "<machine code>",
"status": <http status>, "request_id": "<id>", "details": [...]}` (`details` only for validation
errors: one entry per problem with `loc`, `msg`, `type`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

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


def payload_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"request body is larger than {limit} bytes; send fewer or shorter texts per request",
        reject_reason="payload_too_large",
    )


def request_timeout(seconds: float) -> ApiError:
    return ApiError(
        408,
        "request_timeout",
        f"the request body did not arrive within {seconds:g} s; send it whole",
        headers={"Connection": "close"},
        reject_reason="request_timeout",
    )


def count_rejection(error: ApiError) -> None:
    if error.reject_reason is not None:
        metrics.REJECTED[error.reject_reason].inc()


def request_id_of(scope: Mapping[str, Any]) -> str:
    return scope.get(REQUEST_ID_KEY, "")


_MESSAGES = {"string_pattern_mismatch": "must not be blank (needs a non-whitespace character)"}
# The first problems say what to fix; thousands of them only make the answer large.
MAX_DETAILS = 20


class ValidationProblems(Protocol):
    """A validation failure that lists its problems (pydantic's, or FastAPI's wrapper of them)."""

    def errors(self) -> Sequence[Any]: ...


def validation_error(
    exc: ValidationError | ValidationProblems, prefix: tuple[str | int, ...] = ()
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


HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
HTTP_MESSAGES = {
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


INTERNAL_ERROR = ApiError(
    500, "internal_error", "internal server error; retry later or report the request id"
)


class ErrorBody(BaseModel):
    """The JSON error shape, for the OpenAPI document."""

    error: str
    code: str
    status: int
    request_id: str
    details: list[dict[str, Any]] | None = None
