"""The service image, built and run for real: hardened run, classification over a published
127.0.0.1 port, graceful SIGTERM under a burst of requests, metadata. Never skipped under CI=true."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.container.dockerutil import (
    CONTAINER_PORT,
    SERVICE_UID,
    Container,
    docker,
    image_inspect,
    image_size_bytes,
    run_container,
    wait_ready,
)

pytestmark = pytest.mark.docker

SCAM = (
    "URGENT: your bank account has been suspended. Verify your password and card number now at "
    "http://secure-verify-login.example.com within 24 hours to avoid permanent closure."
)
LEGITIMATE = (
    "Hi Anna, attached are the minutes from Tuesday's project meeting. Could you review the budget "
    "section before our call on Thursday? Thanks, Mark"
)
COLD_START_LIMIT_SECONDS = 3.0


def test_image_metadata(image: str) -> None:
    info = image_inspect(image)
    config = info["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    labels = config["Labels"] or {}
    size = image_size_bytes(image)
    print(f"\nimage {image}: {size} bytes ({size / 1e6:.1f} MB)")

    assert config["User"] == f"{SERVICE_UID}:{SERVICE_UID}", "must run as the fixed non-root UID"
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-m", "service"], "exec form, python as PID 1"
    assert env["HOST"] == "0.0.0.0"
    assert env["PORT"] == str(CONTAINER_PORT)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert f"{CONTAINER_PORT}/tcp" in config["ExposedPorts"]
    assert config["Healthcheck"]["Test"][0] == "CMD", "exec-form HEALTHCHECK (no shell, no curl)"
    for key in (
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.created",
        "io.scamguard.model.version",
    ):
        assert key in labels, f"missing OCI label {key}"
    assert labels["io.scamguard.model.version"] not in {"", "unknown"}
    # Nothing that only building needs is left in the runtime image.
    listing = docker("run", "--rm", "--entrypoint", "/opt/venv/bin/python", image, "-c", _LIST_SNIPPET).stdout
    assert "pip" not in listing.split(), "pip must not ship in the runtime venv"
    assert "sklearn" not in listing.split(), "scikit-learn is training-only"
    # Only the service package (code + model) is in /app; training code stays out (.dockerignore).
    app = docker(
        "run", "--rm", "--entrypoint", "/opt/venv/bin/python", image, "-c", _APP_SNIPPET
    ).stdout.split()
    assert "service/__main__.py" in app
    assert "service/model/metadata.json" in app
    assert not [path for path in app if not path.startswith("service/")], app
    assert "service/train.py" not in app
    assert "service/Dockerfile" not in app


_APP_SNIPPET = (
    "import pathlib; print(*sorted(str(p.relative_to('/app')) for p in pathlib.Path('/app').rglob('*')"
    " if p.is_file() and '__pycache__' not in p.parts))"
)
_LIST_SNIPPET = "import pkgutil; print(' '.join(sorted(m.name for m in pkgutil.iter_modules())))"


def test_hardened_container_classifies_over_http(image: str) -> None:
    with run_container(image) as container:
        cold_start = wait_ready(container)
        print(f"\ncold start (docker run -> /readyz 200): {cold_start:.2f} s")
        with httpx.Client(base_url=container.base_url, timeout=10) as client:
            scam = client.post("/v1/classify", json={"text": SCAM})
            legit = client.post("/v1/classify", json={"text": LEGITIMATE})
            batch = client.post("/v1/classify", json={"texts": [SCAM, LEGITIMATE]})
            assert client.get("/healthz").status_code == 200
            metrics = client.get("/metrics")
        assert scam.status_code == 200, scam.text
        assert scam.json()["label"] == "scam", scam.text
        assert scam.json()["is_scam"] is True, scam.text
        assert legit.status_code == 200, legit.text
        assert legit.json()["label"] == "legitimate", legit.text
        assert legit.json()["is_scam"] is False, legit.text
        assert [r["label"] for r in batch.json()["results"]] == ["scam", "legitimate"], batch.text
        assert "scamguard_model_ready 1.0" in metrics.text

        # The process really is confined: non-root, no capabilities, no privilege gain, read-only /.
        probe = docker("exec", container.id, "/opt/venv/bin/python", "-c", _CONFINEMENT_SNIPPET).stdout
        uid, cap_eff, no_new_privs, write_error = probe.split()
        assert uid == str(SERVICE_UID)
        assert int(cap_eff, 16) == 0, f"effective capabilities {cap_eff}"
        assert no_new_privs == "1"
        assert write_error == "EROFS", "the root file system must be read-only"
        # The image's own HEALTHCHECK command passes against the running service.
        healthcheck = image_inspect(image)["Config"]["Healthcheck"]["Test"][1:]
        assert docker("exec", container.id, *healthcheck, check=False).returncode == 0
        assert container.state()["Running"]
    assert cold_start < COLD_START_LIMIT_SECONDS, f"cold start {cold_start:.2f} s"


_CONFINEMENT_SNIPPET = """
import errno, os
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
try:
    open('/app/service/written-at-runtime', 'w')
    err = 'WRITABLE'
except OSError as exc:
    err = errno.errorcode[exc.errno]
