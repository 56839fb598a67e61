"""Same-run A/B of the service against another revision of it (e.g. before a server or pipeline change).

    uv run --project service python -m benchmarks.server_ab --ref e65db1c [--rounds 15] [--seconds 3]
    uv run --project service python -m benchmarks.server_ab --ref HEAD \
        --ref-env SCAMGUARD_BATCH_SCHEDULING=false   # a setting, on the same code

The reference revision is checked out into a temporary git worktree with its own virtualenv, made
from that revision's `service/requirements.lock` (so each side runs the dependencies it ships).
Both servers (`python -m service`, pinned to CPU 0 when there are two or more CPUs) start once and
stay up; each is warmed for 2 s. Then, per endpoint - `/v1/classify` with one ~2 KB e-mail, a batch
of 32 of them, `/healthz` - each round runs `wrk -t1 -c32` for a few seconds on one side and right
after on the other (alternating which goes first). On a shared VM whose speed drifts by tens of
percent within minutes, only runs seconds apart compare: the ratio is taken per round, and its
median is the figure.

Then the finer figure: both servers loaded at once, on the same core, by two wrk (16 connections
each), for a few seconds per round. Each server's CPU time per request (from /proc) is taken over
the same seconds of the same core, so the host's drift, which moves throughput by tens of percent
between runs, moves both sides alike: on this project's VM the rounds of that ratio stay within
a few percent, and two copies of the same code measure 0.99-1.00. The inverse of that ratio is the
throughput one server would have against the other alone on the core (it is CPU-bound at 32
connections); p99 comes from the runs alone, above.

`--open-loop-rates 1000 1400` adds single e-mails at fixed arrival rates (benchmarks.openloop),
each side alone in turn, 3 rounds of 6 s: p99 from the due time and CPU per request, which under
arrivals that do not wait for answers is not what a saturated closed loop shows.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks import wrk
from benchmarks.openloop import http_request, open_loop
from benchmarks.openloop import run as run_load
from benchmarks.procfs import context_switches, cpu_seconds
from benchmarks.reliability import EMAIL, HOST, REPO, free_port, get
from benchmarks.wrk import WrkResult

BATCH = 32
ENDPOINTS = {
    "classify": ("/v1/classify", json.dumps({"text": EMAIL}).encode()),
    "batch": ("/v1/classify", json.dumps({"texts": [EMAIL] * BATCH}).encode()),
    "healthz": ("/healthz", None),
}


@contextlib.contextmanager
def reference_checkout(revision: str) -> Iterator[tuple[Path, str]]:
    """A worktree of `revision` and the python of a virtualenv with its locked service dependencies."""
    workdir = Path(tempfile.mkdtemp(prefix="scamguard-ab-"))
    tree = workdir / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), revision], check=True)  # noqa: S603, S607
    try:
        uv = shutil.which("uv") or "uv"
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(workdir / "venv")], check=True)  # noqa: S603
        python = str(workdir / "venv" / "bin" / "python")
        lock = tree / "service" / "requirements.lock"
        subprocess.run([uv, "pip", "install", "-q", "--python", python, "-r", str(lock)], check=True)  # noqa: S603
        yield tree, python
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)  # noqa: S603, S607
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Run:
    wrk: WrkResult
    cpu_ms_per_request: float
    switches_per_request: float  # context switches of the server's threads


@contextlib.contextmanager
def running_service(
    tree: Path, python: str, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[int, int]]:
    """`python -m service` from `tree`, ready and warmed; yields (port, pid) and stops it by its PID."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree), "SCAMGUARD_HOST": HOST, "SCAMGUARD_PORT": str(port),
           "SCAMGUARD_LOG_LEVEL": "WARNING", "SCAMGUARD_RATE_LIMIT": "", **(extra_env or {})}  # fmt: skip
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else []
    process = subprocess.Popen([*pin, python, "-m", "service"], env=env, cwd=tree, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 30
        while get(port, "/readyz")[0] != 200:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"the service in {tree} did not come up")
            time.sleep(0.1)
        path, body = ENDPOINTS["classify"]
        wrk.run(port, 32, 2, path, body)
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# Behind the admission proxy 32 connections of batches of 32 keep an instance near its latency
# objective (a batch waits for 31 others, ~190 ms here), and its queue timeout may refuse a few.
SHED_ALLOWED = 0.02


