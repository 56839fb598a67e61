"""Cost of one in-process rate-limit check as the number of clients grows (memory:// storage).

    uv run --project service python scripts/bench_ratelimit.py

Fills the limiter with 1, 20,000 and 100,000 distinct clients, then times 30,000 checks of known
clients, for the project's bounded counters and for `limits`' own memory storage.
"""

from __future__ import annotations

import asyncio
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from service.ratelimit import RateLimiter

CHECKS = 30_000


async def per_check_us(limiter: RateLimiter, clients: int) -> float:
    for i in range(clients):
        await limiter.check(f"addr:{i}")
    await asyncio.sleep(0.2)  # let limits' expiry timer run as it would between requests
    started = time.perf_counter()
    for i in range(CHECKS):
        await limiter.check(f"addr:{i % 100}")
    return (time.perf_counter() - started) / CHECKS * 1e6


async def main() -> None:
    print(f"{'clients':>8} {'bounded counters':>18} {'limits memory storage':>22}  (microseconds per check)")
    for clients in (1, 20_000, 100_000):
        bounded = RateLimiter("100000/second", "memory://", "sliding-window-counter")
        library = RateLimiter("100000/second", "memory://", "sliding-window-counter")
        library.counters = None  # the library's storage and strategy, as before
        bounded_us = await per_check_us(bounded, clients)
        library_us = await per_check_us(library, clients)
        print(f"{clients:>8} {bounded_us:>18.1f} {library_us:>22.1f}")


if __name__ == "__main__":
    asyncio.run(main())
