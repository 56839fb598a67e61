"""Rate limiting (service/ratelimit.py): per client and per key, in memory and in a shared Redis,
failing open fast when the store is slow, bounded in cost and memory; the key-guess throttle."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from limits import parse_many

from service import ratelimit
from tests.service.conftest import (
    HAM_TEXT,
    ClientFactory,
    free_port,
    metric,
    require_tool,
)
from tests.service.test_api import assert_error

# --- API keys ----------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _hit(client, key: str | None = None) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = {"X-API-Key": key} if key else {}
    return client.post("/v1/classify", json={"text": HAM_TEXT}, headers=headers)


def test_rate_limit_memory(make_client: ClientFactory) -> None:
    client = make_client(rate_limit="3/minute")
    before = metric("scamguard_requests_rejected_total", reason="rate_limited")
    responses = [_hit(client) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[0].headers["ratelimit-limit"] == "3"
    assert [r.headers["ratelimit-remaining"] for r in responses] == ["2", "1", "0"]
    assert responses[0].headers["ratelimit-policy"] == "3;w=60"
    limited = _hit(client)
    body = assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["ratelimit-remaining"] == "0"
    assert int(limited.headers["ratelimit-reset"]) >= 1
    assert "retry after" in body["error"]
    assert metric("scamguard_requests_rejected_total", reason="rate_limited") == before + 1
    # Probes are never limited.
    assert client.get("/healthz").status_code == 200


def test_rate_limit_is_per_api_key(make_client: ClientFactory) -> None:
    client = make_client(rate_limit="2/minute", api_keys="alice,bob")
    assert [_hit(client, "alice").status_code for _ in range(3)] == [200, 200, 429]
    assert [_hit(client, "bob").status_code for _ in range(2)] == [200, 200]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port, stopped by PID afterwards."""
    binary = require_tool("redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"async+redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.redis
def test_rate_limit_redis_shared_by_two_instances(make_client: ClientFactory, redis_url: str) -> None:
    first = make_client(rate_limit="5/minute", rate_limit_storage_uri=redis_url, api_keys="shared,other")
    second = make_client(rate_limit="5/minute", rate_limit_storage_uri=redis_url, api_keys="shared,other")
    statuses = [_hit(client, "shared").status_code for client in (first, second) * 3]
    assert statuses == [200, 200, 200, 200, 200, 429]
    assert _hit(first, "shared").status_code == 429
    assert _hit(second, "shared").status_code == 429
    # Another client has its own budget; the key is stored hashed, never in clear.
    assert _hit(second, "other").status_code == 200
    keys = [str(key) for key in redis.Redis.from_url(redis_url.removeprefix("async+")).keys("*")]
    assert keys
    assert not any("shared" in key or "other" in key for key in keys)


@pytest.mark.redis
def test_rate_limit_plain_redis_scheme_is_accepted(make_client: ClientFactory, redis_url: str) -> None:
    client = make_client(rate_limit="1/minute", rate_limit_storage_uri=redis_url.removeprefix("async+"))
    assert [_hit(client, None).status_code for _ in range(2)] == [200, 429]


def test_rate_limit_storage_outage_fails_open(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(
        rate_limit="1/minute", rate_limit_storage_uri=f"async+redis://127.0.0.1:{free_port()}"
    )
    with caplog.at_level("WARNING", logger="scamguard"):
        assert [_hit(client).status_code for _ in range(3)] == [200, 200, 200]
    assert any("rate limit storage failed" in r.getMessage() for r in caplog.records)


@pytest.fixture
def hung_store() -> Iterator[str]:
    """A "Redis" that accepts connections and never answers (hung, not dead: connect succeeds)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"async+redis://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_a_hung_store_costs_one_timeout_per_breaker_window(
    make_client: ClientFactory, hung_store: str
) -> None:
    """Fail open fast: the first request waits for the store's (short) timeout and opens the breaker;
    the requests after it skip the store until the window ends, so they add nothing."""
    client = make_client(rate_limit="1/minute", rate_limit_storage_uri=hung_store)
    limiter = client.app.pipeline.limiter  # type: ignore[attr-defined]
    statuses = [_hit(client).status_code for _ in range(30)]
    assert statuses == [200] * 30  # failing open: a limit of 1/minute is not enforced
    assert limiter.store_calls == 1


def test_the_breaker_tries_the_store_again_after_its_window(
    make_client: ClientFactory, hung_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "BREAKER_OPEN_SECONDS", 0.0)
    client = make_client(rate_limit="1/minute", rate_limit_storage_uri=hung_store)
    limiter = client.app.pipeline.limiter  # type: ignore[attr-defined]
    for _ in range(3):
        assert _hit(client).status_code == 200
    assert limiter.store_calls == 3


def test_failed_key_guesses_are_throttled_per_address(make_client: ClientFactory) -> None:
    """177k guesses in 10 s went unanswered by any limit: past 20 failures in a minute, an address
    gets 429 on protected routes whatever key it sends; other addresses are not affected."""
    client = make_client(api_keys="right-key", forwarded_hops=1)
    attacker = {"X-Forwarded-For": "203.0.113.66"}

    def attempt(key: str, headers: dict[str, str]) -> httpx.Response:
        return client.post("/v1/classify", json={"text": HAM_TEXT}, headers={**headers, "X-API-Key": key})

    statuses = [attempt(f"guess-{i}", attacker).status_code for i in range(25)]
    assert statuses == [401] * 20 + [429] * 5
    blocked = attempt("right-key", attacker)
    body = assert_error(blocked, 429, "rate_limited")
    assert "failed API-key attempts" in body["error"]
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert attempt("right-key", {"X-Forwarded-For": "198.51.100.7"}).status_code == 200


def test_the_failure_throttle_stays_bounded() -> None:
    throttle = ratelimit.AuthFailureThrottle(limit=3, capacity=1_000)
    for i in range(100_000):
        throttle.failed(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
    assert len(throttle._failures) == 1_000
    for _ in range(3):
        throttle.failed("198.51.100.1")
    assert throttle.retry_after("198.51.100.1") > 0
    assert throttle.retry_after("10.0.0.1") == 0  # evicted long ago: forgotten, not blocked


def test_window_counters_slide_like_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process sliding window counter: the previous window's hits count by the share of it
    still inside the sliding window (limits' definition)."""
    clock = FakeClock(6_000_059.0)  # 59 s into a 60 s window
    monkeypatch.setattr(ratelimit.time, "monotonic", clock)
    counters = ratelimit.WindowCounters(parse_many("3/minute"), sliding=True)
    assert [counters.hit("a")[0] for _ in range(4)] == [True, True, True, False]
    clock.now += 2  # 1 s into the next window: 3 * 59/60 of the old hits still count
    assert counters.hit("a")[0] is False
    clock.now += 39  # 40 s in: 3 * 20/60 = 1 still counts, so two more fit
    assert [counters.hit("a")[0] for _ in range(3)] == [True, True, False]
    clock.now += 120  # two windows later: nothing counts any more
    allowed, remaining, reset, _ = counters.hit("a")
    assert allowed
    assert remaining == 2
    assert 0 < reset <= 60


def test_window_counters_fixed_and_several_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(6_000_000.5)
    monkeypatch.setattr(ratelimit.time, "monotonic", clock)
    counters = ratelimit.WindowCounters(parse_many("5/minute;2/second"), sliding=False)
    assert [counters.hit("b")[0] for _ in range(3)] == [True, True, False]  # the per-second limit
    clock.now += 1
    assert [counters.hit("b")[0] for _ in range(3)] == [True, True, False]  # per-minute: 4 of 5 used
    clock.now += 1
    assert [counters.hit("b")[0] for _ in range(2)] == [True, False]  # the minute's fifth, then no
    assert counters.hit("other")[0] is True


def test_window_counters_stay_bounded() -> None:
    counters = ratelimit.WindowCounters(parse_many("10/second"), sliding=True, capacity=1_000)
    for i in range(50_000):
        counters.hit(f"addr:{i}")
    assert len(counters) == 1_000


def test_memory_storage_uses_the_bounded_counters() -> None:
    assert ratelimit.RateLimiter("5/second", "memory://", "sliding-window-counter").counters is not None
    assert ratelimit.RateLimiter("5/second", "memory://", "fixed-window").counters is not None
    # moving-window keeps a log of hits per client: the library's storage does that
    assert ratelimit.RateLimiter("5/second", "memory://", "moving-window").counters is None


def test_a_hung_store_holds_at_most_a_bounded_number_of_checks(
    hung_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst against a hung store: at most MAX_STORE_INFLIGHT checks wait for it, the rest fail
    open at once; once the breaker's window ends, one check probes while the others keep failing open."""
    limiter = ratelimit.RateLimiter("1/minute", hung_store, "moving-window")

    async def burst(n: int) -> list[bool]:
        decisions = await asyncio.gather(*(limiter.check(f"addr:{i}") for i in range(n)))
        return [d.allowed for d in decisions]

    assert asyncio.run(burst(200)) == [True] * 200
    assert limiter.store_calls == ratelimit.MAX_STORE_INFLIGHT
    monkeypatch.setattr(ratelimit, "BREAKER_OPEN_SECONDS", 0.0)
    limiter._open_until = time.monotonic() - 1  # the window has ended
    assert asyncio.run(burst(50)) == [True] * 50
    assert limiter.store_calls == ratelimit.MAX_STORE_INFLIGHT + 1  # one probe, not fifty