def measure(port: int, pid: int, endpoint: str, seconds: int, connections: int = 32) -> Run:
    """One wrk run; its req/s counts 2xx answers only (`Run.wrk.non_2xx` says how many were not)."""
    path, body = ENDPOINTS[endpoint]
    cpu, switches = cpu_seconds(pid), context_switches(pid)
    result = wrk.run(port, connections, seconds, path, body, max_non_2xx_share=SHED_ALLOWED)
    requests = max(1, result.requests)
    cpu, switches = cpu_seconds(pid) - cpu, context_switches(pid) - switches
    served = dataclasses.replace(result, requests_per_second=result.ok_per_second)
    return Run(served, 1000 * cpu / requests, switches / requests)


def measure_together(servers: list[tuple[int, int]], endpoint: str, seconds: int) -> list[Run]:
    """Load every server at once (16 connections each) and return their runs, in order."""
    runs: list[Run | None] = [None] * len(servers)

    def load(i: int, port: int, pid: int) -> None:
        runs[i] = measure(port, pid, endpoint, seconds, connections=16)

    threads = [threading.Thread(target=load, args=(i, *server)) for i, server in enumerate(servers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if any(run is None for run in runs):
        raise RuntimeError(f"a wrk run on {endpoint} failed (see above)")
    return [run for run in runs if run is not None]


Servers = dict[str, tuple[int, int]]  # side -> (port, pid)


def rounds_alone(servers: Servers, rounds: int, seconds: int) -> dict[str, dict[str, list[Run]]]:
    """Per endpoint and round, each side alone on the core, one right after the other."""
    sides = list(servers)
    results: dict[str, dict[str, list[Run]]] = {side: {} for side in sides}
    for endpoint in ENDPOINTS:
        for r in range(rounds):
            # Alternate which side goes first, so that neither always runs on a warmer machine.
            for side in sides if r % 2 == 0 else sides[::-1]:
                results[side].setdefault(endpoint, []).append(measure(*servers[side], endpoint, seconds))
            line = "  ".join(
                f"{side}: {run.wrk.requests_per_second:7.0f}/s p99 {run.wrk.p99_ms:6.1f} ms "
                f"{run.switches_per_request:.2f} switches/req"
                + (f" ({run.wrk.non_2xx} shed)" if run.wrk.non_2xx else "")
                for side, run in ((side, results[side][endpoint][-1]) for side in sides)
            )
            print(f"{endpoint:<9} alone    {r + 1:>2} {line}", flush=True)
    return results


def rounds_together(servers: Servers, rounds: int, seconds: int) -> dict[str, list[float]]:
    """Per endpoint, the CPU-per-request ratio (second side / first) of runs with both loaded at once."""
    (first, second), ratios = list(servers.values()), {}
    for endpoint in ENDPOINTS:
        for r in range(rounds):
            a, b = measure_together([first, second], endpoint, seconds)
            ratios.setdefault(endpoint, []).append(b.cpu_ms_per_request / a.cpu_ms_per_request)
            print(
                f"{endpoint:<9} together {r + 1:>2} CPU ms per request {a.cpu_ms_per_request:.3f} and "
                f"{b.cpu_ms_per_request:.3f}: ratio {ratios[endpoint][-1]:.3f}",
                flush=True,
            )
    return ratios


def rounds_open_loop(servers: Servers, rates: list[float], rounds: int, seconds: float) -> None:
    """At each fixed arrival rate, each side alone in turn: 2xx share, p99 from the due time and
    CPU per request. Closed loop measures a saturated server; real clients arrive on their own
    schedule, and a server's cost per request then differs (fewer requests per wake-up)."""
    path, body = ENDPOINTS["classify"]
    request = http_request("POST", path, body, {"Content-Type": "application/json"})
    sides = list(servers)
    for rate in rates:
        figures: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for r in range(rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                port, pid = servers[side]
                before = cpu_seconds(pid)
                result = run_load(open_loop(HOST, port, [request], rate, seconds))
                cpu_ms = 1000 * (cpu_seconds(pid) - before) / max(1, result.ok)
                p99 = result.percentile(0.99) * 1000
                figures[side].append((p99, cpu_ms))
                print(
                    f"open loop {rate:.0f}/s round {r + 1} {side}: {result.ok} of {result.sent} 2xx, "
                    f"p99 {p99:.1f} ms, CPU {cpu_ms:.3f} ms per request, errors {dict(result.errors)}",
                    flush=True,
                )
        (reference, ours) = sides
        for what, index in (("p99", 0), ("CPU per request", 1)):
            ratios = paired_ratios([f[index] for f in figures[reference]], [f[index] for f in figures[ours]])
            median = statistics.median(ratios)
            print(f"  open loop {rate:.0f}/s {what}, {ours} / {reference}: median {median:.3f}")


def report(alone: dict[str, dict[str, list[Run]]], together: dict[str, list[float]]) -> None:
    reference, ours = alone
    print("\n| side | endpoint | median req/s | emails/s | median p99 ms | context switches per request |")
    print("|---|---|---:|---:|---:|---:|")
    for side, endpoints in alone.items():
        for endpoint, runs in endpoints.items():
            rps = statistics.median(run.wrk.requests_per_second for run in runs)
            emails = {"batch": f"{rps * BATCH:,.0f}", "classify": f"{rps:,.0f}"}.get(endpoint, "")
            p99 = statistics.median(run.wrk.p99_ms for run in runs)
            switches = statistics.median(run.switches_per_request for run in runs)
            label = f"batch of {BATCH}" if endpoint == "batch" else endpoint
            print(f"| {side} | {label} | {rps:,.0f} | {emails} | {p99:.1f} | {switches:.2f} |")
    print(f"\nAlone, paired by round ({ours} / {reference}; runs seconds apart):")
    for endpoint in ENDPOINTS:
        for what, value in (("req/s", "requests_per_second"), ("p99", "p99_ms")):
            ratios = paired_ratios(
                [getattr(run.wrk, value) for run in alone[reference][endpoint]],
                [getattr(run.wrk, value) for run in alone[ours][endpoint]],
            )
            print(
                f"  {endpoint:<9} {what:<6} median {statistics.median(ratios):.3f}  "
                f"(rounds {' '.join(f'{x:.2f}' for x in ratios)})"
            )
    print(f"\nTogether on one core: CPU per request, {ours} / {reference}, and its inverse (throughput):")
    for endpoint, ratios in together.items():
        cost = statistics.median(ratios)
        print(
            f"  {endpoint:<9} cost median {cost:.3f} -> throughput {1 / cost:.3f}  "
            f"(rounds {' '.join(f'{x:.3f}' for x in ratios)})"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.server_ab", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--ref", required=True, help="git revision to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=15, help="paired runs alone, per endpoint")
    parser.add_argument("--together-rounds", type=int, default=10, help="runs together, per endpoint")
    parser.add_argument("--seconds", type=int, default=3, help="length of each wrk run")
    parser.add_argument(
        "--ref-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the reference side only: with --ref HEAD, compares a setting on the same code",
    )
    parser.add_argument(
        "--open-loop-rates",
        type=float,
        nargs="*",
        default=[],
        metavar="PER_SECOND",
        help="also single e-mails at these fixed arrival rates (3 rounds of 6 s each side)",
    )
    args = parser.parse_args()
    ref_env = dict(item.split("=", 1) for item in args.ref_env)
    with contextlib.ExitStack() as stack:
        tree, python = stack.enter_context(reference_checkout(args.ref))
        servers = {
            f"ref {args.ref}": stack.enter_context(running_service(tree, python, ref_env)),
            "this checkout": stack.enter_context(running_service(REPO, sys.executable)),
        }
        alone = rounds_alone(servers, args.rounds, args.seconds)
        together = rounds_together(servers, args.together_rounds, args.seconds)
        report(alone, together)
        rounds_open_loop(servers, args.open_loop_rates, 3, 6.0)
    return 0


def paired_ratios(reference: list[float], ours: list[float]) -> list[float]:
    """Per round, ours / reference: each ratio compares two runs seconds apart, so a machine that
    drifts by tens of percent over the run moves both sides of it (the medians of each side do not
    cancel that drift)."""
    if len(reference) != len(ours):
        raise ValueError(f"{len(reference)} reference rounds against {len(ours)} of ours")
    return [b / a if a else float("nan") for a, b in zip(reference, ours, strict=True)]


if __name__ == "__main__":
    raise SystemExit(main())
