"""The API under abuse and overload: one line per scenario with its figure and verdict.

    uv run --project service python -m benchmarks.reliability [--only NAME ...] [--soak-seconds 600] [--json]

Starts `python -m service` itself (pinned to CPU 0 when the machine has two or more, the load runs on
the others), talks to 127.0.0.1 only, stops every process it started by its PID, and bounds every
loop in count and time. It first measures the capacity C (closed loop, wrk, 32 connections), the
unloaded latency, and how much of C holds under arrivals at a fixed rate (a request that arrives
alone costs more CPU than one of a saturated closed loop); then it runs each scenario with the
open-loop generator (`benchmarks.openloop`: fixed arrival rate, latency from the time each request
was due) at multiples of C. The verdicts are issue 15's bars; a FAIL line is a finding, not a
crash: the command exits 1 when any line fails.
Scenarios that need redis-server say so when it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import wrk
from benchmarks.openloop import Result, http_request, open_loop
from benchmarks.openloop import run as run_load
from benchmarks.procfs import cpu_seconds, rss_mb

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
EMAIL = (
    "Subject: Quarterly planning\n\nHi team, the planning meeting moves to Thursday at 10:00 in room 4B. "
    "Please bring the updated budget figures and the hiring plan; Sam will share the slides beforehand. "
) * 10  # ~2 KB, an ordinary e-mail


# The share of 503s a closed-loop measurement at saturation tolerates (the admission proxy's queue
# timeout can shed during a stall of the VM); its throughput counts 2xx only.
SHED_ALLOWED = 0.001


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One `python -m service` process on a free loopback port."""

    env: dict[str, str] = field(default_factory=dict)
    wait_ready: bool = True
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "SCAMGUARD_HOST": HOST,
            "SCAMGUARD_PORT": str(self.port),
            "SCAMGUARD_LOG_LEVEL": "WARNING",
            **self.env,
        }
        pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else []
        command = os.environ.get("RELIABILITY_SERVER_COMMAND", f"{sys.executable} -m service").split()
        command = [part.replace("{port}", str(self.port)) for part in command]
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            [*pin, *command], env=env, cwd=REPO, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = get(self.port, "/readyz")[0] if self._listening() else 0
            if status == 200 or (status and not self.wait_ready):
                return self
            time.sleep(0.1)
        self.stop()
        raise SystemExit("the service did not come up within 30 s (is the model artifact there?)")

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex((HOST, self.port)) == 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_mb(self) -> float:
        # the service is the child of taskset's exec: same PID
        return rss_mb(self.pid)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@contextlib.contextmanager
def running(**env: str) -> Iterator[Server]:
    server = Server(env=dict(env)).start()
    try:
        yield server
    finally:
        server.stop()


def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, return everything the server answers before it closes or goes quiet."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        None,
                    )
                    if length is not None and len(body) >= length:
                        break
        return b"".join(chunks)


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    if not raw:
        return 0, {}, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        return _parse(
            _raw(
                port,
                http_request(
                    "GET",
                    path,
                    headers=headers | {"Connection": "close"} if headers else {"Connection": "close"},
                ),
            )
        )
    except OSError:
        return 0, {}, b""


def classify_request(text: str = EMAIL, headers: dict[str, str] | None = None) -> bytes:
    body = json.dumps({"text": text}).encode()
    return http_request("POST", "/v1/classify", body, {"Content-Type": "application/json", **(headers or {})})


def load(port: int, requests: list[bytes], rate: float, seconds: float, timeout: float = 2.0) -> Result:
    return run_load(open_loop(HOST, port, requests, rate, seconds, timeout=timeout))


# ------------------------------------------------------------------------------------------------


@dataclass
class Line:
    scenario: str
    figure: str
    passed: bool | None  # None: could not run here (says why in the figure)
    data: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        verdict = {True: "PASS", False: "FAIL", None: "NOT RUN"}[self.passed]
        return f"{verdict:<7} {self.scenario:<34} {self.figure}"


