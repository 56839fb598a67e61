"""Service settings, read from the environment once (pydantic-settings).

`HOST` and `PORT` follow the container convention (Cloud Run sets `PORT`); everything else is
prefixed `SCAMGUARD_`. See the README section "The model API" for the table of settings.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

RateLimitStrategy = Literal["sliding-window-counter", "moving-window", "fixed-window"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCAMGUARD_", frozen=True, extra="ignore")

    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("HOST", "SCAMGUARD_HOST"))
    port: int = Field(default=8080, ge=0, le=65535, validation_alias=AliasChoices("PORT", "SCAMGUARD_PORT"))

    # None means the artifact shipped next to service/classifier.py.
    model_dir: pathlib.Path | None = None

    api_keys: Annotated[tuple[str, ...], NoDecode] = ()
    api_keys_file: pathlib.Path | None = None

    rate_limit: str = ""
    rate_limit_storage_uri: str = "memory://"
    rate_limit_strategy: RateLimitStrategy = "sliding-window-counter"

    max_batch_size: int = Field(default=64, ge=1, le=10_000)
    max_text_chars: int = Field(default=20_000, ge=1)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_inflight: int = Field(default=64, ge=1)

    shutdown_grace_seconds: float = Field(default=10.0, gt=0)
    # Time to keep serving (with /readyz failing) after SIGTERM before closing the listener, so a
    # load balancer that polls readiness stops routing first. 0 = close at once (Cloud Run).
    shutdown_drain_delay_seconds: float = Field(default=0.0, ge=0)

    # HTTP server stack; the defaults were the fastest measured (scripts/bench_service.py).
    http_impl: Literal["httptools", "h11", "auto"] = "httptools"
    loop_impl: Literal["uvloop", "asyncio", "auto"] = "uvloop"

    log_level: LogLevel = "INFO"
    docs_enabled: bool = True
    # Addresses whose X-Forwarded-For / X-Forwarded-Proto are trusted (uvicorn's proxy headers),
    # so rate limiting keys on the real client behind a load balancer.
    forwarded_allow_ips: str = "127.0.0.1"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        value = value.strip()
        if value:
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(
                    f"SCAMGUARD_RATE_LIMIT={value!r} is not in the limits syntax, e.g. '50/second' "
                    "or '1000/minute;50/second'"
                ) from exc
        return value

    @model_validator(mode="after")
    def _check_shutdown(self) -> Settings:
        if self.shutdown_drain_delay_seconds >= self.shutdown_grace_seconds:
            raise ValueError(
                "SCAMGUARD_SHUTDOWN_DRAIN_DELAY_SECONDS must be shorter than "
                "SCAMGUARD_SHUTDOWN_GRACE_SECONDS (the drain delay is part of the grace period)"
            )
        return self

    def load_api_keys(self) -> tuple[str, ...]:
        """The configured keys: SCAMGUARD_API_KEYS plus one key per line of SCAMGUARD_API_KEYS_FILE.

        Blank lines and lines starting with '#' in the file are ignored. An unreadable file is a
        configuration error (raised), never "no keys": that would silently open the API.
        """
        keys = list(self.api_keys)
        if self.api_keys_file is not None:
            try:
                text = self.api_keys_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(
                    f"SCAMGUARD_API_KEYS_FILE={self.api_keys_file} cannot be read ({exc.strerror}); "
                    "mount the secret there or unset the variable"
                ) from exc
            keys.extend(
                line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
            )
        return tuple(dict.fromkeys(keys))


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
