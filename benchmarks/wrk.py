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


def run(port: int, connections: int, seconds: int, path: str, body: bytes | None = None) -> WrkResult:
    """`wrk -t1` for `seconds` (on CPU 1 when there are two, the server being on CPU 0): a POST of
    the JSON `body`, or a GET without one. Any non-2xx answer under load fails the run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if body is not None:
            script.write(
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(body.decode())}\n"
            )
    pin = ["taskset", "-c", "1"] if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else []
    argv = [*pin, shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv
            [*argv, "-s", script.name, f"http://{HOST}:{port}{path}"],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers under load:\n{out}")
    return parse(out)


def parse(out: str) -> WrkResult:
    def ms(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)$", out, re.MULTILINE).groups()  # type: ignore[union-attr]
        return float(value) * _UNIT_MS[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return WrkResult(rps, ms("50"), ms("99"), requests)