@dataclass
class Baseline:
    capacity: float  # C: 2xx per second, closed loop
    unloaded_p99_ms: float
    unloaded_p50_ms: float
    closed_loop_cpu_us: float  # CPU of the service and its proxy per request while C was measured


def closed_loop_capacity(server: Server) -> tuple[float, float]:
    """2xx per second with 32 connections (closed loop, 8 s), and the CPU of the service and its
    proxy per request. Behind the proxy a VM stall at saturation may shed a request or two."""
    cpu_before = cpu_seconds(server.pid)
    run = wrk.run(
        server.port,
        32,
        8,
        "/v1/classify",
        json.dumps({"text": EMAIL}).encode(),
        max_non_2xx_share=SHED_ALLOWED,
    )
    return run.ok_per_second, (cpu_seconds(server.pid) - cpu_before) / max(1, run.requests) * 1e6


def measure_baseline(server: Server) -> Baseline:
    capacity, cpu_us = closed_loop_capacity(server)
    quiet = load(server.port, [classify_request()], max(20.0, capacity * 0.1), 5)
    return Baseline(capacity, quiet.percentile(0.99) * 1000, quiet.percentile(0.5) * 1000, cpu_us)


# Fixed arrival rates tried, in fractions of C, to find the highest one answered in full.
OPEN_LOOP_STEPS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def open_loop_capacity(base: Baseline, server: Server, seconds: float = 5) -> str:
    """What C (closed loop) means under arrivals at a fixed rate: the highest step of C at which
    every request is answered 200 within 10x the unloaded p99, and the CPU per request there
    against the closed loop. Requests that arrive one by one wake the server for each, so each
    costs more than in a saturated closed loop; the 0.7 C and soak lines depend on that ratio."""
    reached, cpu_ratio, failure = 0.0, 0.0, ""
    for step in OPEN_LOOP_STEPS:
        cpu_before = cpu_seconds(server.pid)
        result = load(server.port, [classify_request()], base.capacity * step, seconds)
        cpu_us = (cpu_seconds(server.pid) - cpu_before) / max(1, result.sent) * 1e6
        p99 = result.percentile(0.99) * 1000
        if result.ok != result.sent or p99 > 10 * base.unloaded_p99_ms:
            failure = (
                f"; at {step:.1f} C {result.sent - result.ok} of {result.sent} not answered 200, "
                f"p99 {p99:.1f} ms"
            )
            break
        reached, cpu_ratio = step, cpu_us / base.closed_loop_cpu_us
    if not reached:
        return (
            f"open loop: not even {OPEN_LOOP_STEPS[0]:.1f} C was answered in full (closed loop: "
            f"{base.closed_loop_cpu_us:.0f} us of CPU per request){failure}"
        )
    return (
        f"open loop: every request answered up to {reached:.1f} C, at {cpu_ratio:.2f}x the closed "
        f"loop's CPU per request ({base.closed_loop_cpu_us:.0f} us){failure}"
    )


def scenario_overload(base: Baseline, server: Server) -> list[Line]:
    lines = []
    for multiple in (0.7, 2.0, 4.0):
        rss_before = server.rss_mb()
        cpu_before = cpu_seconds(server.pid)  # the service and its admission proxy
        result = load(server.port, [classify_request()], base.capacity * multiple, 10)
        cpu_per_offered_us = (cpu_seconds(server.pid) - cpu_before) / max(1, result.sent) * 1e6
        rss_after = server.rss_mb()
        statuses = set(result.statuses)
        p99 = result.percentile(0.99) * 1000
        goodput = result.goodput / base.capacity
        if multiple < 1:
            passed = result.ok == result.sent and p99 <= 10 * base.unloaded_p99_ms
        else:
            passed = (
                statuses <= {200, 429, 503}
                and not result.errors
                and result.rejected_without_retry_after == 0
                and goodput >= 0.8
                and p99 <= 10 * base.unloaded_p99_ms
            )
        lines.append(
            Line(
                f"offered {multiple:g} C",
                f"goodput {goodput:.2f} C, p99 admitted {p99:.1f} ms "
                f"({p99 / base.unloaded_p99_ms:.1f}x unloaded), "
                f"statuses {dict(result.statuses)}, client errors {dict(result.errors)}, "
                f"server CPU {cpu_per_offered_us:.0f} us per offered request, "
                f"RSS {rss_before:.0f} -> {rss_after:.0f} MB",
                passed,
                result.summary(),
            )
        )
    # The verdicts stay ratios to C as measured first; C measured again here says how far the
    # VM's speed moved meanwhile (on a noisy host it moves the goodput ratios by tens of percent).
    again, _ = closed_loop_capacity(server)
    last = lines[-1]
    last.figure += f"; C measured again after these lines: {again:.0f} req/s ({again / base.capacity:.2f} C)"
    last.data["capacity_after"] = again
    return lines


