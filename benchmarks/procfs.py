"""What Linux's /proc says about a server process: resident memory and CPU time with its
descendants (a server may run its workers as child processes), and its threads' context switches.
An unreadable entry (a process that just exited) counts as nothing."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _children(pid: int) -> list[int]:
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children.extend(int(child) for child in (task / "children").read_text().split())
    return children


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total = 0.0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total + sum(rss_mb(child) for child in _children(pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) and its descendants so far."""
    total = 0.0
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total + sum(cpu_seconds(child) for child in _children(pid))


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of all the threads of a process so far."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                    total += int(line.split()[1])
    return total
