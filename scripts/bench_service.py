"""Benchmark the model API: one server process, wrk 2 threads x 32 connections on 127.0.0.1.

    uv run --project service python scripts/bench_service.py [--duration 10]

Prints a Markdown table of requests/s and p50/p99 latency for the constant endpoint (/healthz, the
ceiling: answered by the same request pipeline as the hot routes), a constant endpoint that goes
through FastAPI's router (/v2/health/live), /v1/classify with one ~2 KB email, with a batch of 32,
/v2/.../infer and /predict; then single emails and batches at the same time (3/4 and 1/4 of the
connections). `--stub-model` scores with a constant: the request path's own cost.
Needs `wrk` (Debian package wrk). Rate limiting and API keys are off (their defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent

# A typical ~2 KB business-style email (subject + body), written for this benchmark.
EMAIL = (
    "Subject: Q3 vendor onboarding - documents needed before Friday\n\n"
    "Hi Maria,\n\n"
    "Thanks again for the call on Tuesday. As discussed, we are moving the onboarding of the two new "
    "logistics vendors forward so that their first invoices can be processed in the October cycle. "
    "Before finance can create the supplier records, we still need a few documents from each of them: "
    "the signed framework agreement, a current certificate of insurance, the completed tax form and a "
    "bank confirmation letter on the bank's letterhead. Please do not accept bank details sent only by "
    "email; procurement policy requires the letter or a call-back to a number we already have on file.\n\n"
    "I have put the checklist in the shared drive under Procurement / Vendors / 2024 / Onboarding. "
    "Kevin from accounts payable will review the forms on Thursday morning, so anything that arrives "
    "by Wednesday evening can be included in this round. If a vendor needs more time, let me know and "
    "I will move them to the November batch instead; that is not a problem as long as we know early.\n\n"
    "A few reminders from the last audit: every supplier record needs two approvals, changes to payment "
    "details need a second person to confirm by phone, and we keep the evidence attached to the ticket. "
    "The auditors were happy with how we handled this last year and I would like to keep it that way.\n\n"
    "For the kickoff meeting with the vendors I suggest next Monday at 10:00 in room 4.12, or on video if "
    "they prefer. The agenda is short: introductions, delivery schedules for the first quarter, the "
    "reporting format we expect each month, and the escalation contacts on both sides. I will send the "
    "invitation once you confirm the time works for your team.\n\n"
    "Let me know if anything is unclear or if you need help chasing the documents.\n\n"
    "Best regards,\nDaniel Weber\nProcurement Operations\nPhone +49 30 1234 5678\n"
)


# --stub-model: the real artifact loads (same startup, same checks), but scoring returns a constant,
# so the figures are the request path's own cost. A benchmark-only patch, not a service setting.
STUB_MODEL_MAIN = (
    "from runtime.classifier import ScamClassifier\n"
    "ScamClassifier.score_many = lambda self, texts: [0.25] * len(texts)\n"
    "from service.server import main\n"
    "main()\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server at {base} not ready after {timeout} s (model artifact present?)")


def lua_post(path: pathlib.Path, body: str, content_type: str) -> None:
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
        f"wrk.body = {json.dumps(body)}\n",
        encoding="utf-8",
    )


def parse_wrk(output: str) -> dict[str, float]:
    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    return {
        "rps": rps,
        "p50": ms(*p50.groups()) if p50 else float("nan"),
        "p99": ms(*p99.groups()) if p99 else float("nan"),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def run_wrk(
    url: str, script: pathlib.Path | None, duration: int, threads: int, connections: int
) -> dict[str, float]:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(  # noqa: S603 (fixed argv, loopback URL)
        [*cmd, url], check=True, capture_output=True, text=True, timeout=duration + 30
    ).stdout
    return parse_wrk(out)


def run_mixed(
    base: str, single: pathlib.Path, batch: pathlib.Path, duration: int, connections: int
) -> list[tuple[str, dict[str, float]]]:
    """Single emails on 3/4 of the connections while the rest send batches of 32 (one wrk thread each):
    how much a heavy request slows the light ones (big batches run on a worker thread)."""
    batch_connections = max(1, connections // 4)
    single_connections = connections - batch_connections
    cmd = ["wrk", "-t1", f"-c{batch_connections}", f"-d{duration + 1}s", "--latency", "-s", str(batch)]
    background = subprocess.Popen(  # noqa: S603 (fixed argv, loopback URL)
        [*cmd, base + "/v1/classify"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.5)  # the batches are already running when the singles start
        singles = run_wrk(base + "/v1/classify", single, duration, 1, single_connections)
        batches = parse_wrk(background.communicate(timeout=duration + 30)[0])
    finally:
        if background.poll() is None:
            background.kill()
            background.wait()
    return [
        (f"mixed: POST /v1/classify (1 email), {single_connections} conns", singles),
        (f"mixed: POST /v1/classify (batch of 32), {batch_connections} conns", batches),
    ]


def bench_server(args: argparse.Namespace, workdir: pathlib.Path) -> list[tuple[str, dict[str, float]]]:
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SCAMGUARD_LOG_LEVEL": "WARNING",
        "SCAMGUARD_MAX_INFLIGHT": "256",
    }
    if args.model_dir:
        env["SCAMGUARD_MODEL_DIR"] = args.model_dir
    for key in ("SCAMGUARD_RATE_LIMIT", "SCAMGUARD_API_KEYS", "SCAMGUARD_API_KEYS_FILE"):
        env.pop(key, None)
    if args.rate_limit:
        env["SCAMGUARD_RATE_LIMIT"] = args.rate_limit
    command = ["-c", STUB_MODEL_MAIN] if args.stub_model else ["-m", "service"]
    server = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env)  # noqa: S603 (fixed argv)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        single = workdir / "single.lua"
        batch = workdir / "batch.lua"
        v2 = workdir / "v2.lua"
        plain = workdir / "plain.lua"
        lua_post(single, json.dumps({"text": EMAIL}), "application/json")
        lua_post(batch, json.dumps({"texts": [EMAIL] * 32}), "application/json")
        lua_post(
            v2,
            json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [EMAIL]}]}),
            "application/json",
        )
        lua_post(plain, EMAIL, "text/plain")
        scenarios: list[tuple[str, str, pathlib.Path | None]] = [
            ("GET /healthz (constant, ceiling)", "/healthz", None),
            ("GET /v2/health/live (constant, via FastAPI's router)", "/v2/health/live", None),
            ("POST /v1/classify (1 email)", "/v1/classify", single),
            ("POST /v1/classify (batch of 32)", "/v1/classify", batch),
            ("POST /v2/models/scam-classifier/infer (1)", "/v2/models/scam-classifier/infer", v2),
            ("POST /predict (text/plain)", "/predict", plain),
        ]
        # Warm up (imports, caches, connection setup) before measuring.
        run_wrk(base + "/v1/classify", single, 2, args.threads, args.connections)
        results = []
        for name, path, script in scenarios:
            results.append(
                (name, run_wrk(base + path, script, args.duration, args.threads, args.connections))
            )
        if not args.no_mixed:
            results.extend(run_mixed(base, single, batch, args.duration, args.connections))
        return results
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def print_table(title: str, results: list[tuple[str, dict[str, float]]]) -> None:
    ceiling = results[0][1]["rps"]
    via_router = results[1][1]["rps"]  # the constant endpoint that FastAPI's router serves
    print(f"\n{title}\n")
    print("| endpoint | req/s | % of constant | % of FastAPI-routed constant | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results:
        print(
            f"| {name} | {r['rps']:,.0f} | {100 * r['rps'] / ceiling:.0f} % "
            f"| {100 * r['rps'] / via_router:.0f} % | {r['p50']:.2f} | {r['p99']:.2f} | {int(r['non2xx'])} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint (default 10)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--model-dir", help="artifact to serve (default: the shipped runtime/model)")
    parser.add_argument("--rate-limit", help="also enable rate limiting, e.g. '1000000/second' (memory)")
    parser.add_argument("--no-mixed", action="store_true", help="skip the mixed single + batch run")
    parser.add_argument(
        "--stub-model",
        action="store_true",
        help="score with a constant instead of the model: measures the request path alone",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    print(
        f"scamguard benchmark: 1 server process, wrk {args.threads} threads x {args.connections} "
        f"connections, {args.duration} s per endpoint, email body {len(EMAIL.encode())} bytes, "
        f"{os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        print_table("python -m service (granian, uvloop)", bench_server(args, pathlib.Path(tmp)))


if __name__ == "__main__":
    main()
