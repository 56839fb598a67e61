"""Same-run A/B of the service against another revision of it (e.g. before a server or pipeline change).

    uv run --project service python -m benchmarks.server_ab --ref e65db1c [--rounds 3]

The reference revision is checked out into a temporary git worktree with its own virtualenv, made
from that revision's `service/requirements.lock` (so each side runs the dependencies it ships).
Each round starts both servers in turn (`python -m service`, pinned to CPU 0 when there are two or
more CPUs), warms each for 2 s, then runs `wrk -t1 -c32` on: `/v1/classify` with one ~2 KB e-mail
(8 s), a batch of 32 of them (8 s) and `/healthz` (5 s), and stops the server by its PID. Rounds
interleave the two (alternating which goes first) so that drift on a shared machine hits both; the
table gives each round and the median, then the ratio of the two sides paired by round, with the
load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks import wrk
from benchmarks.reliability import EMAIL, HOST, REPO, free_port, get
from benchmarks.wrk import WrkResult

BATCH = 32


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


def measure(tree: Path, python: str) -> dict[str, WrkResult]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree), "SCAMGUARD_HOST": HOST, "SCAMGUARD_PORT": str(port),
           "SCAMGUARD_LOG_LEVEL": "WARNING", "SCAMGUARD_RATE_LIMIT": ""}  # fmt: skip
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else []
    process = subprocess.Popen([*pin, python, "-m", "service"], env=env, cwd=tree, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 30
        while get(port, "/readyz")[0] != 200:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"the service in {tree} did not come up")
            time.sleep(0.1)
        single, batch = json.dumps({"text": EMAIL}).encode(), json.dumps({"texts": [EMAIL] * BATCH}).encode()
        wrk.run(port, 32, 2, "/v1/classify", single)
        return {
            "classify": wrk.run(port, 32, 8, "/v1/classify", single),
            "batch": wrk.run(port, 32, 8, "/v1/classify", batch),
            "healthz": wrk.run(port, 32, 5, "/healthz"),
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.server_ab", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--ref", required=True, help="git revision to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, WrkResult]]] = {}
    with reference_checkout(args.ref) as (tree, python):
        sides = [(f"ref {args.ref}", tree, python), ("this checkout", REPO, sys.executable)]
        for r in range(args.rounds):
            # Alternate which side goes first, so that neither always runs on a warmer machine.
            for name, root, interpreter in sides if r % 2 == 0 else sides[::-1]:
                figures = measure(root, interpreter)
                results.setdefault(name, []).append(figures)
                print(
                    f"round {r + 1} {name:<20} "
                    + "  ".join(
                        f"{k} {f.requests_per_second:7.0f}/s p99 {f.p99_ms:6.1f} ms"
                        for k, f in figures.items()
                    ),
                    flush=True,
                )
    print("\n| side | endpoint | req/s per round | median req/s | emails/s | median p99 ms |")
    print("|---|---|---|---:|---:|---:|")
    for name, rounds in results.items():
        for endpoint in ("classify", "batch", "healthz"):
            values = [figures[endpoint] for figures in rounds]
            rps = statistics.median(f.requests_per_second for f in values)
            emails = rps * (BATCH if endpoint == "batch" else 1)
            per_round = " ".join(f"{f.requests_per_second:.0f}" for f in values)
            p99 = statistics.median(f.p99_ms for f in values)
            label = f"batch of {BATCH}" if endpoint == "batch" else endpoint
            email_cell = f"{emails:,.0f}" if endpoint != "healthz" else ""
            print(f"| {name} | {label} | {per_round} | {rps:,.0f} | {email_cell} | {p99:.1f} |")
    ref_rounds, our_rounds = results[f"ref {args.ref}"], results["this checkout"]
    print("\nPaired by round (this checkout / ref; the same minutes of a noisy machine):")
    for endpoint in ("classify", "batch", "healthz"):
        for what, key in (("req/s", "requests_per_second"), ("p99", "p99_ms")):
            ratios = paired_ratios(
                [getattr(f[endpoint], key) for f in ref_rounds],
                [getattr(f[endpoint], key) for f in our_rounds],
            )
            print(
                f"  {endpoint:<9} {what:<6} median {statistics.median(ratios):.3f}  "
                f"(rounds {' '.join(f'{x:.2f}' for x in ratios)})"
            )
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


def paired_ratios(reference: list[float], ours: list[float]) -> list[float]:
    """Per round, ours / reference: each ratio compares two runs minutes apart, so a machine that
    drifts by tens of percent over the run moves both sides of it (the medians of each side do not
    cancel that drift)."""
    if len(reference) != len(ours):
        raise ValueError(f"{len(reference)} reference rounds against {len(ours)} of ours")
    return [b / a if a else float("nan") for a, b in zip(reference, ours, strict=True)]


if __name__ == "__main__":
    raise SystemExit(main())
