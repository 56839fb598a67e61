"""The wrk runner: its parser, on wrk's own output format (units differ per line), and its script."""

from __future__ import annotations

import http.server
import itertools
import threading
from typing import ClassVar

import pytest

from benchmarks.wrk import parse, run, script
from tests.tools import require_tool

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


def test_script_posts_the_body_and_cycles_through_distinct_forwarded_addresses() -> None:
    lua = script(b'{"text": "hi"}', forwarded_for_clients=70_000)
    assert 'wrk.method = "POST"' in lua
    assert 'wrk.body = "{\\"text\\": \\"hi\\"}"' in lua
    assert "local clients, client = 70000, 0" in lua
    assert script() == ""  # a plain GET needs no script


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append(self.headers.get("X-Forwarded-For", ""))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_wrk_really_sends_the_distinct_addresses_in_order() -> None:
    """The Lua runs inside wrk: only a real run shows that each request carries the next address."""
    require_tool("wrk")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = run(server.server_address[1], 1, 1, "/", b"{}", forwarded_for_clients=3)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    seen = _RecordingHandler.seen
    assert result.requests >= 3
    assert set(seen) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    cycle = {"10.0.0.1": "10.0.0.2", "10.0.0.2": "10.0.0.3", "10.0.0.3": "10.0.0.1"}
    assert all(cycle[a] == b for a, b in itertools.pairwise(seen))
    # wrk calls request() once before it sends: a run starts at the second address, and covering
    # N addresses takes N + 1 requests (the reliability command's 100,000-clients line counts so)
    assert seen[0] == "10.0.0.2"
