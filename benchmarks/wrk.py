"""One closed-loop `wrk` run against a local server, parsed: the runner every benchmark here uses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

HOST = "127.0.0.1"
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int = 0  # answers other than 2xx/3xx (counted in requests_per_second)

    @property
    def ok_per_second(self) -> float:
        """2xx/3xx answers per second."""
        return self.requests_per_second * (1 - self.non_2xx / max(1, self.requests))


def script(body: bytes | None = None, forwarded_for_clients: int = 0) -> str:
    """wrk's Lua script: a POST of the JSON `body` (else a GET); with `forwarded_for_clients` = N,
    each request carries the next of N distinct X-Forwarded-For addresses (10.x.y.z), in a cycle."""
    lines = []
    if body is not None:
        lines += [
            'wrk.method = "POST"',
            'wrk.headers["Content-Type"] = "application/json"',
            f"wrk.body = {json.dumps(body.decode())}",
        ]
    if forwarded_for_clients > 0:
        lines += [
            f"local clients, client = {forwarded_for_clients}, 0",
            "request = function()",
            "  client = client % clients + 1",
            '  wrk.headers["X-Forwarded-For"] = string.format("10.%d.%d.%d",',
            "    math.floor(client / 65536) % 256, math.floor(client / 256) % 256, client % 256)",
            "  return wrk.format()",
            "end",
        ]
    return "".join(f"{line}\n" for line in lines)


def run(
    port: int,
    connections: int,
    seconds: int,
    path: str,
    body: bytes | None = None,
    *,
    forwarded_for_clients: int = 0,
    max_non_2xx_share: float = 0.0,
) -> WrkResult:
    """`wrk -t1` for `seconds` (on CPU 1 when there are two, the server being on CPU 0) with
    `script(body, forwarded_for_clients)`. A run with more than `max_non_2xx_share` of its answers
    not 2xx fails (by default any: a server behind the admission proxy may shed a few requests at
    saturation, which a caller that expects it allows, and then reads `ok_per_second`)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script(body, forwarded_for_clients))
    pin = ["taskset", "-c", "1"] if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else []
    argv = [*pin, shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv
            [*argv, "-s", lua.name, f"http://{HOST}:{port}{path}"],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(lua.name)
    result = parse(out)
    if result.non_2xx > max_non_2xx_share * result.requests:
        raise RuntimeError(f"non-2xx answers under load:\n{out}")
    return result


def parse(out: str) -> WrkResult:
    def ms(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)$", out, re.MULTILINE).groups()  # type: ignore[union-attr]
        return float(value) * _UNIT_MS[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return WrkResult(rps, ms("50"), ms("99"), requests, int(non_2xx.group(1)) if non_2xx else 0)
