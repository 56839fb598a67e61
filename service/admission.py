"""The admission proxy: HAProxy in front of the Python server refuses load past capacity before
Python sees it (`SCAMGUARD_ADMISSION_PROXY=haproxy`, on in the image).

Why a second process: a 503 answered by the Python server costs about an eighth of a served
inference (the hand-off from the HTTP server to the event loop, parsing, writing), so at 4x capacity
the rejections alone take most of the core; and most of the wait of an overloaded request happens
before the event loop sees it (in the server's hand-off to Python), where no rule in the application
can measure it (docs/service/reliability.md). HAProxy keeps its own bounded queue: at most
`SCAMGUARD_ADMISSION_CONCURRENCY` inference requests are inside the Python process at once, at most
`SCAMGUARD_ADMISSION_QUEUE_LENGTH` wait in HAProxy; one more, or one that waits longer than
`SCAMGUARD_ADMISSION_QUEUE_TIMEOUT_SECONDS`, is answered 503 + Retry-After in the API's JSON error
shape, for tens of microseconds of CPU instead of a trip through Python. It is the pattern of
Knative's queue-proxy in front of a KServe model, inside one container.

Layout: HAProxy binds HOST:PORT; the Python server binds a Unix socket in /dev/shm (`Upstream`; a
free port on 127.0.0.1 where no tmpfs is writable). Only POSTs to the
inference paths are queued: probes, metadata and /metrics go straight through, so liveness and
readiness answer while inference sheds. HAProxy also buffers each request body (up to its buffer,
`SCAMGUARD_MAX_HEADER_BYTES` + 1 KiB) before it takes a slot, so a client that stalls mid-upload
holds no slot; it appends the peer's address to X-Forwarded-For (the service counts one more hop).

HAProxy is a child of the service: the configuration reaches it through a memfd (the root file
system is read-only), it runs in its own process group (a terminal's Ctrl-C reaches only the
service, which stops it in order) and dies with the service (PR_SET_PDEATHSIG). On SIGTERM the
service soft-stops it (SIGUSR1: the listener closes, queued and in-flight requests finish, keep-alive
connections close after their answer), then stops the Python server.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import ctypes
import io
import os
import pathlib
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service import metrics
from service.errors import INTERNAL_ERROR, ApiError, payload_too_large, request_timeout
from service.settings import Settings

# Where Debian puts it; a non-root PATH may not include /usr/sbin.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
PR_SET_PDEATHSIG = 1
# HAProxy's answers to the few failures it handles itself, in the API's error shape (service.errors).
OVERLOADED_RETRY_AFTER_SECONDS = 1
# The Python server talks only to HAProxy, over loopback: idle connections stay open for reuse.
UPSTREAM_KEEP_ALIVE_SECONDS = 600
# Set by the service on its answers while it drains (service.app), removed by HAProxy.
DRAINING_HEADER = "x-scamguard-draining"


class AdmissionProxyError(RuntimeError):
    """The admission proxy cannot run (not installed, or it refused its configuration)."""


def find_haproxy() -> str:
    found = shutil.which("haproxy", path=_SEARCH_PATH)
    if found is None:
        raise AdmissionProxyError(
            "SCAMGUARD_ADMISSION_PROXY=haproxy, but no haproxy executable was found: install it "
            "(apt-get install haproxy) or set SCAMGUARD_ADMISSION_PROXY=off"
        )
    return found


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Upstream:
    """Where the Python server listens behind the proxy: a Unix socket where a tmpfs is writable
    (/dev/shm: one in every container runtime, writable under a read-only root), which costs each
    request less than TCP over loopback; else a free loopback port."""

    path: pathlib.Path | None = None
    port: int | None = None

    @classmethod
    def choose(cls, tmpfs: pathlib.Path = pathlib.Path("/dev/shm")) -> Upstream:  # noqa: S108 - see below
        """The socket goes in a new directory of its own (mode 0700, a random name), so that on a
        shared host no other user can take its name first or connect to it."""
        if tmpfs.is_dir() and os.access(tmpfs, os.W_OK | os.X_OK):
            with contextlib.suppress(OSError):
                return cls(path=pathlib.Path(tempfile.mkdtemp(prefix="scamguard-", dir=tmpfs)) / "api.sock")
        return cls(port=free_loopback_port())

    def remove(self) -> None:
        """Remove the socket's directory (the server removes the socket when it stops)."""
        if self.path is not None:
            shutil.rmtree(self.path.parent, ignore_errors=True)

    @property
    def haproxy_address(self) -> str:
        return f"unix@{self.path}" if self.path is not None else f"127.0.0.1:{self.port}"

    async def accepts(self) -> bool:
        """Whether the Python server listens there yet."""
        try:
            if self.path is not None:
                _reader, writer = await asyncio.open_unix_connection(self.path)
            else:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True


