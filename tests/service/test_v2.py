"""The Open Inference Protocol v2 routes (service/v2.py): metadata, health, infer and its errors."""

from __future__ import annotations

import pytest

from runtime.classifier import ScamClassifier
from tests.service.conftest import HAM_TEXT, SCAM_TEXT, TestClient
from tests.service.test_api import assert_error

ERROR_KEYS = {"error", "code", "status", "request_id"}


def test_v2_server_metadata_and_health(client: TestClient) -> None:
    meta = client.get("/v2").json()
    assert meta["name"] == "scamguard"
    assert isinstance(meta["version"], str)
    assert meta["extensions"] == []
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/scam-classifier/ready").json() == {"ready": True}


def test_v2_model_metadata(client: TestClient, reference: ScamClassifier) -> None:
    meta = client.get("/v2/models/scam-classifier").json()
    assert meta["name"] == "scam-classifier"
    assert meta["versions"] == [reference.info.version]
    assert meta["platform"]
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "score", "datatype": "FP32", "shape": [-1]},
    ]


def test_v2_infer(client: TestClient, reference: ScamClassifier) -> None:
    request = {
        "id": "req-42",
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": [SCAM_TEXT, HAM_TEXT]}],
    }
    response = client.post("/v2/models/scam-classifier/infer", json=request)
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == "scam-classifier"
    assert body["model_version"] == reference.info.version
    assert body["id"] == "req-42"
    label, score = body["outputs"]
    assert label == {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["scam", "legitimate"]}
    assert (score["name"], score["datatype"], score["shape"]) == ("score", "FP32", [2])
    assert score["data"] == pytest.approx([reference.score(SCAM_TEXT), reference.score(HAM_TEXT)])


def test_v2_infer_without_id_uses_request_id_and_selected_outputs(client: TestClient) -> None:
    request = {
        "inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [HAM_TEXT]}],
        "outputs": [{"name": "score"}],
    }
    response = client.post("/v2/models/scam-classifier/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == response.headers["x-request-id"]
    assert [o["name"] for o in body["outputs"]] == ["score"]


@pytest.mark.parametrize(
    "request_body",
    [
        {"inputs": []},
        {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": ["x"]}]},
        {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["x"]}]},
        {"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["x"]}]},
        {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [""]}]},
        {
            "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}],
            "outputs": [{"name": "p"}],
        },
        {"id": "no inputs"},
    ],
)
def test_v2_infer_invalid_is_422(client: TestClient, request_body: dict) -> None:
    response = client.post("/v2/models/scam-classifier/infer", json=request_body)
    body = assert_error(response, 422, "invalid_request")
    assert isinstance(body["error"], str)  # the protocol's error field
