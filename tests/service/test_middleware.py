"""The request pipeline (service/middleware.py): API keys, the in-flight bound, stalled uploads,
reading the body, repeated headers; the settings it is built from."""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service import state as state_module
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import (
    HAM_TEXT,
    ClientFactory,
    make_settings,
    metric,
)
from tests.service.test_api import assert_error

# --- API keys ----------------------------------------------------------------------------------------


def test_api_keys_from_env_list(make_client: ClientFactory) -> None:
    client = make_client(api_keys="key-one, key-two")
    before = metric("scamguard_requests_rejected_total", reason="unauthorized")
    missing = client.post("/v1/classify", json={"text": HAM_TEXT})
    body = assert_error(missing, 401, "unauthorized")
    assert "Authorization: Bearer" in body["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = client.post("/v1/classify", json={"text": HAM_TEXT}, headers={"X-API-Key": "key-three"})
    assert_error(wrong, 401, "unauthorized")
    assert "key-three" not in wrong.text
    assert metric("scamguard_requests_rejected_total", reason="unauthorized") == before + 2

    bearer = client.post("/v1/classify", json={"text": HAM_TEXT}, headers={"Authorization": "Bearer key-one"})
    assert bearer.status_code == 200
    header = client.post("/v1/classify", json={"text": HAM_TEXT}, headers={"X-API-Key": "key-two"})
    assert header.status_code == 200
    lower = client.post("/v1/classify", json={"text": HAM_TEXT}, headers={"authorization": "bearer key-two"})
    assert lower.status_code == 200
    basic = client.post(
        "/v1/classify", json={"text": HAM_TEXT}, headers={"Authorization": "Basic a2V5LW9uZQ=="}
    )
    assert_error(basic, 401, "unauthorized")


def test_every_api_route_needs_the_key_but_probes_do_not(make_client: ClientFactory) -> None:
    client = make_client(api_keys="secret")
    infer = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
    assert_error(
        client.post("/predict", content=b"hi", headers={"Content-Type": "text/plain"}), 401, "unauthorized"
    )
    assert_error(client.post("/v2/models/scam-classifier/infer", json=infer), 401, "unauthorized")
    assert_error(client.get("/v2"), 401, "unauthorized")
    assert_error(client.get("/v2/models/scam-classifier"), 401, "unauthorized")
    for path in ("/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    assert client.get("/v2/models/scam-classifier/ready").status_code == 200
    ok = client.post("/v2/models/scam-classifier/infer", json=infer, headers={"X-API-Key": "secret"})
    assert ok.status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["paths"]["/v1/classify"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_api_keys_file(make_client: ClientFactory, tmp_path: pathlib.Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# rotated 2024-06\nfile-key-1\n\n  file-key-2  \n")
    client = make_client(api_keys_file=keys, api_keys="env-key")
    for key in ("file-key-1", "file-key-2", "env-key"):
        ok = client.post("/v1/classify", json={"text": HAM_TEXT}, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200, key
    bad = client.post("/v1/classify", json={"text": HAM_TEXT}, headers={"X-API-Key": "# rotated 2024-06"})
    assert_error(bad, 401, "unauthorized")


def test_unreadable_keys_file_is_a_startup_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="SCAMGUARD_API_KEYS_FILE"):
        create_app(make_settings(api_keys_file=tmp_path / "absent"))


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "9090")
    monkeypatch.setenv("SCAMGUARD_API_KEYS", "a,b , ,c")
    monkeypatch.setenv("SCAMGUARD_RATE_LIMIT", "10/second;100/minute")
    monkeypatch.setenv("SCAMGUARD_LOG_LEVEL", "debug")
    monkeypatch.setenv("SCAMGUARD_DOCS_ENABLED", "false")
    settings = Settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 9090)
    assert settings.api_keys == ("a", "b", "c")
    assert settings.log_level == "DEBUG"
    assert settings.docs_enabled is False
    assert settings.shutdown_grace_seconds == 10
    monkeypatch.setenv("SCAMGUARD_RATE_LIMIT", "lots")
    with pytest.raises(ValueError, match="limits syntax"):
        Settings()


@pytest.mark.anyio
async def test_inflight_bound_answers_503(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two slow inferences (long texts, scored on the model thread, held there) fill the two slots:
    the third request is refused with 503 at once, probes still answer."""
    app = create_app(make_settings(max_inflight=2))
    app.state.service.load_model()
    release = threading.Event()
    real = state_module._timed_scores

    def held(classifier: Any, texts: Any) -> Any:
        release.wait(timeout=30)
        return real(classifier, texts)

    monkeypatch.setattr(state_module, "_timed_scores", held)
    long_text = HAM_TEXT * (state_module.INLINE_MAX_CHARS // len(HAM_TEXT) + 1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        slow = [asyncio.create_task(client.post("/v1/classify", json={"text": long_text})) for _ in range(2)]
        for _ in range(100):
            if metric("scamguard_inferences_in_flight") == 2:
                break
            await asyncio.sleep(0.01)
        assert metric("scamguard_inferences_in_flight") == 2
        assert metric("scamguard_http_requests_in_flight") == 2
        before = metric("scamguard_requests_rejected_total", reason="overloaded")
        rejected = await client.post("/v1/classify", json={"text": HAM_TEXT})
        assert_error(rejected, 503, "overloaded")
        assert rejected.headers["retry-after"] == "1"
        assert metric("scamguard_requests_rejected_total", reason="overloaded") == before + 1
        # Probes are not inferences.
        assert (await client.get("/readyz")).status_code == 200
        release.set()
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200]
        assert metric("scamguard_inferences_in_flight") == 0
        assert metric("scamguard_http_requests_in_flight") == 0
        assert (await client.post("/v1/classify", json={"text": HAM_TEXT})).status_code == 200


@pytest.mark.anyio
async def test_stalled_uploads_hold_no_inference_slot_and_time_out() -> None:
    """The attack: uploads that send one byte of the body and stall. They used to take an inference
    slot before their body arrived, so as many of them as slots made every inference a 503. Now a
    slot is taken only once the body is whole, and a body that does not arrive in time gets 408."""
    app = create_app(make_settings(max_inflight=2, body_timeout_seconds=0.5))
    app.state.service.load_model()
    stall = asyncio.Event()

    async def stalled_body() -> AsyncIterator[bytes]:
        yield b"{"
        await stall.wait()  # never set: the client stays silent
        yield b"}"

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers = {"Content-Type": "application/json"}
        stalled = [
            asyncio.create_task(client.post("/v1/classify", content=stalled_body(), headers=headers))
            for _ in range(4)
        ]
        await asyncio.sleep(0.05)
        assert metric("scamguard_inferences_in_flight") == 0
        served = await client.post("/v1/classify", json={"text": HAM_TEXT})
        assert served.status_code == 200
        before = metric("scamguard_requests_rejected_total", reason="request_timeout")
        answers = await asyncio.gather(*stalled)
        for answer in answers:
            assert_error(answer, 408, "request_timeout")
            assert answer.headers["connection"] == "close"
        assert metric("scamguard_requests_rejected_total", reason="request_timeout") == before + 4


def test_first_of_repeated_key_headers_counts(make_client: ClientFactory) -> None:
    client = make_client(api_keys="good")
    ok = client.post(
        "/v1/classify", json={"text": HAM_TEXT}, headers=[("X-API-Key", "good"), ("X-API-Key", "bad")]
    )
    assert ok.status_code == 200
    bad = client.post(
        "/v1/classify", json={"text": HAM_TEXT}, headers=[("X-API-Key", "bad"), ("X-API-Key", "good")]
    )
    assert_error(bad, 401, "unauthorized")


# --- reading the body --------------------------------------------------------------------------------


async def _call_with_messages(
    app: Any, messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]]
) -> tuple[list[dict[str, Any]], int]:
    """Call the app as a server would, with these body messages; a receive past them fails the test."""
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        assert calls <= len(messages), "the pipeline read past the end of the body"
        return messages[calls - 1]

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/classify", "raw_path": b"/v1/classify", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"test"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    await app(scope, receive, send)
    return sent, calls


@pytest.mark.anyio
async def test_body_with_content_length_is_complete_without_the_end_message() -> None:
    """granian sends the last chunk with more_body=True and the end as a second, empty message:
    once Content-Length bytes are in, the pipeline answers without waiting for that message (which
    costs a hand-off between the server's thread and the event loop on every request)."""
    app = create_app(make_settings())
    app.state.service.load_model()
    body = f'{{"text": "{HAM_TEXT}"}}'.encode()
    half = len(body) // 2
    chunks = [
        {"type": "http.request", "body": body[:half], "more_body": True},
        {"type": "http.request", "body": body[half:], "more_body": True},
    ]
    sent, calls = await _call_with_messages(app, chunks, [(b"content-length", str(len(body)).encode())])
    assert calls == 2
    assert sent[0]["status"] == 200
    assert b'"label":"legitimate"' in sent[1]["body"]


@pytest.mark.anyio
async def test_chunked_body_is_read_to_its_last_message() -> None:
    """Without Content-Length only more_body=False ends the body; 413 once it passes the limit."""
    app = create_app(make_settings())
    app.state.service.load_model()
    body = f'{{"text": "{" ".join([HAM_TEXT] * 8)}"}}'.encode()  # over the smallest body limit
    chunks = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.request", "body": body[10:], "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ]
    sent, calls = await _call_with_messages(app, chunks, [])
    assert calls == 3
    assert sent[0]["status"] == 200

    small = create_app(make_settings(max_body_bytes=len(body) - 1))
    small.state.service.load_model()
    sent, calls = await _call_with_messages(small, chunks, [])
    assert calls == 2
    assert sent[0]["status"] == 413


def test_an_inference_path_without_a_fast_route_is_refused_at_construction() -> None:
    """Admission (readiness, the in-flight bound) happens where FastRoutes are dispatched; an
    inference path served by anything else would skip it, so the pipeline will not be built so."""
    from service.middleware import ApiKeyAuth, RequestPipeline
    from service.state import ServiceState

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="/v1/other"):
        RequestPipeline(
            app,
            state=ServiceState(make_settings()),
            routes={"/v1/other"},
            protected=set(),
            inference={"/v1/other"},
            fast_routes={},
            auth=ApiKeyAuth(frozenset()),
            limiter=None,
            max_body_bytes=1024,
            max_inflight=1,
        )
