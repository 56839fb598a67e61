"""Helpers shared by the container tests and the container benchmark: the docker CLI, the image
under test (built by scripts/docker-env.sh), and containers run the hardened way."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCKER_ENV = REPO / "scripts" / "docker-env.sh"
# The UID the Dockerfile creates; the tests also pass it with --user, as an orchestrator would.
SERVICE_UID = 10001
CONTAINER_PORT = 8080
# The flags every hardened run uses (what the README and the issue ask the image to survive).
HARDENING = (
    "--read-only",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    f"{SERVICE_UID}:{SERVICE_UID}",
)
LABEL_PREFIX = "io.scamguard.test"


class DockerUnavailable(RuntimeError):
    """No docker CLI or no engine answering it."""


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check, env=_docker_env()
    )


def _docker_env() -> dict[str, str]:
    # The legacy builder is what this machine has; keep docker's notice about it out of the output.
    return {**os.environ, "DOCKER_BUILDKIT": os.environ.get("DOCKER_BUILDKIT", "0")}


def require_docker() -> None:
    """Raise DockerUnavailable with what to do when there is no engine to talk to."""
    if shutil.which("docker") is None:
        raise DockerUnavailable(
            "no docker CLI: run `sudo scripts/docker-env.sh up` (installs Debian's docker.io)"
        )
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DockerUnavailable("`docker info` hung for 30 s") from exc
    if info.returncode != 0:
        raise DockerUnavailable(
            f"no Docker engine answers ({info.stderr.strip()}): run `sudo scripts/docker-env.sh up`"
        )


def build_image(tag: str) -> str:
    """Build (cached layers make a rebuild take seconds) the image from the current tree."""
    env = {**os.environ, "SCAMGUARD_IMAGE": tag}
    proc = subprocess.run(
        ["bash", str(DOCKER_ENV), "image"], capture_output=True, text=True, timeout=600, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/docker-env.sh image failed:\n{proc.stdout}\n{proc.stderr}")
    return tag


def image_under_test() -> str:
    """SCAMGUARD_TEST_IMAGE if set (an image the caller built), else build scamguard:test now."""
    tag = os.environ.get("SCAMGUARD_TEST_IMAGE", "")
    if tag:
        if docker("image", "inspect", tag, check=False).returncode != 0:
            raise RuntimeError(
                f"SCAMGUARD_TEST_IMAGE={tag} does not exist: build it with scripts/docker-env.sh"
            )
        return tag
    return build_image("scamguard:test")


def image_inspect(tag: str) -> dict:
    return json.loads(docker("image", "inspect", tag).stdout)[0]


def image_size_bytes(tag: str) -> int:
    return int(image_inspect(tag)["Size"])


@dataclass
class Container:
    id: str
    base_url: str
    started_at: float  # time.monotonic() just before `docker run`

    def logs(self) -> str:
        proc = docker("logs", self.id, check=False)
        return proc.stdout + proc.stderr

    def exit_code(self, timeout: float) -> int:
        """Wait (bounded) for the container to exit; its exit code."""
        return int(docker("wait", self.id, timeout=timeout).stdout.strip())

    def state(self) -> dict:
        return json.loads(docker("inspect", "--format", "{{json .State}}", self.id).stdout)


@contextmanager
def run_container(
    image: str, env: dict[str, str] | None = None, extra: Sequence[str] = (), hardened: bool = True
) -> Iterator[Container]:
    """Run the image detached, publishing 8080 on a free 127.0.0.1 port; always removed afterwards."""
    name = f"scamguard-test-{uuid.uuid4().hex[:10]}"
    args = ["run", "--detach", "--name", name, "--label", f"{LABEL_PREFIX}=1"]
    args += ["--publish", f"127.0.0.1::{CONTAINER_PORT}"]
    if hardened:
        args += HARDENING
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    args += [*extra, image]
    started = time.monotonic()
    container_id = docker(*args, timeout=60).stdout.strip()
    try:
        port = docker("port", container_id, f"{CONTAINER_PORT}/tcp").stdout.split(":")[-1].strip()
        yield Container(container_id, f"http://127.0.0.1:{int(port)}", started)
    finally:
        docker("rm", "--force", "--volumes", container_id, check=False, timeout=60)


def wait_ready(container: Container, timeout: float = 30.0) -> float:
    """Poll /readyz until 200; seconds from `docker run` to ready. Fails with the container's logs."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            try:
                resp = client.get(f"{container.base_url}/readyz")
                if resp.status_code == 200:
                    return time.monotonic() - container.started_at
                last = f"{resp.status_code} {resp.text[:200]}"
            except httpx.HTTPError as exc:  # not listening yet (docker-proxy resets the connection)
                last = repr(exc)
            if not container.state().get("Running", False):
                break
            time.sleep(0.02)
    raise AssertionError(
        f"container not ready within {timeout} s (last: {last}); state {container.state()}\n"
        f"logs:\n{container.logs()[-4000:]}"
    )
