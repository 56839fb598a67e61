"""Fixtures for the service tests: the real shipped artifact (copied to tmp for the failure cases)
and apps built by create_app(settings) with their lifespan run by the test client."""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY

from runtime.classifier import DEFAULT_MODEL_DIR, ScamClassifier
from service.app import create_app
from service.settings import Settings
from tests import tools

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient warns that httpx is deprecated
    from fastapi.testclient import TestClient

SCAM_TEXT = (
    "URGENT: your account has been suspended. Verify your password and credit card details within "
    "24 hours at http://secure-login-verify.example.com or your funds will be frozen. Click here now!"
)
HAM_TEXT = (
    "Hi Maria, thanks for the notes from Tuesday's meeting. I moved the project review to Thursday at "
    "10:00 in room 4.12 and attached the updated agenda. Let me know if that works for your team. Daniel"
)


def require_tool(name: str) -> str:
    return tools.require_tool(name, "redis-server" if "redis" in name else name)


REPO = pathlib.Path(__file__).resolve().parents[2]
SOCKET_TMPFS = pathlib.Path("/dev/shm")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_environment(port: int, env: dict[str, str]) -> dict[str, str]:
    """This environment without its SCAMGUARD_* settings, on 127.0.0.1:`port`, plus `env`."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SCAMGUARD_")}
    return {**full_env, "HOST": "127.0.0.1", "PORT": str(port), **env}


def read_responses(
    sock: socket.socket, count: int, timeout: float = 5
) -> list[tuple[int, dict[str, str], bytes]]:
    """Read `count` HTTP/1.1 responses (status, lower-cased headers, body) from a raw socket."""
    buffer = b""
    responses = []
    sock.settimeout(timeout)
    while len(responses) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(responses)} responses"
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
        length = int(headers["content-length"])  # every answer of this API and its proxy has one
        while len(buffer) < length:
            chunk = sock.recv(65536)
            assert chunk
            buffer += chunk
        body, buffer = buffer[:length], buffer[length:]
        responses.append((int(status_line.split()[1]), headers, body))
    return responses


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    log_path: pathlib.Path

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 5
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def logs(self) -> list[dict]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # only this test's own process, by its handle
            self.process.wait(timeout=10)


@pytest.fixture
def start_server(tmp_path: pathlib.Path) -> Iterator[Callable[..., Server]]:
    """Starts `python -m service` (as many as a test asks for) on free ports; kills them after, and
    removes the socket directories that killed services behind the admission proxy left."""
    servers: list[Server] = []
    sockets_before = set(SOCKET_TMPFS.glob("scamguard-*"))

    def start(**env: str) -> Server:
        port = free_port()
        log_path = tmp_path / f"server-{port}.log"
        log = log_path.open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=REPO,
            env=service_environment(port, env),
            stdout=log,
            stderr=log,
            text=True,
        )
        server = Server(process, port, log_path)
        servers.append(server)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"server exited early ({process.returncode}): {log_path.read_text()}")
            try:
                server.request("GET", "/healthz", timeout=1)
                return server
            except OSError:
                time.sleep(0.05)
        pytest.fail("server did not start listening within 30 s")

    yield start
    for server in servers:
        server.stop()
    for left in set(SOCKET_TMPFS.glob("scamguard-*")) - sockets_before:
        shutil.rmtree(left, ignore_errors=True)


def start_on_a_taken_port(**env: str) -> tuple[int, subprocess.CompletedProcess[str]]:
    """`python -m service` on a loopback port another socket holds: (the port, how it ended)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service"],
            cwd=REPO,
            env=service_environment(port, env),
            capture_output=True,
            text=True,
            timeout=60,
        )
    return port, result


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def model_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A private copy of the shipped artifact that a test may corrupt."""
    target = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, target)
    return target


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("SCAMGUARD_") or name in ("HOST", "PORT"):
            monkeypatch.delenv(name)


def make_settings(**overrides: Any) -> Settings:
    return Settings(**{"model_dir": DEFAULT_MODEL_DIR, **overrides})


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides)), raise_server_exceptions=False)
        client.__enter__()  # runs the lifespan: loads the model
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()


@pytest.fixture(scope="module")
def reference() -> ScamClassifier:
    """The committed artifact, loaded directly: what the API's answers must equal."""
    return ScamClassifier.load(DEFAULT_MODEL_DIR)
