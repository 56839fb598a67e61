"""Open Inference Protocol (KServe/Triton/MLServer "v2") REST endpoints for model `scam-classifier`.

Input: one BYTES tensor of shape [N] (or [N, 1]) whose data are the email texts as JSON strings.
Outputs: `label` (BYTES, "scam"/"legitimate") and `score` (FP32, P(scam)), both shape [N]; a request
may ask for a subset with `outputs`. Errors use the service's error shape, whose `error` string is
what the protocol requires.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pydantic_core

from runtime.classifier import MODEL_NAME
from service.api import (
    ERROR_DESCRIPTIONS,
    JSON,
    NOT_READY_DESCRIPTION,
    check_content_type,
    decode_text,
    inference_operation,
    parse_json,
    readiness_check,
    validate,
)
from service.errors import ApiError
from service.middleware import FastHandler, FastRoute
from service.openapi import Operation
from service.schemas import (
    RequestModels,
    V2InferenceResponse,
    V2Live,
    V2ModelMetadata,
    V2Ready,
    V2ServerMetadata,
)
from service.state import ServiceState

SERVER_NAME = "scamguard"
MODEL_PATH = f"/v2/models/{MODEL_NAME}"
TAGS = ("open inference protocol v2",)
NOT_READY = {503: NOT_READY_DESCRIPTION}
PROTECTED = {code: ERROR_DESCRIPTIONS[code] for code in (401, 429)}  # with API keys and a rate limit


def _metadata_body(state: ServiceState) -> bytes:
    classifier = state.classifier
    versions = [classifier.info.version] if classifier is not None else []
    return json.dumps(
        {
            "name": MODEL_NAME,
            "versions": versions,
            "platform": "scamguard_linear_tfidf",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "score", "datatype": "FP32", "shape": [-1]},
            ],
        },
        separators=(",", ":"),
    ).encode()


def infer_handler(state: ServiceState, models: RequestModels) -> FastHandler:
    infer_model = models.v2_infer

    async def infer(content_type: str | None, body: bytes, rid: str) -> bytes:
        check_content_type(content_type, JSON)
        payload = validate(infer_model, parse_json(decode_text(body)))
        tensor = payload.inputs[0]  # type: ignore[attr-defined]
        texts: list[str] = tensor.data
        shape: list[int] = tensor.shape
        n = len(texts)
        if shape[0] != n or math.prod(shape) != n:
            raise ApiError(
                422,
                "invalid_request",
                f"input {tensor.name!r}: shape {shape} does not match its {n} data elements; use shape [{n}]",
                details=[
                    {
                        "loc": ["body", "inputs", 0, "shape"],
                        "msg": "shape does not match data",
                        "type": "value_error",
                    }
                ],
                reject_reason="invalid_request",
            )
        predictions = await state.predict(texts, "v2_infer")
        wanted = {out.name for out in payload.outputs} if payload.outputs else {"label", "score"}  # type: ignore[attr-defined]
        outputs: list[dict[str, Any]] = []
        if "label" in wanted:
            labels = ["scam" if p.is_scam else "legitimate" for p in predictions]
            outputs.append({"name": "label", "datatype": "BYTES", "shape": [n], "data": labels})
        if "score" in wanted:
            scores = [p.score for p in predictions]
            outputs.append({"name": "score", "datatype": "FP32", "shape": [n], "data": scores})
        classifier = state.require_model()
        request_id = payload.id if payload.id is not None else rid  # type: ignore[attr-defined]
        return pydantic_core.to_json(
            {
                "model_name": MODEL_NAME,
                "model_version": classifier.info.version,
                "id": request_id,
                "outputs": outputs,
            }
        )

    return infer


def build_v2_routes(
    state: ServiceState, models: RequestModels, server_version: str
) -> dict[tuple[str, str], FastRoute]:
    """The v2 routes, each declared once, as a FastRoute (the operation ids are those FastAPI gave
    them when it served the GET routes, so generated clients keep their method names)."""
    server_metadata = json.dumps(
        {"name": SERVER_NAME, "version": server_version, "extensions": []}, separators=(",", ":")
    ).encode()

    async def server_meta(content_type: str | None, body: bytes, rid: str) -> bytes:
        return server_metadata

    async def live(content_type: str | None, body: bytes, rid: str) -> bytes:
        return b'{"live":true}'

    async def ready(content_type: str | None, body: bytes, rid: str) -> bytes:
        readiness_check(state)
        return b'{"ready":true}'

    async def model_meta(content_type: str | None, body: bytes, rid: str) -> bytes:
        return _metadata_body(state)

    def get(
        handler: FastHandler, operation_id: str, summary: str, response: Any, errors: dict[int, str]
    ) -> FastRoute:
        return FastRoute(
            handler, Operation(operation_id, summary, TAGS, response, errors=errors), reads_body=False
        )

    return {
        ("GET", "/v2"): get(
            server_meta, "server_meta_v2_get", "Server metadata", V2ServerMetadata, PROTECTED
        ),
        ("GET", "/v2/health/live"): get(live, "live_v2_health_live_get", "Server liveness", V2Live, {}),
        ("GET", "/v2/health/ready"): get(
            ready, "ready_v2_health_ready_get", "Server readiness", V2Ready, NOT_READY
        ),
        ("GET", MODEL_PATH): get(
            model_meta,
            "model_meta_v2_models_scam_classifier_get",
            "Model metadata",
            V2ModelMetadata,
            PROTECTED,
        ),
        ("GET", f"{MODEL_PATH}/ready"): get(
            ready, "model_ready_v2_models_scam_classifier_ready_get", "Model readiness", V2Ready, NOT_READY
        ),
        ("POST", f"{MODEL_PATH}/infer"): FastRoute(
            infer_handler(state, models),
            inference_operation(
                "infer_v2_models_scam_classifier_infer_post",
                "Inference (BYTES input of shape [N] -> label BYTES [N], score FP32 [N])",
                TAGS,
                V2InferenceResponse,
                {JSON: models.v2_infer},
            ),
        ),
    }
