"""Per-client rate limiting with the `limits` library (async API).

Storage is in-process memory by default; `async+redis://host:6379` (or plain `redis://...`) shares
one budget between every instance. The strategy defaults to the sliding window counter, which
smooths bursts at a window edge like a token bucket does, in O(1) storage per client.
A storage outage fails open (requests pass, a warning is logged at most every 30 s): availability
of the API matters more than exact limiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse_many
from limits.aio.strategies import STRATEGIES
from limits.aio.strategies import RateLimiter as LimitsStrategy
from limits.storage import storage_from_string

logger = logging.getLogger("scamguard")

_STORAGE_WARN_INTERVAL_SECONDS = 30.0
# A shared store answers in a millisecond or two; one that takes longer is treated as down.
STORE_TIMEOUT_SECONDS = 0.1
# After a store failure, requests skip the store (fail open) this long, then one tries it again:
# a hung store costs one timeout per window instead of one per request.
BREAKER_OPEN_SECONDS = 5.0
# Checks waiting on the store at once; past this the store is slow, and the rest fail open at once
# instead of queueing behind it (a hung Redis let 175 requests pile up per instance). Half the
# admission proxy's default slots (SCAMGUARD_ADMISSION_CONCURRENCY, 16): requests waiting out a hung
# store's timeout (0.1 s) must leave slots to the others, which fail open at once, or the proxy
# sheds them (136 503s in the reliability command's Redis line when they could take every slot).
MAX_STORE_INFLIGHT = 8


def async_storage_uri(uri: str) -> str:
    """The `limits` async scheme for a storage URI: `memory://` -> `async+memory://` etc."""
    uri = uri.strip()
    return uri if uri.startswith("async+") else f"async+{uri}"


def client_host(scope: Mapping[str, Any], forwarded_hops: int) -> str | None:
    """The client address a limit keys on.

    With `forwarded_hops` = N > 0 the service sits behind N proxies that each append the address
    they received the request from to X-Forwarded-For: the client is the N-th entry from the right.
    Entries to the left of it were written by the client and are never trusted (taking the leftmost
    one let a caller choose its own rate-limit key). With fewer entries than hops, or N = 0, it is
    the TCP peer.
    """
    if forwarded_hops > 0:
        values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
        entries = [e.strip() for e in ",".join(values).split(",") if e.strip()]
        if len(entries) >= forwarded_hops:
            return entries[-forwarded_hops]
    client = scope.get("client")
    return client[0] if client else None


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    headers: tuple[tuple[bytes, bytes], ...]
    retry_after: int


_FAIL_OPEN = RateDecision(True, (), 0)


class WindowCounters:
    """The per-process store for the sliding-window-counter and fixed-window strategies: a few
    numbers per client and limit, O(1) per check, at most `capacity` clients (the least recently
    seen is dropped first). `limits`' own memory storage sweeps every key it holds on a timer, so its
    cost grew with the number of clients (60,000 invented addresses cut throughput to a seventh)
    and its memory had no bound.

    Semantics as in `limits`: a fixed window counts hits since the window began; the sliding window
    counter weighs the previous window's count by the share of it still inside the sliding window.
    """

    def __init__(self, items: list[RateLimitItem], sliding: bool, capacity: int = 100_000) -> None:
        self.limits = [(item.amount, float(item.get_expiry())) for item in items]
        self.sliding = sliding
        self.capacity = capacity
        # identity -> per limit [window number, hits in the previous window, hits in this one]
        self._windows: dict[str, list[list[float]]] = {}

    def hit(self, identity: str) -> tuple[bool, int, float, int]:
        """(allowed, remaining, seconds to reset, index of the tightest limit); counts the hit
        against every limit only when all of them allow it."""
        now = time.monotonic()
        windows = self._windows.pop(identity, None)
        if windows is None:
            if len(self._windows) >= self.capacity:
                del self._windows[next(iter(self._windows))]
            windows = [[now // expiry, 0.0, 0.0] for _, expiry in self.limits]
        counts: list[float] = []
        for (_, expiry), window in zip(self.limits, windows, strict=True):
            number = now // expiry
            if number != window[0]:  # a new window: this one's hits become the previous ones
                window[1] = window[2] if number - window[0] == 1 else 0.0
                window[0], window[2] = number, 0.0
            previous = window[1] * (1 - (now - number * expiry) / expiry) if self.sliding else 0.0
            counts.append(previous + window[2])
        allowed = all(count + 1 <= amount for count, (amount, _) in zip(counts, self.limits, strict=True))
        if allowed:
            for window in windows:
                window[2] += 1
        self._windows[identity] = windows  # re-inserted: dict order is recency
        tightest, remaining, reset = 0, None, 0.0
        for index, ((amount, expiry), count) in enumerate(zip(self.limits, counts, strict=True)):
            left = max(0, int(amount - count - (1 if allowed else 0)))
            if remaining is None or left < remaining:
                tightest, remaining = index, left
                reset = (windows[index][0] + 1) * expiry - now
        return allowed, remaining or 0, reset, tightest

    def __len__(self) -> int:
        return len(self._windows)


class RateLimiter:
    def __init__(self, spec: str, storage_uri: str, strategy: str) -> None:
        self.items: list[RateLimitItem] = parse_many(spec)
        uri = async_storage_uri(storage_uri)
        self.counters: WindowCounters | None = None
        if uri.split("://", 1)[0] == "async+memory" and strategy in (
            "sliding-window-counter",
            "fixed-window",
        ):
            self.counters = WindowCounters(self.items, sliding=strategy == "sliding-window-counter")
        options: dict[str, float | str | bool] = {}
        if "redis" in uri.split("://", 1)[0] or "valkey" in uri.split("://", 1)[0]:
            # Bounded waits: a slow Redis must not hold requests for the client's whole timeout.
            options = {"connect_timeout": STORE_TIMEOUT_SECONDS, "stream_timeout": STORE_TIMEOUT_SECONDS}
        self.storage = storage_from_string(uri, wrap_exceptions=True, **options)
        self.strategy: LimitsStrategy = STRATEGIES[strategy](self.storage)  # type: ignore[arg-type]
        self.storage_uri_scheme = uri.split("://", 1)[0]
        self._policy = ", ".join(f"{item.amount};w={item.get_expiry()}" for item in self.items).encode()
        self._last_warning = 0.0
        self._open_until = 0.0  # the circuit breaker: skip the store until then
        self._probing = False  # half-open: one check tries the store, the others keep failing open
        self._store_inflight = 0
        self.store_calls = 0  # checks that reached the store (tests and the reliability scenarios)

    @staticmethod
    def identity(api_key: bytes | None, client_host: str | None) -> str:
        # Keys are hashed so the storage (Redis) never holds a credential.
        if api_key is not None:
            return "key:" + hashlib.sha256(api_key).hexdigest()[:24]
        return f"addr:{client_host or 'unknown'}"

    async def check(self, identity: str) -> RateDecision:
        if self.counters is not None:  # in process: nothing to wait for, nothing to fail
            allowed, remaining, reset, index = self.counters.hit(identity)
            return self._decision(allowed, remaining, reset, self.items[index])
        if self._store_inflight >= MAX_STORE_INFLIGHT:
            return _FAIL_OPEN
        if self._open_until:
            if self._probing or time.monotonic() < self._open_until:
                return _FAIL_OPEN
            self._probing = True
        self.store_calls += 1
        self._store_inflight += 1
        try:
            # The whole check, not only each storage call, is bounded (a strategy makes two calls).
            decision = await asyncio.wait_for(self._check(identity), timeout=2.5 * STORE_TIMEOUT_SECONDS)
        except Exception as exc:
            now = time.monotonic()
            self._open_until = now + BREAKER_OPEN_SECONDS
            if now - self._last_warning > _STORAGE_WARN_INTERVAL_SECONDS:
                self._last_warning = now
                logger.warning(
                    "rate limit storage failed or is slow; letting requests through",
                    extra={
                        "storage": self.storage_uri_scheme,
                        "error": repr(exc),
                        "retry_in_seconds": BREAKER_OPEN_SECONDS,
                    },
                )
            return _FAIL_OPEN
        finally:
            self._store_inflight -= 1
            self._probing = False
        self._open_until = 0.0
        return decision

    async def _check(self, identity: str) -> RateDecision:
        allowed = True
        tightest: tuple[int, float, RateLimitItem] | None = None
        for item in self.items:
            if not await self.strategy.hit(item, identity):
                allowed = False
            stats = await self.strategy.get_window_stats(item, identity)
            if tightest is None or stats.remaining < tightest[0]:
                tightest = (stats.remaining, stats.reset_time, item)
        assert tightest is not None
        remaining, reset_time, item = tightest
        return self._decision(allowed, remaining, reset_time - time.time(), item)

    def _decision(
        self, allowed: bool, remaining: int, reset_seconds: float, item: RateLimitItem
    ) -> RateDecision:
        reset_in = max(0, math.ceil(reset_seconds))
        retry_after = max(1, reset_in)
        headers = (
            (b"ratelimit-limit", str(item.amount).encode()),
            (b"ratelimit-remaining", str(remaining).encode()),
            (b"ratelimit-reset", str(retry_after if not allowed else reset_in).encode()),
            (b"ratelimit-policy", self._policy),
        )
        return RateDecision(allowed, headers, retry_after)


class AuthFailureThrottle:
    """Failed API-key guesses per client address, in fixed windows: past `limit` failures in one
    window the address gets 429 on protected routes, whatever key it sends, until the window ends.

    Always in process memory (no store round trip on the path that refuses a request) and bounded:
    at `capacity` addresses the oldest entry is dropped, so invented addresses cost O(1) each and
    can only shorten other addresses' memory, never grow it.
    """

    def __init__(self, limit: int = 20, window_seconds: float = 60.0, capacity: int = 100_000) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.capacity = capacity
        self._failures: dict[str, tuple[float, int]] = {}  # host -> (window start, failures)

    def retry_after(self, host: str | None) -> int:
        """Seconds until `host` may try again; 0 when it is not blocked."""
        entry = self._failures.get(host or "unknown")
        if entry is None:
            return 0
        started, count = entry
        left = started + self.window_seconds - time.monotonic()
        if left <= 0 or count < self.limit:
            return 0
        return max(1, math.ceil(left))

    def failed(self, host: str | None) -> None:
        key = host or "unknown"
        now = time.monotonic()
        started, count = self._failures.pop(key, (now, 0))
        if now - started >= self.window_seconds:
            started, count = now, 0
        if len(self._failures) >= self.capacity:
            del self._failures[next(iter(self._failures))]  # the oldest entry
        self._failures[key] = (started, count + 1)  # re-inserted: dict order is recency
