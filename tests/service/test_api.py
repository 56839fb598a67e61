"""Every endpoint and every error case of the HTTP API, in process (create_app + the real artifact)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from runtime.classifier import ScamClassifier
from tests.service.conftest import HAM_TEXT, SCAM_TEXT, ClientFactory, TestClient, metric

REPO = Path(__file__).resolve().parents[2]

ERROR_KEYS = {"error", "code", "status", "request_id"}


def assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) >= ERROR_KEYS, body
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    assert isinstance(body["error"], str)
    assert body["error"]
    return body


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_model_loaded(client: TestClient, reference: ScamClassifier) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "model": {"name": "scam-classifier", "version": reference.info.version},
    }


def test_readyz_fails_while_draining(client: TestClient) -> None:
    client.app.state.service.start_draining()  # type: ignore[attr-defined]
    before = metric("scamguard_requests_rejected_total", reason="draining")
    response = client.get("/readyz")
    body = assert_error(response, 503, "draining")
    assert "shutting down" in body["error"]
    assert response.headers["retry-after"] == "5"
    assert_error(client.get("/v2/health/ready"), 503, "draining")
    assert_error(client.get("/v2/models/scam-classifier/ready"), 503, "draining")
    assert metric("scamguard_requests_rejected_total", reason="draining") == before + 3
    # Liveness and admitted work are unaffected: in-flight and late requests still get answers.
    assert client.get("/healthz").status_code == 200
    late = client.post("/v1/classify", json={"text": HAM_TEXT})
    assert late.status_code == 200
    # ...and tell keep-alive clients to reconnect elsewhere instead of racing the close.
    assert late.headers["connection"] == "close"


def test_no_connection_close_while_serving(client: TestClient) -> None:
    assert "connection" not in client.post("/v1/classify", json={"text": HAM_TEXT}).headers


def test_metrics_exposition(client: TestClient) -> None:
    client.post("/v1/classify", json={"text": SCAM_TEXT})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "scamguard_http_requests_total",
        "scamguard_http_request_duration_seconds_bucket",
        "scamguard_http_requests_in_flight",
        "scamguard_inference_duration_seconds_bucket",
        "scamguard_inferences_in_flight",
        "scamguard_inference_concurrency_limit",
        "scamguard_predictions_total",
        "scamguard_prediction_score_bucket",
        "scamguard_requests_rejected_total",
        "scamguard_model_info",
        "scamguard_model_ready 1.0",
        "process_cpu_seconds_total",
        "python_info",
    ):
        assert name in text, name
    assert 'route="/v1/classify"' in text
    assert 'scamguard_prediction_score_bucket{le="0.05"}' in text
    # OpenMetrics when the scraper asks for it.
    om = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")


def test_http_metrics_use_route_templates_and_status(client: TestClient) -> None:
    labels = {"route": "/v1/classify", "method": "POST", "status": "200"}
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    before = metric("scamguard_http_requests_total", **labels)
    before_unmatched = metric("scamguard_http_requests_total", **unmatched)
    client.post("/v1/classify", json={"text": HAM_TEXT})
    client.get("/no/such/path/123")
    assert metric("scamguard_http_requests_total", **labels) == before + 1
    assert metric("scamguard_http_requests_total", **unmatched) == before_unmatched + 1
    assert metric("scamguard_http_request_duration_seconds_count", route="/v1/classify", method="POST") > 0


def test_classify_single(client: TestClient, reference: ScamClassifier) -> None:
    scam_before = metric("scamguard_predictions_total", label="scam")
    response = client.post("/v1/classify", json={"text": SCAM_TEXT})
    assert response.status_code == 200
    body = response.json()
    expected = reference.score(SCAM_TEXT)
    assert body == {
        "label": "scam",
        "is_scam": True,
        "score": pytest.approx(expected),
        "model": {"name": "scam-classifier", "version": reference.info.version},
        "request_id": response.headers["x-request-id"],
    }
    assert metric("scamguard_predictions_total", label="scam") == scam_before + 1


def test_classify_legitimate(client: TestClient) -> None:
    body = client.post("/v1/classify", json={"text": HAM_TEXT}).json()
    assert body["label"] == "legitimate"
    assert body["is_scam"] is False
    assert 0.0 <= body["score"] < 0.5


def test_classify_batch(client: TestClient, reference: ScamClassifier) -> None:
    texts = [
        SCAM_TEXT,
        HAM_TEXT,
        "Congratulations! You won a $1,000,000 lottery prize, send your bank details",
    ]
    response = client.post("/v1/classify", json={"texts": texts})
    assert response.status_code == 200
    body = response.json()
    rid = response.headers["x-request-id"]
    assert body["request_id"] == rid
    assert body["model"]["name"] == "scam-classifier"
    assert [r["label"] for r in body["results"]][:2] == ["scam", "legitimate"]
    for text, result in zip(texts, body["results"], strict=True):
        assert result["score"] == pytest.approx(reference.score(text))
        assert result["is_scam"] == reference.is_scam(result["score"])
        assert result["request_id"] == rid
        assert result["model"] == body["model"]


def test_request_id_is_echoed_when_valid(client: TestClient) -> None:
    response = client.post("/v1/classify", json={"text": HAM_TEXT}, headers={"X-Request-ID": "abc-123.x"})
    assert response.headers["x-request-id"] == "abc-123.x"
    assert response.json()["request_id"] == "abc-123.x"
    # Unsafe ids (could break logs/JSON) are replaced by a generated one.
    replaced = client.get("/healthz", headers={"X-Request-ID": 'evil"\\id'})
    assert replaced.headers["x-request-id"] != 'evil"\\id'
    assert len(replaced.headers["x-request-id"]) == 32


def test_classify_accepts_json_with_charset(client: TestClient) -> None:
    response = client.post(
        "/v1/classify",
        content=json.dumps({"text": "héllo wörld, meeting at 10"}).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n\t "}, "text"),
        ({"text": 42}, "text"),
        ({}, "text"),
        ({"texts": []}, "texts"),
        ({"texts": ["ok", ""]}, "texts.1"),
        ({"texts": "not a list"}, "texts"),
        ({"text": "hello", "extra": 1}, "extra"),
        ([1, 2], "body"),
        ("just a string", "body"),
    ],
)
def test_classify_invalid_body_is_422(client: TestClient, payload: object, where: str) -> None:
    before = metric("scamguard_requests_rejected_total", reason="invalid_request")
    body = assert_error(client.post("/v1/classify", json=payload), 422, "invalid_request")
    assert body["details"], body
    assert where.split(".")[0] in body["error"] or where == "body"
    assert metric("scamguard_requests_rejected_total", reason="invalid_request") == before + 1


def test_classify_text_too_long_is_422(make_client: ClientFactory) -> None:
    client = make_client(max_text_chars=100)
    assert client.post("/v1/classify", json={"text": "a" * 100}).status_code == 200
    body = assert_error(client.post("/v1/classify", json={"text": "a" * 101}), 422, "invalid_request")
    assert "100" in body["error"]
    assert SCAM_TEXT not in json.dumps(body)  # the input text is never echoed


def test_classify_batch_too_large_is_422(make_client: ClientFactory) -> None:
    client = make_client(max_batch_size=3)
    assert client.post("/v1/classify", json={"texts": ["a b"] * 3}).status_code == 200
    body = assert_error(client.post("/v1/classify", json={"texts": ["a b"] * 4}), 422, "invalid_request")
    assert "3" in body["error"]


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/classify", content=b'{"text": "x"', headers={"Content-Type": "application/json"}
    )
    body = assert_error(response, 422, "invalid_request")
    assert "malformed JSON" in body["error"]


def test_non_utf8_body_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/classify", content=b'{"text": "caf\xe9"}', headers={"Content-Type": "application/json"}
    )
    body = assert_error(response, 400, "invalid_encoding")
    assert "UTF-8" in body["error"]
    plain = client.post("/predict", content=b"\xff\xfe\x00", headers={"Content-Type": "text/plain"})
    assert_error(plain, 400, "invalid_encoding")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_wrong_content_type_is_415(client: TestClient, content_type: str) -> None:
    before = metric("scamguard_requests_rejected_total", reason="unsupported_media_type")
    response = client.post("/v1/classify", content=b'{"text": "hi"}', headers={"Content-Type": content_type})
    assert_error(response, 415, "unsupported_media_type")
    assert metric("scamguard_requests_rejected_total", reason="unsupported_media_type") == before + 1


def test_wrong_method_is_405_with_allow(client: TestClient) -> None:
    body = assert_error(client.get("/v1/classify"), 405, "method_not_allowed")
    assert "Allow" in body["error"]
    response = client.delete("/healthz")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


def test_unknown_path_is_404(client: TestClient) -> None:
    assert_error(client.get("/v1/nope"), 404, "not_found")
    assert_error(client.post("/v2/models/other-model/infer", json={}), 404, "not_found")


def test_body_over_limit_is_413(make_client: ClientFactory) -> None:
    client = make_client(max_body_bytes=2048)
    before = metric("scamguard_requests_rejected_total", reason="payload_too_large")
    body = assert_error(client.post("/v1/classify", json={"text": "a" * 4000}), 413, "payload_too_large")
    assert "2048" in body["error"]
    assert metric("scamguard_requests_rejected_total", reason="payload_too_large") == before + 1
    assert client.post("/v1/classify", json={"text": "a" * 1000}).status_code == 200


def test_chunked_body_over_limit_is_413(make_client: ClientFactory) -> None:
    client = make_client(max_body_bytes=2048)

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(10):
            yield b"a" * 500
        yield b'"}'

    response = client.post("/v1/classify", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413, "payload_too_large")

    def small() -> Iterator[bytes]:
        yield b'{"text": "'
        yield b"hello there"
        yield b'"}'

    ok = client.post("/v1/classify", content=small(), headers={"Content-Type": "application/json"})
    assert ok.status_code == 200


def test_predict_plain_text(client: TestClient) -> None:
    scam = client.post("/predict", content=SCAM_TEXT.encode(), headers={"Content-Type": "text/plain"})
    assert scam.status_code == 200
    assert scam.headers["content-type"] == "application/json"
    assert scam.json() is True
    ham = client.post(
        "/predict", content=HAM_TEXT.encode(), headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    assert ham.json() is False


def test_predict_errors(make_client: ClientFactory) -> None:
    client = make_client(max_text_chars=50)
    assert_error(
        client.post("/predict", content=b"  ", headers={"Content-Type": "text/plain"}), 422, "invalid_request"
    )
    assert_error(
        client.post("/predict", content=b"", headers={"Content-Type": "text/plain"}), 422, "invalid_request"
    )
    too_long = client.post("/predict", content=b"x" * 51, headers={"Content-Type": "text/plain"})
    assert_error(too_long, 422, "invalid_request")
    assert_error(client.post("/predict", json={"text": "hi"}), 415, "unsupported_media_type")
    assert_error(client.get("/predict"), 405, "method_not_allowed")


def _assert_not_ready(client: TestClient, reason_fragment: str) -> None:
    response = client.get("/readyz")
    body = assert_error(response, 503, "not_ready")
    assert reason_fragment in body["error"]
    # Unauthenticated callers learn the reason, not where the artifact lives or its checksums.
    assert "/" not in body["error"].replace("n/a", ""), body["error"]
    assert not re.search(r"[0-9a-f]{16}", body["error"]), body["error"]
    assert response.headers["retry-after"] == "5"
    assert_error(client.get("/v2/health/ready"), 503, "not_ready")
    assert_error(client.post("/v1/classify", json={"text": HAM_TEXT}), 503, "not_ready")
    assert_error(
        client.post("/predict", content=b"hi", headers={"Content-Type": "text/plain"}), 503, "not_ready"
    )
    infer = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
    assert_error(client.post("/v2/models/scam-classifier/infer", json=infer), 503, "not_ready")
    assert client.get("/healthz").status_code == 200  # alive: no crash loop
    assert metric("scamguard_model_ready") == 0


def test_missing_model_dir_keeps_serving_503(
    make_client: ClientFactory, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    before = metric("scamguard_model_load_failures_total", reason="missing")
    with caplog.at_level(logging.ERROR, logger="scamguard"):
        client = make_client(model_dir=tmp_path / "nowhere")
    _assert_not_ready(client, "does not exist")
    assert metric("scamguard_model_load_failures_total", reason="missing") == before + 1
    assert any("model load failed" in r.getMessage() for r in caplog.records)


def test_corrupt_model_file_keeps_serving_503(make_client: ClientFactory, model_dir) -> None:
    model_file = json.loads((model_dir / "metadata.json").read_text())["model_file"]
    with (model_dir / model_file).open("ab") as fh:
        fh.write(b" ")
    before = metric("scamguard_model_load_failures_total", reason="checksum_mismatch")
    client = make_client(model_dir=model_dir)
    _assert_not_ready(client, "checksum")
    assert metric("scamguard_model_load_failures_total", reason="checksum_mismatch") == before + 1
    assert client.get("/v2/models/scam-classifier").json()["versions"] == []


def test_missing_model_file_and_bad_metadata(make_client: ClientFactory, model_dir) -> None:
    model_file = json.loads((model_dir / "metadata.json").read_text())["model_file"]
    (model_dir / model_file).unlink()
    _assert_not_ready(make_client(model_dir=model_dir), "missing")
    (model_dir / "metadata.json").write_text("{not json")
    before = metric("scamguard_model_load_failures_total", reason="invalid")
    _assert_not_ready(make_client(model_dir=model_dir), "metadata.json")
    assert metric("scamguard_model_load_failures_total", reason="invalid") == before + 1


def test_copied_artifact_loads(make_client: ClientFactory, model_dir) -> None:
    client = make_client(model_dir=model_dir)
    assert client.get("/readyz").status_code == 200
    assert metric("scamguard_model_ready") == 1


def test_docs_can_be_disabled(make_client: ClientFactory) -> None:
    assert make_client().get("/openapi.json").status_code == 200
    off = make_client(docs_enabled=False)
    assert_error(off.get("/openapi.json"), 404, "not_found")
    assert_error(off.get("/docs"), 404, "not_found")


def test_openapi_documents_limits_and_errors(make_client: ClientFactory) -> None:
    schema = make_client(max_text_chars=1234, max_batch_size=7).get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert components["ClassifyRequest"]["properties"]["text"]["maxLength"] == 1234
    assert components["ClassifyBatchRequest"]["properties"]["texts"]["maxItems"] == 7
    classify = schema["paths"]["/v1/classify"]["post"]
    assert {"200", "400", "401", "413", "415", "422", "429", "503"} <= set(classify["responses"])


def test_unexpected_error_is_json_500_with_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state = client.app.state.service  # type: ignore[attr-defined]

    def broken(texts: object) -> list[float]:
        raise RuntimeError("bug in the model")

    monkeypatch.setattr(state.classifier, "score_many", broken)
    before = metric("scamguard_http_requests_total", route="/v1/classify", method="POST", status="500")
    with caplog.at_level(logging.ERROR, logger="scamguard"):
        # A hot route (answered by the request pipeline) ...
        body = assert_error(client.post("/v1/classify", json={"text": HAM_TEXT}), 500, "internal_error")
        assert "bug in the model" not in json.dumps(body)  # no internals in the answer
        # ... another one ...
        monkeypatch.setattr(state, "require_model", broken)
        assert_error(client.get("/readyz"), 500, "internal_error")
        # ... and the route FastAPI serves.
        import service.rest

        monkeypatch.setattr(service.rest, "choose_encoder", broken)
        body = assert_error(client.get("/metrics"), 500, "internal_error")
    assert metric("scamguard_http_requests_total", route="/v1/classify", method="POST", status="500") == (
        before + 1
    )
    errors = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert len(errors) == 3
    assert all(r.exc_info for r in errors)
    failed = [r for r in caplog.records if r.getMessage() == "request failed"]
    assert [(r.route, r.status) for r in failed] == [  # type: ignore[attr-defined]
        ("/v1/classify", 500),
        ("/readyz", 500),
        ("/metrics", 500),
    ]


def test_each_route_is_declared_once(client: TestClient) -> None:
    """The pipeline's routes are not FastAPI routes as well: the OpenAPI document describes them from
    the FastRoute declarations themselves (service.openapi); FastAPI serves exactly the paths the
    pipeline was told it would (`rest_paths`), before it existed."""
    from service.api import rest_paths

    app = client.app
    document = client.get("/openapi.json").json()  # builds the FastAPI part
    rest = asyncio.run(app.rest())  # type: ignore[attr-defined]
    fastapi_paths = {getattr(route, "path", "") for route in rest.routes}  # type: ignore[attr-defined]
    assert fastapi_paths == rest_paths(docs_enabled=True)
    fast = {path for _, path in app.pipeline.fast_routes}  # type: ignore[attr-defined]
    assert fast == {
        "/v1/classify",
        "/predict",
        "/healthz",
        "/readyz",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/scam-classifier",
        "/v2/models/scam-classifier/ready",
        "/v2/models/scam-classifier/infer",
    }
    assert not fast & fastapi_paths
    for method, path in app.pipeline.fast_routes:  # type: ignore[attr-defined]
        assert method.lower() in document["paths"][path], path
    assert set(document["paths"]) == fast | {"/metrics"}


# The application in a new interpreter, started (lifespan), for what must be seen before anything
# else has imported or built anything; the test's own lines follow it.
FRESH_APP = """
import asyncio, gc, sys
from runtime.classifier import DEFAULT_MODEL_DIR
from service.app import create_app
from service.settings import Settings