def scenario_adversarial(base: Baseline, server: Server) -> list[Line]:
    sys.path.insert(0, str(REPO))
    from runtime.text import normalize
    from service.settings import Settings
    from tests.runtime.adversarial_texts import adversarial, ordinary_html, paired_ratio

    ordinary = ordinary_html()
    texts = adversarial()
    # each text timed back to back with the ordinary one, median of 9 rounds (paired_ratio)
    worst_name, ratio = max(
        ((name, paired_ratio(normalize, t, ordinary)) for name, t in texts.items()), key=lambda x: x[1]
    )
    batch = Settings().max_batch_size
    started = time.process_time()
    for _ in range(batch):
        normalize(texts[worst_name])
    held = time.process_time() - started
    return [
        Line(
            "adversarial 20 KB text",
            f"worst {worst_name!r} costs {ratio:.2f}x an ordinary 20 KB e-mail; "
            f"a batch of {batch} holds a core {held:.3f} s",
            ratio <= 3 and held <= 1.0,
        )
    ]


def _stall(port: int, count: int) -> list[socket.socket]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 1024)), hard))
    sockets = []
    head = (
        b"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )
    for _ in range(count):
        try:
            sock = socket.create_connection((HOST, port), timeout=2)
            sock.sendall(head)
            sockets.append(sock)
        except OSError:
            break
    return sockets


def scenario_stalled_uploads(base: Baseline, server: Server) -> list[Line]:
    lines = []
    rate = base.capacity * 0.5
    reference = load(server.port, [classify_request()], rate, 6)
    ref_p99 = reference.percentile(0.99) * 1000
    for count in (64, 1000):
        stalled = _stall(server.port, count)
        try:
            result = load(server.port, [classify_request()], rate, 8)
        finally:
            for sock in stalled:
                sock.close()
        success = result.ok / max(1, result.sent)
        p99 = result.percentile(0.99) * 1000
        lines.append(
            Line(
                f"{count} stalled uploads",
                f"{len(stalled)} held open; normal clients at 0.5 C: {success:.1%} answered 200, "
                f"p99 {p99:.1f} ms ({p99 / ref_p99:.1f}x the same load without them)",
                success >= 0.99 and p99 <= 2 * ref_p99,
                result.summary(),
            )
        )
    return lines


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed this (non-blocking) connection, with or without an answer first
    (a 408 before the close is still a close)."""
    try:
        for _ in range(64):  # an answer is a few hundred bytes; bounded either way
            if sock.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    return False


def scenario_slowloris(base: Baseline, server: Server) -> list[Line]:
    """1,000 connections that send a header byte a second: does the server ever close them?"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    sockets = []
    for _ in range(1000):
        try:
            sock = socket.create_connection((HOST, server.port), timeout=2)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            sock.setblocking(False)
            sockets.append(sock)
        except OSError:
            break
    idle = []  # connections that say nothing at all
    for _ in range(200):
        try:
            sock = socket.create_connection((HOST, server.port), timeout=2)
        except OSError:  # a server may stop accepting; what it did accept still counts
            break
        sock.setblocking(False)
        idle.append(sock)
    closed_slow = closed_idle = 0
    try:
        for _ in range(15):  # 15 s, a byte a second
            time.sleep(1)
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"a")
        result = load(server.port, [classify_request()], base.capacity * 0.3, 4)
        for group, counter in ((sockets, "slow"), (idle, "idle")):
            n = sum(_closed_by_server(sock) for sock in group)
            if counter == "slow":
                closed_slow = n
            else:
                closed_idle = n
    finally:
        for sock in sockets + idle:
            sock.close()
    success = result.ok / max(1, result.sent)
    return [
        Line(
            "slowloris and idle connections",
            f"after 15 s the server had closed {closed_slow} of {len(sockets)} header-dripping and "
            f"{closed_idle} of {len(idle)} silent connections; normal clients {success:.1%} answered",
            closed_slow == len(sockets) and closed_idle == len(idle) and success >= 0.99,
        )
    ]


