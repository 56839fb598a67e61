"""The request pipeline (service/middleware.py): API keys, the in-flight bound, stalled uploads,
repeated headers; the settings it is built from."""

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
