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
from fastapi import APIRouter
from starlette.responses import Response

from runtime.classifier import MODEL_NAME
from service.api import (
    JSON,
    ErrorBody,
    check_content_type,
    decode_text,
    error_responses,
    inference_operation,
    parse_json,
    readiness_check,
    validate,
)
from service.errors import ApiError
from service.middleware import FastHandler, FastRoute
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
NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "Not ready: no model (reason) or draining."}
}


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


def build_v2_router(
    state: ServiceState, models: RequestModels, server_version: str
) -> tuple[APIRouter, dict[tuple[str, str], FastRoute]]:
    """The v2 routes, and the one the request pipeline answers directly (infer)."""
    router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])
    server_metadata = json.dumps(
        {"name": SERVER_NAME, "version": server_version, "extensions": []}, separators=(",", ":")
    ).encode()

    @router.get(
        "", summary="Server metadata", response_model=V2ServerMetadata, responses=error_responses(401, 429)
    )
    async def server_meta() -> Response:
        return Response(server_metadata, media_type=JSON)

    @router.get("/health/live", summary="Server liveness", response_model=V2Live)
    async def live() -> Response:
        return Response(b'{"live":true}', media_type=JSON)

    @router.get("/health/ready", summary="Server readiness", response_model=V2Ready, responses=NOT_READY)
    async def ready() -> Response:
        readiness_check(state)
        return Response(b'{"ready":true}', media_type=JSON)

    @router.get(
        f"/models/{MODEL_NAME}",
        summary="Model metadata",
        response_model=V2ModelMetadata,
        responses=error_responses(401, 429),
    )
    async def model_meta() -> Response:
        return Response(_metadata_body(state), media_type=JSON)

    @router.get(
        f"/models/{MODEL_NAME}/ready", summary="Model readiness", response_model=V2Ready, responses=NOT_READY
    )
    async def model_ready() -> Response:
        readiness_check(state)
        return Response(b'{"ready":true}', media_type=JSON)

    infer = FastRoute(
        infer_handler(state, models),
        inference_operation(
            "infer_v2_models_scam_classifier_infer_post",
            "Inference (BYTES input of shape [N] -> label BYTES [N], score FP32 [N])",
            ("open inference protocol v2",),
            V2InferenceResponse,
            {JSON: models.v2_infer},
        ),
    )
    return router, {("POST", f"{MODEL_PATH}/infer"): infer}
