"""`python -m service` as a real process on loopback: graceful shutdown under load, drain delay,
a broken artifact that must not crash the process."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pathlib
import signal
import threading
import time
from dataclasses import dataclass

import pytest

from tests.service.conftest import HAM_TEXT, SCAM_TEXT, read_responses, require_tool, start_on_a_taken_port

pytestmark = pytest.mark.slow


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None  # None: connection-level failure (no response)
    error: str = ""


def _load(port: int, body: bytes, stop_at: float, outcomes: list[Outcome], lock: threading.Lock) -> None:
    """One keep-alive client sending requests back to back until the server goes away."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            conn.request("POST", "/v1/classify", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            outcome = Outcome(started, time.monotonic(), response.status)
        except (OSError, http.client.HTTPException) as exc:
            outcome = Outcome(started, time.monotonic(), None, repr(exc))
        with lock:
            outcomes.append(outcome)
        if outcome.status is None:
            conn.close()
            try:  # the server closed this connection; a refused reconnect means the listener is gone
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                conn.connect()
            except OSError:
                return
    conn.close()


@pytest.fixture(params=["off", "haproxy"])
def admission(request: pytest.FixtureRequest) -> dict[str, str]:
    """Both ways the service runs: Python alone on the port, and behind its admission proxy."""
    if request.param == "haproxy":
        require_tool("haproxy")
    return {"SCAMGUARD_ADMISSION_PROXY": request.param}


def test_sigterm_under_load_drains_and_exits_zero(start_server, admission: dict[str, str]) -> None:
    grace = 10
    server = start_server(
        SCAMGUARD_SHUTDOWN_GRACE_SECONDS=str(grace), SCAMGUARD_MAX_INFLIGHT="256", **admission
    )
    # Big batches (~tens of ms each, on the thread pool) so requests are surely in flight at SIGTERM.
    body = json.dumps({"texts": [(SCAM_TEXT + " " + HAM_TEXT) * 12] * 64}).encode()
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 20
    workers = [
        threading.Thread(target=_load, args=(server.port, body, stop_at, outcomes, lock), daemon=True)
        for _ in range(12)
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    sigterm_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    returncode = server.process.wait(timeout=grace + 5)
    exited_after = time.monotonic() - sigterm_at
    for worker in workers:
        worker.join(timeout=25)

    assert returncode == 0, server.log_path.read_text()
    assert exited_after < grace, exited_after
    answered = [o for o in outcomes if o.status is not None]
    failed_connections = [o for o in outcomes if o.status is None]
    # Every request the server answered succeeded: nothing admitted was failed or cut off.
    assert answered
    assert {o.status for o in answered} == {200}, [o.status for o in answered if o.status != 200]
    # Requests running when SIGTERM arrived completed after it (the drain really waited for them).
    drained = [o for o in answered if o.started < sigterm_at < o.ended]
    assert drained, "no request was in flight at SIGTERM; make the load heavier"
    # Connection-level failures only happen once shutdown began (closed idle keep-alive / refused).
    assert all(o.started >= sigterm_at - 0.2 for o in failed_connections), failed_connections
    logs = server.logs()
    messages = [entry["message"] for entry in logs]
    assert any(m.startswith("draining") for m in messages)
    assert not [e for e in logs if e["level"] == "ERROR"], [e for e in logs if e["level"] == "ERROR"]
    assert SCAM_TEXT[:30] not in server.log_path.read_text()  # email text never logged


def test_drain_delay_keeps_serving_with_readiness_failing(start_server, admission: dict[str, str]) -> None:
    server = start_server(
        SCAMGUARD_SHUTDOWN_DRAIN_DELAY_SECONDS="1.5", SCAMGUARD_SHUTDOWN_GRACE_SECONDS="5", **admission
    )
    assert server.request("GET", "/readyz")[0] == 200
    sigterm_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    status, body = server.request("GET", "/readyz")
    assert status == 503
    assert json.loads(body)["code"] == "draining"
    assert server.request("GET", "/healthz")[0] == 200
    assert server.request("POST", "/v1/classify", json.dumps({"text": HAM_TEXT}).encode())[0] == 200
    assert server.process.wait(timeout=10) == 0
    assert 1.4 < time.monotonic() - sigterm_at < 5


def test_broken_artifact_keeps_process_up(start_server, tmp_path: pathlib.Path) -> None:
    server = start_server(SCAMGUARD_MODEL_DIR=str(tmp_path / "no-model-here"))
    time.sleep(0.5)
    assert server.process.poll() is None
    status, body = server.request("GET", "/readyz")
    assert status == 503
    error = json.loads(body)
    assert error["code"] == "not_ready"
    assert "does not exist" in error["error"]
    assert server.request("POST", "/v1/classify", json.dumps({"text": HAM_TEXT}).encode())[0] == 503
    _, metrics = server.request("GET", "/metrics")
    assert b'scamguard_model_load_failures_total{reason="missing"} 1.0' in metrics
    assert b"scamguard_model_ready 0.0" in metrics
    assert any(e["level"] == "ERROR" and "model load failed" in e["message"] for e in server.logs())
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=10) == 0


