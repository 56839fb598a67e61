"""The wrk runner's parser, on wrk's own output format (units differ per line)."""

from __future__ import annotations

import pytest

from benchmarks.wrk import parse

OUTPUT = """Running 8s test @ http://127.0.0.1:8080/v1/classify
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    13.51ms    6.02ms  92.10ms   90.12%
    Req/Sec     2.40k   212.33     2.71k    79.00%
  Latency Distribution
     50%  850.00us
     75%   14.77ms
     90%   17.94ms
     99%    1.20s
  19123 requests in 8.01s, 5.10MB read
Requests/sec:   2387.40
Transfer/sec:    652.21KB
"""


def test_parse_reads_rate_percentiles_in_their_units_and_count() -> None:
    result = parse(OUTPUT)
    assert result.requests_per_second == 2387.40
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p99_ms == pytest.approx(1200.0)
    assert result.requests == 19123


def test_parse_refuses_output_without_the_distribution() -> None:
    with pytest.raises(AttributeError):
        parse(OUTPUT.replace("     99%    1.20s\n", ""))