app = create_app(Settings(model_dir=DEFAULT_MODEL_DIR))


async def call(scope, messages):
    sent, pending = [], iter(messages)

    async def receive():
        return next(pending)

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def request(method, path, body=b""):
    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b"",
             "client": ("127.0.0.1", 1)}
    return (await call(scope, [{"type": "http.request", "body": body, "more_body": False}]))[0]["status"]


def run_started(main):
    async def started():
        lifespan = asyncio.ensure_future(call({"type": "lifespan"}, [{"type": "lifespan.startup"}]))
        await asyncio.wait([lifespan], timeout=10)  # it waits for the next message: startup is done
        await main()
        lifespan.cancel()

    asyncio.run(started())
"""


def fresh_app_prints(lines: str) -> list[str]:
    """What `lines`, run after FRESH_APP in a new interpreter, print."""
    result = subprocess.run(
        [sys.executable, "-c", FRESH_APP + lines],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_the_application_starts_and_answers_without_fastapi() -> None:
    """FastAPI and Starlette are a third of the process's start: startup, the probes and inference
    must not import them (they load on the first /metrics or docs request)."""
    printed = fresh_app_prints(
        """
async def main():
    for method, path, body in [
        ("GET", "/readyz", b""),
        ("GET", "/v2/health/ready", b""),
        ("POST", "/v1/classify", b'{"text": "hello there"}'),
        ("GET", "/no/such/path", b""),
    ]:
        print(path, await request(method, path, body))

