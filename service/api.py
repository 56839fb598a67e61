"""The v1 API (`/v1/classify`, `/predict`) and the probes (`/healthz`, `/readyz`).

Each endpoint is a handler over (content type, body bytes, request id) that returns JSON bytes
(serialised by pydantic-core): the request pipeline (`service.middleware`) calls it without
FastAPI's router, Request or response classes, which cost more than the model. They parse and
validate the body in one pass (pydantic-core's JSON parser). Each is declared once, as a FastRoute
whose `doc` describes it with the same types (service.openapi builds the OpenAPI entries from them);
/metrics and the OpenAPI pages are FastAPI's (`service.rest`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, TypeAdapter, ValidationError

from service.errors import ApiError, validation_error
from service.middleware import FastHandler, FastRoute
from service.openapi import Operation
from service.schemas import (
    ClassifyBatchResult,
    ClassifyResult,
    Health,
    Readiness,
    RequestModels,
)
from service.state import NOT_READY_RETRY_AFTER_SECONDS, Prediction, ServiceState

JSON = "application/json"
M = TypeVar("M", bound=BaseModel)


ERROR_DESCRIPTIONS = {
    400: "Body is not valid UTF-8.",
    401: "Missing or invalid API key (only when API keys are configured).",
    408: "The body did not arrive within SCAMGUARD_BODY_TIMEOUT_SECONDS.",
    413: "Body larger than SCAMGUARD_MAX_BODY_BYTES.",
    415: "Wrong Content-Type.",
    422: "Malformed JSON, or a value outside the limits (see `details`).",
    429: "Rate limit exceeded; see Retry-After and the RateLimit-* headers.",
    503: "Model not loaded (see /readyz), or too many inferences in flight (Retry-After).",
}
NOT_READY_DESCRIPTION = "Not ready: no model (reason) or draining."

# The routes FastAPI serves (service.rest, built on first use); the pipeline answers all others.
METRICS_PATH = "/metrics"
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


def rest_paths(docs_enabled: bool) -> frozenset[str]:
    """The paths of the application `service.rest.build_rest_app` makes (a test keeps them equal)."""
    return frozenset({METRICS_PATH, *(DOCS_PATHS if docs_enabled else ())})


INFERENCE_ERRORS = {code: ERROR_DESCRIPTIONS[code] for code in (400, 401, 408, 413, 415, 422, 429, 503)}


def inference_operation(
    operation_id: str, summary: str, tags: tuple[str, ...], response: Any, request: dict[str, Any]
) -> Operation:
    return Operation(
        operation_id=operation_id,
        summary=summary,
        tags=tags,
        response=response,
        request=request,
        errors=INFERENCE_ERRORS,
    )


def check_content_type(raw: str | None, expected: str) -> None:
    """415 unless the body is `expected` (a missing Content-Type is accepted as `expected`)."""
    if raw is None or raw == expected:
        return
    media_type, _, params = raw.partition(";")
    media_type = media_type.strip().lower()
    ok = media_type == expected or (expected == JSON and media_type.endswith("+json"))
    charset = (
        params.strip().lower().removeprefix("charset=").strip('"') if "charset" in params.lower() else ""
    )
    if not ok or charset not in ("", "utf-8", "utf8"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be {expected} (UTF-8), got {raw[:100]!r}",
            reject_reason="unsupported_media_type",
        )


def decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "invalid_encoding",
            f"request body is not valid UTF-8 (byte {exc.start}); encode the text as UTF-8",
            reject_reason="invalid_request",
        ) from None


def parse_json(text: str) -> Any:
    try:
        return pydantic_core.from_json(text)
    except ValueError as exc:
        raise ApiError(
            422,
            "invalid_request",
            f"malformed JSON: {exc}",
            details=[{"loc": ["body"], "msg": f"malformed JSON: {exc}", "type": "json_invalid"}],
            reject_reason="invalid_request",
        ) from None


# No request object of this API has more than a handful of fields: a body object with more is
# refused before validation, which would otherwise build one error per unknown key (180,000 keys
# in a 2 MB body made a 16 MB answer and held the event loop for a second).
MAX_OBJECT_FIELDS = 32


def validate(model: type[M], data: Any) -> M:
    if isinstance(data, dict) and len(data) > MAX_OBJECT_FIELDS:
        raise _invalid(
            f"the body object has {len(data)} fields; this endpoint takes at most {MAX_OBJECT_FIELDS} "
            "(see /docs for its schema)"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, prefix=("body",)) from None


def _classification(p: Prediction, model: dict[str, str] | None, rid: str) -> dict[str, Any]:
    return {"label": p.label, "is_scam": p.is_scam, "score": p.score, "model": model, "request_id": rid}


def classify_handler(state: ServiceState, models: RequestModels) -> FastHandler:
    single_model = models.classify_single
    batch_model = models.classify_batch

    async def classify(content_type: str | None, body: bytes, rid: str) -> bytes:
        check_content_type(content_type, JSON)
        data = parse_json(decode_text(body))
        model = state.model_ref
        if isinstance(data, dict) and "texts" in data:
            texts: list[str] = validate(batch_model, data).texts  # type: ignore[attr-defined]
            predictions = await state.predict(texts, "classify")
            results = [_classification(p, model, rid) for p in predictions]
            return pydantic_core.to_json({"results": results, "model": model, "request_id": rid})
        text: str = validate(single_model, data).text  # type: ignore[attr-defined]
        (p,) = await state.predict((text,), "classify")
        return pydantic_core.to_json(_classification(p, model, rid))

    return classify


def predict_handler(state: ServiceState, models: RequestModels) -> FastHandler:
    max_chars = state.settings.max_text_chars
    plain_text = TypeAdapter(models.plain_text)  # the type the OpenAPI document describes

    async def predict(content_type: str | None, body: bytes, rid: str) -> bytes:
        check_content_type(content_type, "text/plain")
        text = decode_text(body)
        try:
            plain_text.validate_python(text)
        except ValidationError as exc:
            too_long = exc.errors()[0]["type"] == "string_too_long"
            raise _invalid(
                f"text is longer than {max_chars} characters"
                if too_long
                else "text is empty; send the email text as the request body"
            ) from None
        (p,) = await state.predict((text,), "predict")
        return b"true" if p.is_scam else b"false"

    return predict


async def healthz_handler(content_type: str | None, body: bytes, rid: str) -> bytes:
    return b'{"status":"ok"}'


def build_routes(state: ServiceState, models: RequestModels) -> dict[tuple[str, str], FastRoute]:
    """The v1 routes and probes, each declared once, as a FastRoute."""

    async def readyz(content_type: str | None, body: bytes, rid: str) -> bytes:
        readiness_check(state)
        return pydantic_core.to_json({"status": "ready", "model": state.model_ref})

    return {
        ("POST", "/v1/classify"): FastRoute(
            classify_handler(state, models),
            inference_operation(
                "classify_v1_classify_post",
                "Classify one email ({text}) or a batch ({texts})",
                ("classify",),
                ClassifyResult | ClassifyBatchResult,
                {JSON: models.classify_single | models.classify_batch},
            ),
        ),
        ("POST", "/predict"): FastRoute(
            predict_handler(state, models),
            inference_operation(
                "predict_predict_post",
                "Classify one email sent as text/plain; answers true (scam) or false",
                ("classify",),
                bool,
                {"text/plain": models.plain_text},
            ),
        ),
        ("GET", "/healthz"): FastRoute(
            healthz_handler,
            Operation("healthz_healthz_get", "Liveness: the process serves HTTP", ("probes",), Health),
            reads_body=False,
        ),
        ("GET", "/readyz"): FastRoute(
            readyz,
            Operation(
                "readyz_readyz_get",
                "Readiness: model loaded and not shutting down",
                ("probes",),
                Readiness,
                errors={503: NOT_READY_DESCRIPTION},
            ),
            reads_body=False,
        ),
    }


def readiness_check(state: ServiceState) -> None:
    """Raise the 503 error when the service must not receive traffic."""
    if state.draining:
        raise ApiError(
            503,
            "draining",
            "shutting down: finishing in-flight requests",
            headers={"Retry-After": str(NOT_READY_RETRY_AFTER_SECONDS)},
            reject_reason="draining",
        )
    state.require_model()


def _invalid(message: str) -> ApiError:
    return ApiError(
        422,
        "invalid_request",
        message,
        details=[{"loc": ["body"], "msg": message, "type": "value_error"}],
        reject_reason="invalid_request",
    )