print(os.getuid(), status['CapEff'].strip(), status['NoNewPrivs'].strip(), err)
"""


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None  # None: no HTTP response at all
    error: str = ""


class Burst:
    """Bounded client load: `workers` keep-alive clients, each sending requests until told to stop,
    `max_per_worker` is reached or `max_seconds` pass."""

    def __init__(self, base_url: str, workers: int, max_per_worker: int, max_seconds: float) -> None:
        self.base_url = base_url
        self.max_per_worker = max_per_worker
        self.deadline = time.monotonic() + max_seconds
        self.stop_starting = threading.Event()
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(workers)]

    def __enter__(self) -> Burst:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_starting.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _work(self, worker: int) -> None:
        body = {"texts": [SCAM, LEGITIMATE] * 8} if worker % 2 else {"text": SCAM}
        with httpx.Client(base_url=self.base_url, timeout=15) as client:
            for _ in range(self.max_per_worker):
                if self.stop_starting.is_set() or time.monotonic() > self.deadline:
                    return
                self._record(client, "/v1/classify", body)

    def _record(self, client: httpx.Client, path: str, body: dict) -> None:
        started = time.monotonic()
        try:
            status, error = client.post(path, json=body).status_code, ""
        except httpx.HTTPError as exc:
            status, error = None, repr(exc)
        with self._lock:
            self.outcomes.append(Outcome(started, time.monotonic(), status, error))

    def long_request(self, texts: int) -> threading.Thread:
        """One slow request (a big batch) on its own connection, recorded like the others."""

        def send() -> None:
            with httpx.Client(base_url=self.base_url, timeout=30) as client:
                self._record(client, "/v1/classify", {"texts": [SCAM * 100] * texts})

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        return thread


GRACE_SECONDS = 8.0
# Like an orchestrator that stops routing once /readyz fails: keep serving this long after SIGTERM.
DRAIN_DELAY_SECONDS = 1.5


def test_sigterm_during_burst_drains_and_exits_zero(image: str) -> None:
    env = {
        "SCAMGUARD_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "SCAMGUARD_SHUTDOWN_DRAIN_DELAY_SECONDS": str(DRAIN_DELAY_SECONDS),
        "SCAMGUARD_MAX_BATCH_SIZE": "256",
        "SCAMGUARD_MAX_BODY_BYTES": str(16 * 1024 * 1024),
        # No 503 "overloaded" for the burst: every request sent here must be served.
        "SCAMGUARD_MAX_INFLIGHT": "1024",
    }
    with run_container(image, env=env) as container:
        wait_ready(container)
        with Burst(container.base_url, workers=12, max_per_worker=500, max_seconds=20) as burst:
            time.sleep(1.0)  # the burst is under way
            killed_at = time.monotonic()
            docker("kill", "--signal", "TERM", container.id)
            # From the signal's delivery (the docker CLI alone can take 0.1-0.3 s on a busy machine).
            not_ready_after = _seconds_until_not_ready(container, time.monotonic())
            # Long requests that are still running when the listener closes (at +drain delay).
            # (256 texts of 17 kB: about 0.6 s of inference on this machine; admitted 0.3 s before.)
            time.sleep(max(0.0, killed_at + DRAIN_DELAY_SECONDS - 0.3 - time.monotonic()))
            long_ones = [burst.long_request(texts=256) for _ in range(2)]
            burst.stop_starting.set()
            for thread in long_ones:
                thread.join(timeout=GRACE_SECONDS + 5)
        exit_code = container.exit_code(timeout=GRACE_SECONDS + 10)
        exited_after = time.monotonic() - killed_at
        logs = container.logs()

    outcomes = burst.outcomes
    failed = [o for o in outcomes if o.status != 200]
    in_flight_at_kill = [o for o in outcomes if o.started < killed_at < o.ended]
    after_kill = [o for o in outcomes if o.started >= killed_at]
    longest_after_listener_close = max(
        (o.ended - killed_at for o in outcomes), default=0.0
    )  # > drain delay: something was still being served after the listener closed
    not_ready = "never" if not_ready_after is None else f"{not_ready_after:.2f} s"
    print(
        f"\nSIGTERM burst: {len(outcomes)} requests, {len(in_flight_at_kill)} in flight at SIGTERM, "
        f"{len(after_kill)} sent during the drain, {len(failed)} failed; /readyz 503 after {not_ready}; "
        f"last response {longest_after_listener_close:.2f} s after SIGTERM; "
        f"exit code {exit_code} after {exited_after:.2f} s"
    )
    assert not_ready_after is not None, "/readyz still 200 a second after SIGTERM"
    # Readiness must fail well before the listener closes, so probes see it while still served.
    assert not_ready_after < DRAIN_DELAY_SECONDS - 0.5, "readiness must fail as soon as SIGTERM arrives"
    assert in_flight_at_kill, "the burst had no request in flight at SIGTERM: the test proved nothing"
    assert not failed, f"{len(failed)} admitted requests failed, e.g. {failed[:3]}\nlogs:\n{logs[-3000:]}"
    assert longest_after_listener_close > DRAIN_DELAY_SECONDS, "no request was in flight at listener close"
    assert exit_code == 0, f"exit code {exit_code}\nlogs:\n{logs[-3000:]}"
    assert exited_after < GRACE_SECONDS, f"took {exited_after:.2f} s to exit (grace {GRACE_SECONDS} s)"


def _seconds_until_not_ready(container: Container, since: float) -> float | None:
    """Seconds from `since` until /readyz answers 503 (fresh connections, like a load balancer's probe)."""
    deadline = time.monotonic() + 1.0
    with httpx.Client(base_url=container.base_url, timeout=1) as client:
        while time.monotonic() < deadline:
            try:
                if client.get("/readyz", headers={"Connection": "close"}).status_code == 503:
                    return time.monotonic() - since
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    return None