def test_responses_on_the_wire(start_server) -> None:
    """The server joins each response's writes into one send: pipelined requests, big answers,
    errors and Connection: close must still arrive whole and in order."""
    import socket

    server = start_server()
    classify = json.dumps({"text": HAM_TEXT}).encode()
    requests = [
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: first\r\n\r\n",
        b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(classify)}\r\n\r\n".encode()
        + classify,
        b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
        b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: last\r\nConnection: close\r\n\r\n",
    ]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"".join(requests))  # pipelined: all at once
        responses = read_responses(sock, len(requests))
        assert sock.recv(1) == b""  # closed after the Connection: close request
    statuses = [status for status, _, _ in responses]
    assert statuses == [200, 200, 200, 200, 415, 404, 200]
    assert responses[0][1]["x-request-id"] == "first"
    assert responses[-1][1]["x-request-id"] == "last"
    assert json.loads(responses[1][2])["label"] == "legitimate"
    assert json.loads(responses[2][2])["paths"]["/v1/classify"]
    assert b"scamguard_http_requests_total" in responses[3][2]
    assert json.loads(responses[4][2])["code"] == "unsupported_media_type"


def _raw_exchange(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send raw bytes, read until the server closes the connection (or `timeout`)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        received = b""
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            # The server answered and closed while the rest was still being sent: the kernel
            # resets the connection, which usually discards that answer before it can be read.
            return b"reset"
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    return received


def test_oversized_headers_get_431_and_a_close(start_server) -> None:
    server = start_server(SCAMGUARD_MAX_HEADER_BYTES="16384")
    big = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    many = (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(10_000))
        + b"\r\n"
    )
    answers = [_raw_exchange(server.port, request) for request in (big, many) for _ in range(5)]
    for answer in answers:  # refused either way: never served, never left open
        assert answer == b"reset" or answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    # Sent whole before the answer (a small buffer overflowed by little), the 431 itself is readable.
    tight = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 17_000 + b"\r\n\r\n"
    # The few bytes past the buffer stay unread, so the close may still reset the connection and
    # take the answer with it: of several tries, each is a 431 or a reset, and one at least is read.
    tight_answers = [_raw_exchange(server.port, tight) for _ in range(5)]
    readable = [answer for answer in tight_answers if answer != b"reset"]
    assert readable, "every try was reset: the 431 itself was never seen"
    for answer in readable:
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        assert b"connection: close" in answer.lower()
    # Under the limit, the same header is fine; a 1 MB body is not bound by the header buffer.
    fine = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8000 + b"\r\nConnection: close\r\n\r\n"
    assert _raw_exchange(server.port, fine).startswith(b"HTTP/1.1 200 ")
    texts = json.dumps({"texts": [(HAM_TEXT * 200)[:20_000]] * 64}).encode()
    assert len(texts) > 1_000_000
    assert server.request("POST", "/v1/classify", texts, timeout=30)[0] == 200


