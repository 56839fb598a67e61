"""The admission proxy (`service.admission`): its HAProxy configuration checked by HAProxy itself,
and `python -m service` with SCAMGUARD_ADMISSION_PROXY=haproxy as a real process on loopback.

The shedding tests make the overload, they do not wait for one: a request body larger than HAProxy's
buffer, sent in part, is forwarded and then holds an inference slot until the body timeout, so with
one slot the next inference can only wait and be shed. Nothing here depends on the machine's speed.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import time
from collections.abc import Callable

import pytest

from service.admission import (
    AdmissionProxy,
    AdmissionProxyError,
    Upstream,
    buffer_bytes,
    haproxy_config,
    parse_stats,
)
from service.app import INFERENCE_PATHS
from service.settings import Settings
from tests.service.conftest import HAM_TEXT, read_responses, require_tool, start_on_a_taken_port

pytestmark = pytest.mark.slow
PROXY = {"SCAMGUARD_ADMISSION_PROXY": "haproxy"}


@pytest.fixture(autouse=True)
def _haproxy() -> None:
    require_tool("haproxy")


def _classify(text: str = HAM_TEXT, headers: str = "") -> bytes:
    body = json.dumps({"text": text}).encode()
    return (
        f"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _exchange(port: int, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_responses(sock, 1, timeout)[0]


def _hold_a_slot(port: int, settings: Settings) -> socket.socket:
    """A connection whose inference request holds a slot: HAProxy forwards a body once its buffer is
    full, and the service then waits for the rest (until the body timeout)."""
    sent = buffer_bytes(settings) + 4096
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {sent * 2}\r\n\r\n".encode()
        + b'{"text": "'
        + b"a" * sent
    )
    return sock


# -- the configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"host": "0.0.0.0", "port": 8080, "keep_alive_seconds": 620, "shutdown_grace_seconds": 30},
        {
            "admission_concurrency": 1,
            "admission_queue_length": 1,
            "admission_queue_timeout_seconds": 0.001,
            "max_header_bytes": 1 << 20,
        },
        {"body_timeout_seconds": 0.5, "max_body_bytes": 1024, "max_connections": 1},
    ],
)
def test_haproxy_accepts_the_configuration(overrides: dict[str, object]) -> None:
    """`haproxy -c` on what the service would run, for defaults and for settings at their edges."""
    proxy = AdmissionProxy(Settings(**overrides), "127.0.0.1:40000", INFERENCE_PATHS)  # type: ignore[arg-type]
    proxy.check()


def test_the_upstream_is_a_unix_socket_where_a_tmpfs_is_writable(tmp_path: pathlib.Path) -> None:
    on_socket = Upstream.choose(tmp_path)
    assert on_socket.path is not None
    assert on_socket.path.parent.parent == tmp_path
    assert on_socket.path.parent.stat().st_mode & 0o777 == 0o700  # nobody else may enter it
    assert on_socket.haproxy_address == f"unix@{on_socket.path}"
    AdmissionProxy(Settings(), on_socket.haproxy_address, INFERENCE_PATHS).check()
    on_socket.remove()
    assert list(tmp_path.iterdir()) == []
    on_port = Upstream.choose(tmp_path / "missing")
    assert on_port.path is None
    assert on_port.haproxy_address == f"127.0.0.1:{on_port.port}"


def test_haproxy_check_refuses_a_broken_configuration() -> None:
    """The validator above is trusted only because it fails a broken copy."""
    proxy = AdmissionProxy(Settings(), "127.0.0.1:40000", INFERENCE_PATHS)
    proxy.config = proxy.config.replace("timeout queue", "timeout qeue")
    with pytest.raises(AdmissionProxyError, match="qeue"):
        proxy.check()


def test_the_configuration_queues_only_inference() -> None:
    config = haproxy_config(Settings(admission_concurrency=5), "127.0.0.1:40000", INFERENCE_PATHS, "abns@x")
    routing = [
        line.strip() for line in config.splitlines() if "use_backend" in line or "default_backend" in line
    ]
    assert routing == [
        f"use_backend inference if METH_POST {{ path {' '.join(sorted(INFERENCE_PATHS))} }}",
        "default_backend direct",
    ]
    servers = [line.strip() for line in config.splitlines() if line.strip().startswith("server ")]
    assert servers == ["server python 127.0.0.1:40000 maxconn 5", "server python 127.0.0.1:40000"]


def test_shed_count_is_what_haproxy_answered_itself() -> None:
    header = "# pxname,svname,qcur,req_tot,hrsp_5xx,"
    rows = [
        "api,FRONTEND,,120,30,",
        "inference,python,0,,4,",
        "inference,BACKEND,3,100,30,",
        "direct,BACKEND,0,20,0,",
    ]
    stats = parse_stats("\n".join([header, *rows]) + "\n")
    assert (stats.queued, stats.shed, stats.requests) == (3, 26, 100)


# -- the running service -----------------------------------------------------------------------------


def test_excess_inference_is_shed_with_503_json_and_retry_after(start_server) -> None:
    settings = Settings(admission_concurrency=1)
    server = start_server(
        **PROXY, SCAMGUARD_ADMISSION_CONCURRENCY="1", SCAMGUARD_ADMISSION_QUEUE_TIMEOUT_SECONDS="0.05"
    )
    holder = _hold_a_slot(server.port, settings)
    try:
        # Until the held request reaches the service the slot is free and an inference succeeds;
        # from then on it is shed. Polled, so a slow machine only takes longer (10 s at most).
        deadline = time.monotonic() + 10
        while True:
            status, headers, body = _exchange(server.port, _classify(headers="X-Request-ID: shed-me\r\n"))
            if status != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 503, body
        assert headers["retry-after"] == "1"
        assert headers["content-type"] == "application/json"
        error = json.loads(body)
        assert error["code"] == "overloaded"
        assert (error["status"], error["request_id"]) == (503, "shed-me")
        assert "retry after 1 s" in error["error"]
        # Probes and metrics never queue behind inference: liveness holds while inference sheds.
        assert _exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")[0] == 200
        assert _exchange(server.port, b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")[0] == 200
        metrics = _exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")[2].decode()
        assert "scamguard_admission_shed_total 1.0" in metrics
        assert "scamguard_admission_queued_requests 0.0" in metrics
    finally:
        holder.close()
    assert _exchange(server.port, _classify())[0] == 200  # the slot is free again


def _metric(port: int, name: str) -> float:
    text = _exchange(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")[2].decode()
    (value,) = [line.split()[1] for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(value)


def _poll(until: Callable[[], bool]) -> None:
    """Until the condition holds: a slow machine only takes longer (10 s at most)."""
    deadline = time.monotonic() + 10
    while not until():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def test_with_the_queue_full_inference_is_refused_at_once(start_server) -> None:
    """A full queue refuses without a wait: with a 20 s queue timeout, a request that were queued
    instead would outlast the exchange's 10 s and fail the test."""
    settings = Settings(admission_concurrency=1)
    server = start_server(
        **PROXY,
        SCAMGUARD_ADMISSION_CONCURRENCY="1",
        SCAMGUARD_ADMISSION_QUEUE_LENGTH="1",
        SCAMGUARD_ADMISSION_QUEUE_TIMEOUT_SECONDS="20",
    )
    holder = _hold_a_slot(server.port, settings)
    # The holder is inside Python (counted with the scrape that asks), then one request waits.
    _poll(lambda: _metric(server.port, "scamguard_http_requests_in_flight") == 2)
    waiter = _hold_a_slot(server.port, settings)
    try:
        _poll(lambda: _metric(server.port, "scamguard_admission_queued_requests") == 1)
        status, headers, body = _exchange(server.port, _classify())
        assert (status, headers["retry-after"]) == (503, "1")
        assert json.loads(body)["code"] == "overloaded"
        assert _metric(server.port, "scamguard_admission_shed_total") == 1
    finally:
        holder.close()
        waiter.close()
    assert _exchange(server.port, _classify())[0] == 200