def scenario_headers(base: Baseline, server: Server) -> list[Line]:
    big = _parse(
        _raw(
            server.port,
            http_request("GET", "/healthz", headers={"X-Big": "a" * 1_000_000, "Connection": "close"}),
        )
    )
    many = _parse(
        _raw(
            server.port,
            http_request(
                "GET", "/healthz", headers={**{f"X-H{i}": "1" for i in range(10_000)}, "Connection": "close"}
            ),
        )
    )
    garbage = _parse(_raw(server.port, b"NOT HTTP AT ALL\r\n\r\n"))
    lines = []
    # 0 = the server closed (reset) while the oversized request was still being sent: refused too.
    for name, (status, _headers, _body), accepted in (
        ("1 MB header", big, {431, 0}),
        ("10,000 headers", many, {431, 0}),
        ("malformed request line", garbage, {400}),
    ):
        answer = f"answered {status}" if status else "reset while sending (refused, nothing served)"
        lines.append(Line(name, answer, status in accepted))
    # The parser's answers come from the HTTP server before the application sees a request.
    shapes = [headers.get("content-type", "no body") for status, headers, _ in (big, many, garbage) if status]
    lines.append(
        Line(
            "HTTP parser errors in the JSON error shape",
            f"content types of the server's own answers: {', '.join(shapes) or 'none'}",
            all(shape.startswith("application/json") for shape in shapes),
        )
    )
    return lines


