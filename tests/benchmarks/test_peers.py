"""The peer benchmark: its table and ratios from known figures, and a real run of the two systems
that need no model-server install (this API and the raw ASGI ceiling)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import peers
from benchmarks.reliability import REPO
from tests.tools import missing


def figures(rps_32: float, batch: float = float("nan")) -> peers.Figures:
    return peers.Figures(
        cold_start_s=1.0,
        rps_1=rps_32 / 4,
        p50_1_ms=0.5,
        p99_1_ms=1.0,
        rps_32=rps_32,
        p50_32_ms=5.0,
        p99_32_ms=12.0,
        batch_emails_s=batch,
        cpu_us_per_request=300.0,
        rss_mb=100.0,
        open_loop={rate: (1.0, 10.0, 250.0) for rate in peers.OPEN_LOOP_RATES},
    )


def test_report_gives_medians_ratios_and_noise(capsys: pytest.CaptureFixture[str]) -> None:
    peers.report(
        {
            "scamguard": [figures(2000, batch=5000), figures(3000, batch=7000), figures(2500, batch=6000)],
            "mlserver": [figures(250), figures(260), figures(240)],
        }
    )
    out = capsys.readouterr().out
    assert "| scamguard | 625 | 0.50 | 1.00 | 2,500 | 5.0 | 12.0 | 6,000 |" in out
    assert "| 100.0%, 10, 250 | 100.0%, 10, 250 |" in out  # open loop: 2xx share, p99, CPU per answer
    assert "scamguard / mlserver: 10.00x req/s at 32 connections" in out
    assert "scamguard batch of 32: 2.40x the single-e-mail throughput in e-mails/s" in out
    assert "  scamguard: 40% (2,000 3,000 2,500)" in out
    assert re.search(r"^load average [\d.]+ [\d.]+ [\d.]+$", out, re.MULTILINE)


def test_every_peer_is_served_the_same_email() -> None:
    for peer in peers.PEERS.values():
        path, body = peer.single("hello")
        assert path.startswith("/")
        assert b"hello" in body
        if peer.batch is not None:
            assert peer.batch(["a", "b"])[1].count(b'"a"') == 1
    # every model server loads the same pickled pipeline: one scikit-learn version for all
    versions = {p for peer in peers.PEERS.values() for p in peer.packages if p.startswith("scikit-learn")}
    assert versions == {peers.SKLEARN}


@pytest.mark.slow
def test_a_real_run_of_this_api_against_the_ceiling(tmp_path: Path) -> None:
    for tool in ("wrk", "uv"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (scripts/setup.sh installs it)")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.peers", "--rounds", "1", "--seconds", "2",
         "--only", "scamguard", "asgi-constant", "--workdir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    row = re.search(r"^\| scamguard \| ([\d,]+) \| [\d.]+ \| [\d.]+ \| ([\d,]+) \|", out, re.MULTILINE)
    assert row, out
    assert int(row.group(2).replace(",", "")) > 0
    assert re.search(r"^scamguard / asgi-constant: [\d.]+x req/s at 32 connections$", out, re.MULTILINE)
    assert re.search(r"^scamguard batch of 32: [\d.]+x", out, re.MULTILINE)