def test_a_stalled_small_upload_holds_no_slot(start_server) -> None:
    """HAProxy waits for a body that fits its buffer before it takes a slot; the stall ends in its
    408, in the API's error shape."""
    server = start_server(**PROXY, SCAMGUARD_ADMISSION_CONCURRENCY="1", SCAMGUARD_BODY_TIMEOUT_SECONDS="2")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as stalled:
        stalled.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.3)
        for _ in range(3):
            assert _exchange(server.port, _classify())[0] == 200
        answer = stalled.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["code"] == "request_timeout"


def test_a_body_over_the_limit_is_refused_before_it_is_sent(start_server) -> None:
    server = start_server(**PROXY, SCAMGUARD_MAX_BODY_BYTES="4096")
    status, headers, body = _exchange(
        server.port, b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000\r\n\r\n"
    )
    assert (status, headers["content-type"]) == (413, "application/json")
    assert json.loads(body)["code"] == "payload_too_large"


def test_the_client_address_is_the_proxys_peer_not_what_the_client_wrote(start_server) -> None:
    """HAProxy appends the address it received the request from: with no balancer in front
    (SCAMGUARD_FORWARDED_HOPS=0) invented X-Forwarded-For entries share one limit; behind one
    balancer, the entry the balancer wrote is the client."""
    alone = start_server(**PROXY, SCAMGUARD_RATE_LIMIT="2/minute")
    statuses = [
        _exchange(alone.port, _classify(headers=f"X-Forwarded-For: 10.0.0.{i}\r\n"))[0] for i in range(4)
    ]
    assert statuses == [200, 200, 429, 429]
    behind = start_server(**PROXY, SCAMGUARD_RATE_LIMIT="2/minute", SCAMGUARD_FORWARDED_HOPS="1")
    statuses = [
        _exchange(behind.port, _classify(headers=f"X-Forwarded-For: 6.6.6.6, 10.0.0.{i % 2}\r\n"))[0]
        for i in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429]


def _children(pid: int) -> list[int]:
    path = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


def test_the_service_exits_when_haproxy_dies(start_server) -> None:
    server = start_server(**PROXY)
    (haproxy,) = _children(server.process.pid)
    os.kill(haproxy, signal.SIGKILL)  # the test's own grandchild, by its PID
    assert server.process.wait(timeout=30) == 3
    assert any("admission proxy (haproxy) exited" in entry["message"] for entry in server.logs())


def test_haproxy_dies_with_the_service(start_server) -> None:
    server = start_server(**PROXY)
    (haproxy,) = _children(server.process.pid)
    server.process.kill()
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while pathlib.Path(f"/proc/{haproxy}").exists() and time.monotonic() < deadline:
        with open(f"/proc/{haproxy}/stat") as stat:  # a zombie until init reaps it is gone too
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    else:
        assert not pathlib.Path(f"/proc/{haproxy}").exists(), "haproxy outlived the service"


def test_a_port_in_use_stops_the_process_with_an_error() -> None:
    _port, result = start_on_a_taken_port(**PROXY)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "admission proxy (haproxy) exited" in result.stderr
    assert "Address already in use" in result.stderr  # HAProxy's own words, above the service's
