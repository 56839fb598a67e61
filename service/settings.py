"""Service settings, read from the environment once (pydantic-settings).

`HOST` and `PORT` follow the container convention (Cloud Run sets `PORT`); everything else is
prefixed `SCAMGUARD_`. docs/service/index.md shows the table generated from these fields.
"""

from __future__ import annotations

import functools
import pathlib
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "SCAMGUARD_"
RateLimitStrategy = Literal["sliding-window-counter", "moving-window", "fixed-window"]
# Rate-limit stores the service can use (the `limits` library's async storages), with or without
# the `async+` prefix the library needs (added by service.ratelimit).
STORAGE_SCHEMES = frozenset({"memory", "redis", "rediss", "redis+cluster", "redis+sentinel"})
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
AdmissionProxyMode = Literal["off", "haproxy"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    host: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("HOST", "SCAMGUARD_HOST"),
        description="Bind address (`0.0.0.0` in a container).",
    )
    port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("PORT", "SCAMGUARD_PORT"),
        description="Bind port (Cloud Run sets it).",
    )

    # None means the artifact shipped next to runtime/classifier.py.
    model_dir: pathlib.Path | None = Field(
        default=None, description="Model artifact directory; unset = the artifact shipped in `runtime/model`."
    )

    api_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Comma-separated API keys; none here and no file = no authentication."
    )
    api_keys_file: pathlib.Path | None = Field(
        default=None,
        description="File with one API key per line (a mounted secret; `#` comments ignored). "
        "An unreadable file is a startup error, never 'no keys'.",
    )

    rate_limit: str = Field(
        default="", description="Per-client limit in `limits` syntax, e.g. `50/second`; empty = off."
    )
    rate_limit_storage_uri: str = Field(
        default="memory://",
        description="`memory://` (per process) or `async+redis://host:6379/0` (shared by all instances).",
    )
    rate_limit_strategy: RateLimitStrategy = Field(
        default="sliding-window-counter",
        description="`sliding-window-counter`, `moving-window` or `fixed-window`.",
    )

    max_batch_size: int = Field(
        default=64, ge=1, le=10_000, description="Texts per `/v1/classify` batch or v2 request."
    )
    max_text_chars: int = Field(default=20_000, ge=1, description="Characters per text.")
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Request body limit in bytes (413), chunked bodies too."
    )
    body_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="A request body must arrive whole within this long of its headers (else 408); "
        "inference slots are taken only once it has.",
    )
    max_inflight: int = Field(
        default=64, ge=1, description="Inference requests admitted at once; more get 503 + `Retry-After`."
    )

    admission_proxy: AdmissionProxyMode = Field(
        default="off",
        description="`haproxy`: HAProxy listens on HOST:PORT in front of the Python server and queues "
        "inference requests past `SCAMGUARD_ADMISSION_CONCURRENCY`; a request that finds the queue "
        "full or waits longer than `SCAMGUARD_ADMISSION_QUEUE_TIMEOUT_SECONDS` gets 503 + "
        "`Retry-After` without reaching Python "
        "(service/admission.py). The image turns it on; `off` serves HOST:PORT from Python directly.",
    )
    admission_concurrency: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="With the admission proxy: inference requests let into the Python process at once.",
    )
    admission_queue_length: int = Field(
        default=16,
        ge=1,  # HAProxy counts its queue: "refuse when 0 wait" would refuse everything
        le=4096,
        description="With the admission proxy: inference requests that may wait for a slot; one more "
        "is answered 503 + `Retry-After` at once (no wait, the cheapest refusal). With the concurrency "
        "it bounds an admitted request's wait to about (concurrency + length) requests' work.",
    )
    admission_queue_timeout_seconds: float = Field(
        default=0.25,
        gt=0,
        le=30,
        description="With the admission proxy: the longest an inference request waits for a slot "
        "before it is answered 503 + `Retry-After`. The queue's length bounds the wait of single "
        "e-mails to milliseconds; this bounds heavy requests (large batches), at the default p99 "
        "latency objective: a request that waited that long could not meet it.",
    )

    shutdown_grace_seconds: float = Field(default=10.0, gt=0, description="SIGTERM to exit, at most.")
    keep_alive_seconds: int = Field(
        default=10,
        ge=1,
        le=3600,
        description="A connection closes when it has sent no complete request headers for this long: "
        "idle keep-alive connections and slow (slowloris) clients alike, as the server has one timer "
        "for both (behind the admission proxy, idle connections only: headers and body then must "
        "arrive within `SCAMGUARD_BODY_TIMEOUT_SECONDS`). Behind a load balancer keep it above the "
        "balancer's idle timeout (the cloud targets set it), or the server closes connections the "
        "balancer is about to reuse.",
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        le=65_536,
        description="Connections served at once; more wait in the accept queue until one closes.",
    )
    accept_backlog: int = Field(
        default=1024, ge=128, le=65_535, description="Connections the kernel queues before refusing."
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=8192,
        le=1024 * 1024,
        description="Request line and headers, at most (else 431).",
    )
    batch_scheduling: bool = Field(
        default=True,
        description="Run the process under Linux's SCHED_BATCH policy, so the server's I/O threads "
        "never preempt the thread that runs Python (and holds the lock they wait for) when they wake. "
        "On one core, single-email requests cost 11-16 % less CPU with it (docs/service/performance.md).",
    )
    # Time to keep serving (with /readyz failing) after SIGTERM before closing the listener, so a
    # load balancer that polls readiness stops routing first. 0 = close at once (Cloud Run).
    shutdown_drain_delay_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Keep serving (with `/readyz` failing) this long after SIGTERM before closing "
        "the listener; part of the grace period.",
    )

    log_level: LogLevel = Field(default="INFO", description="`DEBUG` adds one log line per request.")
    docs_enabled: bool = Field(default=True, description="Serve `/docs`, `/redoc` and `/openapi.json`.")
    forwarded_hops: int = Field(
        default=0,
        ge=0,
        le=8,
        description="Proxies in front that each append to `X-Forwarded-For` (Cloud Run: 1; behind "
        "Google's external load balancer: 2): the client is that many entries from the right, and "
        "what the client wrote itself is ignored. 0 = the connection's peer is the client.",
    )

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

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _check_storage_uri(cls, value: str) -> str:
        value = value.strip()
        parts = urllib.parse.urlsplit(value)
        scheme = parts.scheme.removeprefix("async+")
        if scheme not in STORAGE_SCHEMES or (scheme != "memory" and not parts.hostname):
            raise ValueError(
                "a rate-limit store the service can use: memory:// (per instance) or "
                "redis://HOST:PORT[/DB] (also rediss://, redis+cluster://, redis+sentinel://; an async+ "
                "prefix is optional)"
            )
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


class _ExactSettings(Settings):
    """Settings from the values given, and nothing else (not this process's environment)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_from_environment(environ: Mapping[str, str]) -> Settings:
    """The settings a container whose environment is exactly `environ` starts with (raises
    pydantic.ValidationError). The Pulumi program checks each stack's container environment with it,
    so a deployment and the service never disagree on what is valid."""
    data: dict[str, Any] = {}
    for name, value in environ.items():
        if name in ("HOST", "PORT"):
            data[name] = value
        elif name.startswith(ENV_PREFIX):
            data[name.removeprefix(ENV_PREFIX).lower()] = value
    return _ExactSettings(**data)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
