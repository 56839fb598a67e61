"""Domain errors and their one mapping to the API's error shape (service/domain.py, service/errors.py)."""

from __future__ import annotations

import json

import pytest

from service.domain import DomainError, ModelNotReady
from service.errors import from_domain
from service.settings import Settings
from service.state import ServiceState


def test_the_state_raises_a_domain_error_not_an_http_one(tmp_path) -> None:
    state = ServiceState(Settings(model_dir=tmp_path / "missing"))
    state.load_model()
    with pytest.raises(ModelNotReady) as raised:
        state.require_model()
    assert raised.value.retry_after > 0
    assert str(tmp_path) not in str(raised.value)  # the public message hides the path


def test_model_not_ready_maps_to_503_not_ready_with_retry_after() -> None:
    error = from_domain(ModelNotReady("model not available: no artifact", retry_after=5))
    body = json.loads(error.body("rid-1"))
    assert (error.status, body["code"], body["status"], body["request_id"]) == (
        503,
        "not_ready",
        503,
        "rid-1",
    )
    assert body["error"] == "model not available: no artifact"
    assert dict(error.headers)["Retry-After"] == "5"
    assert error.reject_reason == "not_ready"


def test_an_unmapped_domain_error_is_an_internal_error_that_reveals_nothing() -> None:
    class Surprise(DomainError):
        pass

    error = from_domain(Surprise("secret detail"))
    assert error.status == 500
    assert b"secret detail" not in error.body("rid")
