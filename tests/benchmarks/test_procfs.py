"""Reading a process's CPU time and memory from /proc, its descendants included."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.procfs import context_switches, cpu_seconds, rss_mb

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads Linux /proc")


def test_cpu_seconds_counts_this_process_cpu_time() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # bounded busy loop: 0.2 s of CPU
        pass
    spent = cpu_seconds(os.getpid()) - before
    assert 0.1 <= spent <= 1.2  # clock ticks are 10 ms; the upper bound leaves room for other threads


def test_memory_and_cpu_include_child_processes() -> None:
    """A child holding 64 MB and burning 0.3 s of CPU is counted in its parent's figures."""
    code = (
        "import time\n"
        "block = bytearray(64 * 1024 * 1024)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    alone_rss, alone_cpu = rss_mb(os.getpid()), cpu_seconds(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        assert rss_mb(os.getpid()) - alone_rss >= 60
        assert cpu_seconds(os.getpid()) - alone_cpu >= 0.25
    finally:
        child.kill()  # this test's own child, by its handle
        child.wait(timeout=10)


def test_a_process_that_is_gone_counts_as_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    assert rss_mb(child.pid) == 0.0
    assert cpu_seconds(child.pid) == 0.0
    assert context_switches(child.pid) == 0


def test_context_switches_count_a_thread_that_sleeps() -> None:
    """Each sleep gives up the CPU: 20 of them are at least 20 voluntary switches."""
    before = context_switches(os.getpid())
    for _ in range(20):
        time.sleep(0.001)
    assert context_switches(os.getpid()) - before >= 20