def _quoted(text: str) -> str:
    """A double-quoted HAProxy configuration word (backslash escapes quotes and backslashes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_REQUEST_ID_MARK = "@request-id@"


def _error_reply(error: ApiError) -> str:
    """An `http-error` line answering `error` in the API's one error shape (ApiError.body), with the
    request id HAProxy set or was sent. HAProxy manages Connection itself."""
    # lf-string: % starts a log-format expression, so a literal one is doubled.
    body = error.body(_REQUEST_ID_MARK).decode().replace("%", "%%")
    body = body.replace(_REQUEST_ID_MARK, "%[var(txn.request_id),json(utf8s)]")
    headers = {name: value for name, value in error.headers.items() if name.lower() != "connection"}
    extra = "".join(f" hdr {name} {_quoted(value)}" for name, value in headers.items())
    return (
        f"    http-error status {error.status} content-type application/json lf-string {_quoted(body)}{extra}"
    )


def buffer_bytes(settings: Settings) -> int:
    """HAProxy's buffer: the request line and headers must fit in it, less its rewrite reserve."""
    return max(16_384, settings.max_header_bytes + 1024)


def max_proxy_connections(settings: Settings) -> int:
    """Client connections HAProxy accepts at once: the setting, within the open-file limit it has
    (it needs two descriptors a connection and refuses to start when it cannot have them)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return settings.max_connections
    return max(64, min(settings.max_connections, (hard - 256) // 2))


def haproxy_config(
    settings: Settings, upstream: str, inference_paths: Iterable[str], stats_socket: str
) -> str:
    """The whole HAProxy configuration for these settings (validated by `haproxy -c` in the tests)."""
    bind = f"{settings.host}:{settings.port}"
    maxconn = max_proxy_connections(settings)
    client_seconds = max(settings.keep_alive_seconds, settings.body_timeout_seconds)
    queue_ms = max(1, round(settings.admission_queue_timeout_seconds * 1000))
    paths = " ".join(sorted(inference_paths))
    lines = [
        "global",
        f"    maxconn {maxconn}",
        "    nbthread 1",  # the Python process is the bottleneck; a second thread would compete with it
        f"    tune.bufsize {buffer_bytes(settings)}",
        "    tune.maxrewrite 1024",
        f"    hard-stop-after {round(settings.shutdown_grace_seconds * 1000)}ms",
        f"    stats socket {stats_socket} level user",
        "",
        "defaults",
        "    mode http",
        "    option forwardfor",
        # A request whose client left is dropped from the queue: no work for abandoned requests.
        "    option abortonclose",
        "    option dontlognull",
        "    retries 2",
        "    unique-id-format %{+X}o%pid-%Ts-%rt",  # process, time, request counter: unique per instance
        "    timeout connect 2s",
        f"    timeout client {client_seconds * 1000:.0f}ms",
        # Headers and the buffered body must arrive within the body timeout (slow clients get 408).
        f"    timeout http-request {settings.body_timeout_seconds * 1000:.0f}ms",
        f"    timeout http-keep-alive {settings.keep_alive_seconds}s",
        f"    timeout queue {queue_ms}ms",
        "    timeout server 120s",
        _error_reply(
            ApiError(
                503,
                "overloaded",
                f"the server is at capacity ({settings.admission_queue_length} requests already wait "
                f"for an inference slot, or none came free within {queue_ms} ms); "
                f"retry after {OVERLOADED_RETRY_AFTER_SECONDS} s",
                headers={"Retry-After": str(OVERLOADED_RETRY_AFTER_SECONDS)},
            )
        ),
        _error_reply(payload_too_large(settings.max_body_bytes)),
        _error_reply(request_timeout(settings.body_timeout_seconds)),
        _error_reply(ApiError(502, "internal_error", "the model server did not answer; retry later")),
        _error_reply(ApiError(504, "internal_error", "the model server did not answer in time; retry later")),
        _error_reply(INTERNAL_ERROR),
        "",
        "frontend api",
        f"    bind {bind}",
        f"    maxconn {maxconn}",
        # The request id of HAProxy's own answers: the client's X-Request-ID, else HAProxy's own id.
        # (Requests it forwards keep theirs: the service makes one when the client sent none.)
        "    http-request set-var(txn.request_id) req.hdr(x-request-id)",
        "    http-request set-var(txn.request_id) unique-id unless { var(txn.request_id) -m found }",
        # A body over the limit is refused before it is sent (the service would refuse it too).
        "    http-request deny deny_status 413 if { req.hdr_val(content-length) gt "
        f"{settings.max_body_bytes} }}",
        # The whole body (up to the buffer) before a slot is taken: a stalled upload holds none.
        f"    http-request wait-for-body time {settings.body_timeout_seconds * 1000:.0f}ms",
        # A draining service marks its answers; the client's connection closes after this one.
        f"    http-response set-header Connection close if {{ res.hdr({DRAINING_HEADER}) -m found }}",
        f"    http-response del-header {DRAINING_HEADER}",
        f"    use_backend inference if METH_POST {{ path {paths} }}",
        "    default_backend direct",
        "",
        "backend inference",
        "    http-reuse always",
        # A full queue refuses at once: a refusal costs the least CPU when it never waits.
        "    http-request deny deny_status 503 if "
        f"{{ queue(inference) ge {settings.admission_queue_length} }}",
        f"    server python {upstream} maxconn {settings.admission_concurrency}",
        "",
        "backend direct",
        "    http-reuse always",
        f"    server python {upstream}",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class ProxyStats:
    """What HAProxy counted since it started (its `show stat`)."""

    queued: int  # inference requests waiting for a slot now
    shed: int  # inference requests it answered 503 itself (queue full or timed out, no server)
    requests: int  # inference requests it received


def parse_stats(csv_text: str) -> ProxyStats:
    rows = {
        (row["# pxname"], row["svname"]): row
        for row in csv.DictReader(io.StringIO(csv_text))
        if row.get("# pxname")
    }
    backend = rows.get(("inference", "BACKEND"), {})
    server = rows.get(("inference", "python"), {})

    def number(row: dict[str, str], field: str) -> int:
        value = row.get(field) or "0"
        return int(value) if value.isdigit() else 0

    # 5xx the backend answered minus those the server sent: the ones HAProxy made (503 on shedding).
    shed = max(0, number(backend, "hrsp_5xx") - number(server, "hrsp_5xx"))
    return ProxyStats(queued=number(backend, "qcur"), shed=shed, requests=number(backend, "req_tot"))


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class AdmissionProxy:
    """One HAProxy child process, configured from the settings."""

    def __init__(self, settings: Settings, upstream: str, inference_paths: Iterable[str]) -> None:
        """`upstream`: the Python server's address as HAProxy writes it (`Upstream.haproxy_address`)."""
        self.executable = find_haproxy()
        self.stats_socket_name = f"scamguard-admission-{os.getpid()}"
        self.config = haproxy_config(settings, upstream, inference_paths, f"abns@{self.stats_socket_name}")
        self.process: subprocess.Popen[bytes] | None = None

    def _config_fd(self) -> int:
        fd = os.memfd_create("haproxy.cfg")  # close-on-exec; pass_fds hands it to the child
        os.write(fd, self.config.encode())
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def check(self) -> None:
        """`haproxy -c`: raise AdmissionProxyError with HAProxy's own words if it refuses the config."""
        fd = self._config_fd()
        try:
            result = subprocess.run(  # noqa: S603 - fixed argv
                [self.executable, "-c", "-f", f"/dev/fd/{fd}"],
                pass_fds=(fd,),
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        finally:
            os.close(fd)
        if result.returncode != 0:
            raise AdmissionProxyError(
                f"haproxy refused its configuration: {(result.stderr + result.stdout).strip()}"
            )

    def start(self) -> None:
        fd = self._config_fd()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv
                [self.executable, "-db", "-f", f"/dev/fd/{fd}"],
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                process_group=0,
                preexec_fn=_die_with_parent,  # set before exec; the one call between fork and exec
            )
        finally:
            os.close(fd)

    def soft_stop(self) -> None:
        """Close the listener; queued and in-flight requests finish, idle connections close."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)

    async def wait(self, seconds: float | None = None) -> int | None:
        """The exit code, or None if it is still running after `seconds`."""
        if self.process is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.process.wait), seconds)
        except TimeoutError:
            return None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stats(self) -> ProxyStats | None:
        """Its counters, read from its stats socket (None when it does not answer)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.25)
                # HAProxy binds an abstract name padded with NULs to the whole sun_path (108 bytes).
                sock.connect("\0" + self.stats_socket_name.ljust(107, "\0"))
                sock.sendall(b"show stat\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError:
            return None
        return parse_stats(b"".join(chunks).decode("utf-8", "replace"))


class AdmissionMetrics(Collector):
    """HAProxy's counters as service metrics, read at scrape time: requests it shed never reach the
    Python process, so its own counters cannot see them."""

    def __init__(self, proxy: AdmissionProxy) -> None:
        self.proxy = proxy

    def collect(self) -> Iterator[Metric]:
        stats = self.proxy.stats()
        if stats is None:
            return
        for (name, kind, documentation), value in (
            (metrics.ADMISSION_SHED, stats.shed),
            (metrics.ADMISSION_REQUESTS, stats.requests),
            (metrics.ADMISSION_QUEUED, stats.queued),
        ):
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, documentation, value=value)


def register_admission_metrics(proxy: AdmissionProxy) -> None:
    REGISTRY.register(AdmissionMetrics(proxy))
