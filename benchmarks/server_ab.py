"""Same-run A/B of HTTP servers for this app: uvicorn as shipped, uvicorn stock, granian variants.

    uv run python -m benchmarks.server_ab [--rounds 3] [--granian /path/to/granian] [--only KIND ...]

Each round starts every server in turn (pinned to CPU 0 when there are two or more), warms it for
2 s, then `wrk -t1 -c32` posts the ~2 KB e-mail to /v1/classify for 8 s and GETs /healthz for 5 s,
and stops it by PID. Rounds interleave the servers so that drift on a shared machine hits all of
them; the table gives every round and the median. Granian is not a dependency of the service: point
`--granian` at its executable in an environment of its own (e.g. `uv venv /tmp/gv && uv pip install
--python /tmp/gv -r service/requirements.lock granian`); without it the granian rows are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.reliability import EMAIL, HOST, REPO, free_port, get

STOCK_UVICORN = (
    "import sys, uvicorn; from service.app import create_app; "
    "uvicorn.run(create_app(), host='127.0.0.1', port=int(sys.argv[1]), http='httptools', loop='uvloop', "
    "access_log=False, log_level='warning')"
)
GRANIAN_VARIANTS = {
    "granian": [],
    "granian-st": ["--runtime-mode", "st"],
    "granian-st-rust": ["--runtime-mode", "st", "--task-impl", "rust"],
}


def command(kind: str, port: int, python: str, granian: str | None) -> list[str] | None:
    if kind == "uvicorn-shipped":
        return [python, "-m", "service"]
    if kind == "uvicorn-stock":
        return [python, "-c", STOCK_UVICORN, str(port)]
    if granian is None:
        return None
    return [
        granian, *GRANIAN_VARIANTS[kind], "--interface", "asgi", "--factory", "--host", HOST,
        "--port", str(port), "--workers", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning",
        "service.app:create_app",
    ]  # fmt: skip


def wrk(url: str, seconds: int, script: Path | None) -> float:
    argv = [shutil.which("wrk") or "wrk", "-t1", "-c32", f"-d{seconds}s"]
    argv += ["-s", str(script)] if script else []
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 30, check=True)  # noqa: S603
    return float(next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Requests/sec")))


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.server_ab", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--granian", help="granian executable (in its own environment)")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter with the service's dependencies"
    )
    parser.add_argument("--only", nargs="*", choices=["uvicorn-shipped", "uvicorn-stock", *GRANIAN_VARIANTS])
    args = parser.parse_args()
    kinds = args.only or ["uvicorn-shipped", "uvicorn-stock", *GRANIAN_VARIANTS]
    script = Path(tempfile.gettempdir()) / f"scamguard-ab-{os.getpid()}.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps({'text': EMAIL}))}\n"
    )
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else []
    rounds: dict[str, list[tuple[float, float]]] = {}
    try:
        for r in range(args.rounds):
            for kind in kinds:
                port = free_port()
                argv = command(kind, port, args.python, args.granian)
                if argv is None:
                    continue
                env = {**os.environ, "PYTHONPATH": str(REPO), "SCAMGUARD_HOST": HOST,
                       "SCAMGUARD_PORT": str(port), "SCAMGUARD_LOG_LEVEL": "WARNING"}  # fmt: skip
                proc = subprocess.Popen([*pin, *argv], env=env, cwd=REPO, stderr=subprocess.DEVNULL)  # noqa: S603
                try:
                    deadline = time.monotonic() + 30
                    while get(port, "/readyz")[0] != 200:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{kind} did not come up")
                        time.sleep(0.1)
                    base = f"http://{HOST}:{port}"
                    wrk(base + "/v1/classify", 2, script)
                    result = (wrk(base + "/v1/classify", 8, script), wrk(base + "/healthz", 5, None))
                finally:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(10)
                rounds.setdefault(kind, []).append(result)
                print(
                    f"round {r + 1} {kind:<17} classify {result[0]:8.0f} req/s  healthz {result[1]:8.0f}",
                    flush=True,
                )
    finally:
        script.unlink(missing_ok=True)
    print("\n| server | /v1/classify req/s per round | median | /healthz median |")
    print("|---|---|---:|---:|")
    for kind, values in rounds.items():
        per_round = " ".join(f"{c:.0f}" for c, _ in values)
        median = statistics.median(c for c, _ in values)
        health = statistics.median(h for _, h in values)
        print(f"| {kind} | {per_round} | {median:,.0f} | {health:,.0f} |")
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
