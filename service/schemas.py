"""Request and response models. Request limits come from settings, so the models are built per app
and the OpenAPI document states the real limits (max length, batch size)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

# "Not blank": some character outside ECMAScript's whitespace set, spelled out so that Python's `re`
# (validation here) and JSON Schema's ECMAScript regex (clients, property-based tests) agree.
NOT_BLANK = r"[^\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
NOT_BLANK_RE = re.compile(NOT_BLANK)
_STRICT = ConfigDict(extra="forbid", regex_engine="python-re")


class ModelRef(BaseModel):
    name: str
    version: str


class ClassifyResult(BaseModel):
    label: Literal["scam", "legitimate"]
    is_scam: bool
    score: float = Field(ge=0, le=1, description="Probability that the email is scam/phishing.")
    model: ModelRef
    request_id: str


class ClassifyBatchResult(BaseModel):
    results: list[ClassifyResult]
    model: ModelRef
    request_id: str


class V2MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2MetadataTensor]
    outputs: list[V2MetadataTensor]


class V2ResponseOutput(BaseModel):
    name: str
    datatype: Literal["BYTES", "FP32"]
    shape: list[int]
    data: list[str] | list[float]


class V2InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    outputs: list[V2ResponseOutput]


class Health(BaseModel):
    status: Literal["ok", "ready"]


class Readiness(BaseModel):
    status: Literal["ready"]
    model: ModelRef


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


@dataclass(frozen=True)
class RequestModels:
    classify_single: type[BaseModel]
    classify_batch: type[BaseModel]
    v2_infer: type[BaseModel]
    plain_text: Any  # the text/plain body of /predict (a constrained str)


def build_request_models(max_text_chars: int, max_batch_size: int) -> RequestModels:
    text: Any = Annotated[
        str,
        StringConstraints(min_length=1, max_length=max_text_chars, pattern=NOT_BLANK),
        Field(description=f"Email text (subject and body), 1..{max_text_chars} characters, not blank."),
    ]
    texts: Any = Annotated[list[text], Field(min_length=1, max_length=max_batch_size)]
    v2_config = ConfigDict(regex_engine="python-re")
    # Typed Any: pyright does not accept runtime type expressions as create_model field types.
    params: Any = dict[str, Any] | None
    short_id: Any = Optional[Annotated[str, Field(max_length=256)]]  # noqa: UP045

    classify_single = create_model("ClassifyRequest", __config__=_STRICT, text=(text, ...))
    classify_batch = create_model("ClassifyBatchRequest", __config__=_STRICT, texts=(texts, ...))
    v2_input = create_model(
        "V2RequestInput",
        __config__=v2_config,
        name=(Annotated[str, Field(max_length=256)], ...),
        shape=(Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=2)], ...),
        datatype=(Literal["BYTES"], ...),
        data=(texts, ...),
        parameters=(params, None),
    )
    v2_output = create_model(
        "V2RequestOutput",
        name=(Literal["label", "score"], ...),
        parameters=(params, None),
    )
    optional_outputs: Any = list[v2_output] | None
    one_input: Any = Annotated[list[v2_input], Field(min_length=1, max_length=1)]
    v2_infer = create_model(
        "V2InferenceRequest",
        __config__=v2_config,
        id=(short_id, None),
        parameters=(params, None),
        inputs=(one_input, ...),
        outputs=(optional_outputs, None),
    )
    return RequestModels(
        classify_single=classify_single,
        classify_batch=classify_batch,
        v2_infer=v2_infer,
        plain_text=Annotated[
            str, StringConstraints(min_length=1, max_length=max_text_chars, pattern=NOT_BLANK)
        ],
    )