MALFORMED: list[tuple[str, bytes, int]] = [
    ("not JSON", http_request("POST", "/v1/classify", b"{nope", {"Content-Type": "application/json"}), 422),
    ("wrong content type", http_request("POST", "/v1/classify", b"{}", {"Content-Type": "text/xml"}), 415),
    (
        "invalid UTF-8",
        http_request("POST", "/v1/classify", b'{"text": "\xff"}', {"Content-Type": "application/json"}),
        400,
    ),
    ("empty text", classify_request(" "), 422),
    ("text too long", classify_request("a" * 20_001), 422),
    (
        "batch too large",
        http_request(
            "POST",
            "/v1/classify",
            json.dumps({"texts": ["a"] * 10_000}).encode(),
            {"Content-Type": "application/json"},
        ),
        422,
    ),
    (
        "JSON array body",
        http_request("POST", "/v1/classify", b"[1,2,3]", {"Content-Type": "application/json"}),
        422,
    ),
    (
        "deeply nested JSON",
        http_request(
            "POST", "/v1/classify", b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"}
        ),
        422,
    ),
    (
        "body over the limit",
        http_request(
            "POST", "/v1/classify", b"", {"Content-Type": "application/json", "Content-Length": str(10**9)}
        ),
        413,
    ),
    ("unknown route", http_request("GET", "/nope"), 404),
    ("wrong method", http_request("DELETE", "/v1/classify"), 405),
    (
        "v2 infer, wrong datatype",
        http_request(
            "POST",
            "/v2/models/scam-classifier/infer",
            json.dumps(
                {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
            ).encode(),
            {"Content-Type": "application/json"},
        ),
        422,
    ),
]


def scenario_malformed(base: Baseline, server: Server) -> list[Line]:
    wrong = []
    for name, request, expected in MALFORMED:
        status, _, body = _parse(
            _raw(server.port, request.replace(b"Host: 127.0.0.1", b"Host: 127.0.0.1\r\nConnection: close", 1))
        )
        try:
            shape = {"error", "code", "status", "request_id"} <= set(json.loads(body))
        except ValueError:
            shape = False
        if status != expected or not shape:
            wrong.append(f"{name}: {status} (want {expected}){'' if shape else ', not the JSON error shape'}")
    return [
        Line(
            "malformed-input table",
            f"{len(MALFORMED) - len(wrong)} of {len(MALFORMED)} as expected"
            + (f"; {'; '.join(wrong)}" if wrong else ""),
            not wrong,
        )
    ]


def scenario_forwarded(base: Baseline, server: Server) -> list[Line]:
    """Behind one proxy (hops 1), invented left-hand X-Forwarded-For entries must not buy requests."""
    lines = []
    with running(SCAMGUARD_RATE_LIMIT="20/second", SCAMGUARD_FORWARDED_HOPS="1") as limited:
        rng = random.Random(15)  # noqa: S311 - test data
        requests = [
            classify_request(
                headers={
                    "X-Forwarded-For": f"{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(256)}."
                    f"{rng.randrange(256)}, 203.0.113.7"
                }
            )
            for _ in range(2000)
        ]
        result = load(limited.port, requests, 1000, 3)
        allowed = 20 * 3 + 20  # the limit over 3 s, plus one window of burst
        lines.append(
            Line(
                "invented X-Forwarded-For",
                f"3,000 requests from one client with 2,000 invented left-hand entries: "
                f"{result.ok} answered 200 "
                f"(limit 20/s allows <= {allowed}), {result.statuses.get(429, 0)} got 429",
                result.ok <= allowed,
            )
        )
    return lines


MANY_CLIENTS = 100_000


def scenario_many_clients(base: Baseline, server: Server) -> list[Line]:
    """Throughput with 100,000 distinct clients held by the limiter against one client, closed loop.

    First every one of the 100,000 addresses (X-Forwarded-For behind one proxy) gets requests, so
    the limiter holds them all (its store keeps clients until it is full, not per window); then
    rounds alternate one client and the 100,000 in a cycle, and the line gives the median of the
    ratios paired by round (an open-loop rate near C would measure saturation noise instead).
    """
    body = json.dumps({"text": EMAIL}).encode()
    with running(SCAMGUARD_RATE_LIMIT="1000000/hour", SCAMGUARD_FORWARDED_HOPS="1") as limited:
        rss_before = limited.rss_mb()
        # One run long enough for the whole cycle (wrk's script starts it afresh on every run, and
        # calls request() once before it sends: one more request than addresses is needed).
        presented, seconds = 0, max(5, math.ceil(MANY_CLIENTS / base.capacity * 1.3))
        for _ in range(3):  # about 50 s at 2,500 req/s; a slower run is retried, 3 min at most
            presented = wrk.run(
                limited.port, 32, seconds, "/v1/classify", body,
                forwarded_for_clients=MANY_CLIENTS, max_non_2xx_share=SHED_ALLOWED,
            ).requests  # fmt: skip
            if presented > MANY_CLIENTS:
                break
            seconds = min(180, math.ceil(seconds * 1.5 * MANY_CLIENTS / max(presented, 1)))
        ratios = []
        for r in range(3):
            runs = {}
            for clients in (1, MANY_CLIENTS) if r % 2 == 0 else (MANY_CLIENTS, 1):
                runs[clients] = wrk.run(
                    limited.port, 32, 5, "/v1/classify", body,
                    forwarded_for_clients=clients, max_non_2xx_share=SHED_ALLOWED,
                ).ok_per_second  # fmt: skip
            ratios.append(runs[MANY_CLIENTS] / runs[1])
        rss_after = limited.rss_mb()
    ratio = statistics.median(ratios)
    return [
        Line(
            "100,000 distinct clients",
            f"{presented:,} requests from {min(presented - 1, MANY_CLIENTS):,} addresses first; then req/s "
            f"{ratio:.2f}x that of one client (rounds {' '.join(f'{x:.2f}' for x in ratios)}); "
            f"RSS {rss_before:.0f} -> {rss_after:.0f} MB",
            presented > MANY_CLIENTS and ratio >= 0.9 and rss_after - rss_before < 64,
        )
    ]


def scenario_model_missing(base: Baseline, server: Server) -> list[Line]:
    missing = Server(env={"SCAMGUARD_MODEL_DIR": "/nonexistent/model"}, wait_ready=False).start()
    try:
        ready = get(missing.port, "/readyz")
        live = get(missing.port, "/healthz")
        infer = _parse(_raw(missing.port, classify_request(headers={"Connection": "close"})))
    finally:
        missing.stop()
    passed = (
        ready[0] == 503
        and "retry-after" in ready[1]
        and infer[0] == 503
        and live[0] == 200
        and b"/nonexistent" not in ready[2]
    )
    return [
        Line(
            "model missing",
            f"/healthz {live[0]}, /readyz {ready[0]} (Retry-After {ready[1].get('retry-after')}), "
            f"classify {infer[0]}; path hidden: {b'/nonexistent' not in ready[2]}",
            passed,
        )
    ]


def scenario_redis(base: Baseline, server: Server) -> list[Line]:
    redis = shutil.which("redis-server")
    if redis is None:
        return [
            Line("redis hung / killed", "redis-server is not installed (apt-get install redis-server)", None)
        ]
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [redis, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)
        with running(
            SCAMGUARD_RATE_LIMIT="1000000/second", SCAMGUARD_RATE_LIMIT_STORAGE_URI=f"redis://{HOST}:{port}"
        ) as limited:
            rate = base.capacity * 0.3
            healthy = load(limited.port, [classify_request()], rate, 5)
            proc.send_signal(signal.SIGSTOP)
            hung = load(limited.port, [classify_request()], rate, 6)
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(5)
            killed = load(limited.port, [classify_request()], rate, 5)
        added_hung = (hung.percentile(0.99) - healthy.percentile(0.99)) * 1000
        added_killed = (killed.percentile(0.99) - healthy.percentile(0.99)) * 1000
        failures = (hung.sent - hung.ok) + (killed.sent - killed.ok)
        return [
            Line(
                "redis hung / killed",
                f"p99 {healthy.percentile(0.99) * 1000:.1f} ms healthy; "
                f"added {added_hung:.1f} ms hung (SIGSTOP), "
                f"{added_killed:.1f} ms killed; {failures} requests not answered 200",
                added_hung <= 50 and added_killed <= 50 and failures == 0,
            )
        ]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(5)


def scenario_sigterm(base: Baseline, server: Server) -> list[Line]:
    victim = Server(env={"SCAMGUARD_SHUTDOWN_DRAIN_DELAY_SECONDS": "1"}).start()

    async def run() -> Result:
        task = asyncio.ensure_future(
            open_loop(HOST, victim.port, [classify_request()], base.capacity * 0.5, 5)
        )
        await asyncio.sleep(2)
        assert victim.process is not None
        victim.process.send_signal(signal.SIGTERM)
        return await task

    try:
        result = run_load(run())
    finally:
        code = victim.stop()
    lost_kinds = {kind: result.errors[kind] for kind in ("reset", "closed_mid_response", "timeout")}
    lost_kinds |= {f"status {s}": n for s, n in result.statuses.items() if s >= 500 and s != 503}
    lost = sum(lost_kinds.values())
    # Sent on a keep-alive connection the server was closing, not a byte answered: never read, so
    # not an admitted request; a load balancer retries these elsewhere. Reported, not counted lost.
    raced = result.errors.get("closed_before_response", 0)
    lost_detail = f" ({', '.join(f'{n} {kind}' for kind, n in lost_kinds.items() if n)})" if lost else ""
    return [
        Line(
            "SIGTERM under load",
            f"{result.ok} answered 200, {lost} admitted requests lost{lost_detail}, "
            f"{raced} raced a closing keep-alive connection, {result.errors.get('connect', 0)} refused "
            f"after the listener closed, exit code {code}",
            lost == 0 and code == 0,
        )
    ]


def scenario_soak(base: Baseline, server: Server, seconds: float) -> list[Line]:
    rate = base.capacity * 0.7
    rss = []
    errors = 0
    kinds: collections.Counter[str] = collections.Counter()  # why requests were not answered 200
    sent = ok = 0
    errors_by_round: list[int] = []  # when they happened: a stall of the host, or a trend
    step = 30.0
    rounds = max(1, int(seconds // step))
    for _ in range(rounds):
        result = load(server.port, [classify_request()], rate, step)
        sent += result.sent
        ok += result.ok
        errors += result.sent - result.ok  # every request not answered 200, whatever the reason
        errors_by_round.append(result.sent - result.ok)
        kinds.update(result.errors)
        kinds.update({f"status {code}": n for code, n in result.statuses.items() if code != 200})
        rss.append(server.rss_mb())
    drift = (rss[-1] - rss[0]) / rss[0] if len(rss) > 1 else 0.0
    return [
        Line(
            f"soak {rounds * step:.0f} s at 0.7 C",
            f"{ok} of {sent} answered 200, {errors} errors {dict(kinds.most_common())}; "
            f"RSS {rss[0]:.0f} -> {rss[-1]:.0f} MB ({drift:+.1%}); "
            f"errors per {step:.0f} s: {errors_by_round}",
            errors == 0 and abs(drift) < 0.05,
            {"errors_by_round": errors_by_round, "rss_mb": rss},
        )
    ]


SCENARIOS: dict[str, Callable[[Baseline, Server], list[Line]]] = {
    "overload": scenario_overload,
    "adversarial": scenario_adversarial,
    "stalled": scenario_stalled_uploads,
    "slowloris": scenario_slowloris,
    "headers": scenario_headers,
    "malformed": scenario_malformed,
    "forwarded": scenario_forwarded,
    "clients": scenario_many_clients,
    "model-missing": scenario_model_missing,
    "redis": scenario_redis,
    "sigterm": scenario_sigterm,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reliability", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--only", nargs="*", choices=[*SCENARIOS, "soak"], help="run these scenarios only")
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="0 skips the soak")
    parser.add_argument("--json", action="store_true", help="also print every line's data as JSON")
    parser.add_argument(
        "--admission-proxy",
        choices=["haproxy", "off"],
        default="haproxy",
        help="SCAMGUARD_ADMISSION_PROXY of the service under test (haproxy: as the image runs it)",
    )
    args = parser.parse_args(argv)
    if (
        args.admission_proxy == "haproxy"
        and shutil.which("haproxy", path=f"{os.environ['PATH']}:/usr/sbin") is None
    ):
        print(
            "haproxy is missing (apt-get install haproxy); or run with --admission-proxy off", file=sys.stderr
        )
        return 2
    # Every service this command starts inherits it (Server.start passes the environment on).
    os.environ["SCAMGUARD_ADMISSION_PROXY"] = args.admission_proxy
    if shutil.which("wrk") is None:
        print(
            "wrk is missing (apt-get install wrk): it measures the capacity the scenarios are scaled to",
            file=sys.stderr,
        )
        return 2
    lines: list[Line] = []
    with running() as server:
        base = measure_baseline(server)
        print(
            f"admission proxy: {args.admission_proxy}; "
            f"capacity C = {base.capacity:.0f} req/s (closed loop, 32 connections); unloaded p50 "
            f"{base.unloaded_p50_ms:.2f} ms, p99 {base.unloaded_p99_ms:.2f} ms; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        print(open_loop_capacity(base, server), flush=True)
        for name, scenario in SCENARIOS.items():
            if args.only and name not in args.only:
                continue
            for line in scenario(base, server):
                lines.append(line)
                print(line.text(), flush=True)
        if args.soak_seconds > 0 and (not args.only or "soak" in args.only):
            for line in scenario_soak(base, server, args.soak_seconds):
                lines.append(line)
                print(line.text(), flush=True)
    if args.json:
        print(json.dumps([line.__dict__ for line in lines], indent=1, default=str))
    failed = sum(line.passed is False for line in lines)
    print(f"{len(lines) - failed} of {len(lines)} lines pass; load average {os.getloadavg()[0]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
