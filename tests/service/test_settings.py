"""service.settings: what the service accepts from its environment (the Pulumi program validates each
stack's container environment with the same model)."""

from __future__ import annotations

import pydantic
import pytest

from service.settings import Settings, settings_from_environment


@pytest.mark.parametrize(
    "uri",
    [
        "memory://",
        "redis://cache:6379",
        "async+redis://cache:6379/0",
        "rediss://cache.example.com:6380",
        "redis+sentinel://s:26379/mymaster",
    ],
)
def test_rate_limit_stores_the_service_can_use(uri: str) -> None:
    assert Settings(rate_limit_storage_uri=uri).rate_limit_storage_uri == uri


@pytest.mark.parametrize("uri", ["redis-host:6379", "redis://", "memcached://cache:11211", "http://cache"])
def test_other_stores_are_refused_with_what_to_use(uri: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=r"memory:// \(per instance\) or redis://HOST:PORT"):
        Settings(rate_limit_storage_uri=uri)


def test_settings_from_environment_reads_only_what_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAMGUARD_MAX_BATCH_SIZE", "5")
    monkeypatch.setenv("PORT", "9999")
    settings = settings_from_environment({"HOST": "0.0.0.0", "SCAMGUARD_DOCS_ENABLED": "false"})
    assert settings.max_batch_size == 64  # the default, not this process's variable
    assert settings.port == 8080
    assert settings.host == "0.0.0.0"
    assert settings.docs_enabled is False


def test_settings_from_environment_applies_every_rule() -> None:
    with pytest.raises(pydantic.ValidationError, match="max_batch_size"):
        settings_from_environment({"SCAMGUARD_MAX_BATCH_SIZE": "20000"})
    with pytest.raises(pydantic.ValidationError, match="shorter than"):
        settings_from_environment(
            {"SCAMGUARD_SHUTDOWN_GRACE_SECONDS": "5", "SCAMGUARD_SHUTDOWN_DRAIN_DELAY_SECONDS": "6"}
        )