def test_slow_and_silent_connections_are_closed_at_the_header_deadline(start_server) -> None:
    import socket

    server = start_server(SCAMGUARD_KEEP_ALIVE_SECONDS="2")
    silent = socket.create_connection(("127.0.0.1", server.port))
    dripping = socket.create_connection(("127.0.0.1", server.port))
    dripping.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
    kept = socket.create_connection(("127.0.0.1", server.port))
    opened = time.monotonic()
    for sock in (silent, dripping, kept):
        sock.settimeout(10)
    for _ in range(3):  # a byte every 0.8 s does not extend the deadline; requests do
        time.sleep(0.8)
        with contextlib.suppress(OSError):
            dripping.send(b"a")
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_responses(kept, 1)[0][0] == 200
    assert silent.recv(1) == b""
    assert dripping.recv(1) == b""
    assert time.monotonic() - opened < 5
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")  # still open: it sent requests in time
    assert read_responses(kept, 1)[0][0] == 200
    for sock in (silent, dripping, kept):
        sock.close()


def test_connections_over_the_bound_wait_instead_of_being_served(start_server) -> None:
    import socket

    server = start_server(SCAMGUARD_MAX_CONNECTIONS="2")
    first, second, third = (socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3))
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    for sock in (first, second):
        sock.sendall(request)
        assert read_responses(sock, 1)[0][0] == 200
    third.sendall(request)
    third.settimeout(0.5)
    with pytest.raises(TimeoutError):
        third.recv(1)  # queued in the kernel: not refused, not served
    first.close()
    assert read_responses(third, 1)[0][0] == 200  # served once a slot was free
    second.close()
    third.close()


def test_draining_answers_say_connection_close(start_server, admission: dict[str, str]) -> None:
    import socket

    server = start_server(
        SCAMGUARD_SHUTDOWN_DRAIN_DELAY_SECONDS="2", SCAMGUARD_SHUTDOWN_GRACE_SECONDS="6", **admission
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, _ = read_responses(sock, 1)[0]
        assert (status, headers.get("connection")) == (200, None)  # kept alive before the signal
        server.process.send_signal(signal.SIGTERM)
        # Requests on the same connection until the server has taken the signal (however long the
        # machine takes to deliver it), within the 2 s drain delay: from then on, Connection: close.
        deadline = time.monotonic() + 1.5
        while True:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, _ = read_responses(sock, 1)[0]
            assert status == 200
            if headers.get("connection") == "close" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert headers.get("connection") == "close", "no Connection: close within 1.5 s of SIGTERM"
        assert sock.recv(1) == b""  # and the server closed it after that answer
    assert server.process.wait(timeout=10) == 0


def test_a_port_in_use_stops_the_process_with_an_error() -> None:
    port, result = start_on_a_taken_port()
    assert result.returncode == 3, result.stderr[-2000:]
    errors = [json.loads(line) for line in result.stderr.splitlines() if '"ERROR"' in line]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0]["message"].startswith(f"the server could not start on 127.0.0.1:{port}")
    assert "Address already in use" in errors[0]["message"]


def _thread_policies(pid: int) -> list[int]:
    """The scheduling policy of each thread of a process (field 41 of /proc/<pid>/task/<tid>/stat)."""
    policies = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        after_name = (task / "stat").read_text().rsplit(")", 1)[1].split()
        policies.append(int(after_name[38]))
    return policies


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is a Linux policy")
def test_every_thread_runs_under_batch_scheduling_unless_turned_off(start_server) -> None:
    """granian's I/O threads must not preempt the event loop's thread when they wake: the process
    chooses SCHED_BATCH before it starts any thread, so all of them, the server's included, inherit it."""
    server = start_server()
    assert server.request("POST", "/v1/classify", json.dumps({"text": HAM_TEXT}).encode())[0] == 200
    policies = _thread_policies(server.process.pid)
    assert len(policies) > 1  # the server's own threads are there, not only the main thread
    assert set(policies) == {os.SCHED_BATCH}

    default = start_server(SCAMGUARD_BATCH_SCHEDULING="false")
    assert set(_thread_policies(default.process.pid)) == {os.SCHED_OTHER}