run_started(main)
print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette")))
"""
    )
    assert printed == [
        "/readyz 200",
        "/v2/health/ready 200",
        "/v1/classify 200",
        "/no/such/path 404",
        "loaded: []",
    ]


def test_a_full_gc_pass_does_not_walk_the_model_or_fastapi() -> None:
    """The model (at startup) and FastAPI (built on the first /metrics scrape) are tens of
    thousands of long-lived objects; a full collection that walked them would stall the event loop
    for milliseconds (24 ms and 6.6 ms on the development VM). Both are frozen out of its reach."""
    printed = fresh_app_prints(
        """
async def main():
    print("/metrics", await request("GET", "/metrics"))

run_started(main)
gc.collect()
print(len(gc.get_objects()))
"""
    )
    assert printed[0] == "/metrics 200"
    assert int(printed[-1]) < 3_000, printed


def test_head_on_a_get_route_of_the_pipeline_has_no_body(client: TestClient) -> None:
    response = client.head("/healthz")
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) == len(client.get("/healthz").content)


def _classify_scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of a POST /v1/classify from a loopback client, for calling the app directly."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/classify",
        "raw_path": b"/v1/classify",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8080),
    }


@pytest.mark.anyio
async def test_client_gone_before_its_body_is_counted_not_answered() -> None:
    from service.app import create_app
    from tests.service.conftest import make_settings

    app = create_app(make_settings())
    app.state.service.load_model()
    messages = iter(
        [
            {"type": "http.request", "body": b'{"text": "hel', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return next(messages)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = _classify_scope([(b"content-type", b"application/json")])
    labels = {"route": "/v1/classify", "method": "POST", "status": "499"}
    before = metric("scamguard_http_requests_total", **labels)
    await app(scope, receive, send)
    assert sent == []  # nobody to answer
    assert metric("scamguard_http_requests_total", **labels) == before + 1
    assert metric("scamguard_inferences_in_flight") == 0


@pytest.mark.anyio
async def test_a_request_cancelled_by_the_server_is_counted_as_the_client_leaving_not_as_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """granian cancels the application's task when the client's connection drops (wrk stopping
    with batches queued did it): that is a client gone (499), not a server error that would feed
    the 5xx alert, and the cancellation must still propagate."""
    import asyncio

    from service.app import create_app
    from tests.service.conftest import make_settings

    app = create_app(make_settings())
    app.state.service.load_model()
    never, waiting = asyncio.Event(), asyncio.Event()

    async def receive() -> MutableMapping[str, Any]:
        waiting.set()
        await never.wait()  # the body never comes: the task is cancelled while it waits
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        raise AssertionError(f"nothing is sent to a client that left: {message}")

    scope = _classify_scope([(b"content-type", b"application/json"), (b"content-length", b"20")])
    gone = {"route": "/v1/classify", "method": "POST", "status": "499"}
    failed = {**gone, "status": "500"}
    before_gone, before_failed = (
        metric("scamguard_http_requests_total", **gone),
        metric("scamguard_http_requests_total", **failed),
    )
    task = asyncio.ensure_future(app(scope, receive, send))
    await asyncio.wait_for(waiting.wait(), 10)  # inside the pipeline, reading the body
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert metric("scamguard_http_requests_total", **gone) == before_gone + 1
    assert metric("scamguard_http_requests_total", **failed) == before_failed
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


def test_a_body_with_thousands_of_unknown_fields_is_refused_cheaply(client: TestClient) -> None:
    """180,000 unknown keys in a 2 MB body made a 16 MB answer (one error per key) and held the
    event loop for a second: now the object's size is checked first, and the answer stays small."""
    fields = {f"{i:x}": 1 for i in range(180_000)}
    body = json.dumps({"text": "hi", **fields}, separators=(",", ":")).encode()
    response = client.post("/v1/classify", content=body, headers={"Content-Type": "application/json"})
    error = assert_error(response, 422, "invalid_request")
    assert "180001 fields" in error["error"]
    assert len(response.content) < 1_000


def test_validation_details_are_capped(client: TestClient) -> None:
    response = client.post("/v1/classify", json={"texts": [1] * 60})
    error = assert_error(response, 422, "invalid_request")
    assert len(error["details"]) == 20
