"""Run the API under granian, embedded in this process, with graceful shutdown (`python -m service`).

Granian's HTTP layer (Rust, hyper) gives what the service needs from a server without touching any
private class: a deadline for request headers (and for idle keep-alive connections: hyper uses one
timer for both), 431 for oversized headers, a bound on the connections served at once (the rest
wait in the kernel's accept queue), and each response written in one call. Embedding it (granian's
public `granian.server.embed.Server`) keeps one process, so the service owns its signals.

The process runs under SCHED_BATCH (`use_batch_scheduling`), so that granian's threads, waking for
each request and answer, do not preempt the event loop only to wait for the interpreter lock.

With `SCAMGUARD_ADMISSION_PROXY=haproxy` (the image) HAProxy listens on HOST:PORT and the Python
server behind it on a Unix socket in /dev/shm, or a free loopback port where no tmpfs is writable
(`service.admission.Upstream`): load past capacity is answered 503 there, before it reaches Python.

On SIGTERM/SIGINT: readiness fails at once and every answer says `Connection: close` (draining);
after the optional drain delay the listener closes (HAProxy's first, which then finishes what it
queued and forwarded), in-flight requests finish within the grace period, the lifespan shutdown runs
and the process exits 0. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import os
import pathlib
import resource
import signal
from typing import Any

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server

from service.admission import (
    UPSTREAM_KEEP_ALIVE_SECONDS,
    AdmissionProxy,
    Upstream,
    register_admission_metrics,
)
from service.app import INFERENCE_PATHS, ScamguardApp, create_app
from service.logs import logging_config
from service.settings import Settings, get_settings

logger = logging.getLogger("scamguard")


def raise_open_file_limit(wanted: int) -> None:
    """Raise the soft limit on open files towards the hard one, so that idle or slow connections
    cannot exhaust a default of 1,024 descriptors before the connection bound applies."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def use_batch_scheduling() -> bool:
    """Put every thread of this process under SCHED_BATCH, and so every thread they start later
    (granian's Rust runtime included); False where the OS does not offer or allow it.

    The server's I/O threads wake for each request and each response. Under the default policy a
    waking thread preempts the running one: on a busy core that is the event loop, in the middle of
    Python code, and the woken thread then only waits for the interpreter lock the event loop holds.
    On one core that made 5-6 context switches per single-email request. A SCHED_BATCH thread never
    preempts on wakeup (it runs when the running thread blocks, or at the next tick); an idle core
    still runs it at once. No privilege is needed to choose it.
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
        # Threads started at import (numpy's BLAS pool) do not inherit it: set them one by one.
        with contextlib.suppress(OSError):
            for task in os.listdir("/proc/self/task"):
                os.sched_setscheduler(int(task), policy, os.sched_param(0))
    except OSError:
        return False
    return True


def build_server(
    settings: Settings,
    app: ScamguardApp,
    address: str,
    port: int,
    keep_alive_seconds: int,
    uds: pathlib.Path | None = None,
) -> Server:
    return Server(
        app,
        address=address,
        port=port,
        uds=uds,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        websockets=False,
        backlog=settings.accept_backlog,
        # Connections served at once; more wait in the accept queue (granian counts connections).
        backpressure=settings.max_connections,
        http1_settings=HTTP1Settings(
            header_read_timeout=keep_alive_seconds * 1000,
            keep_alive=True,
            max_buffer_size=settings.max_header_bytes,  # >= 8 KiB, granian's own minimum (settings)
        ),
        log_enabled=True,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=logging_config(settings.log_level),
        log_access=False,
    )


class GracefulShutdown:
    """Signal handling: flip readiness, wait the drain delay, then ask `serve` to stop (once)."""

    def __init__(self, app: ScamguardApp, drain_delay_seconds: float) -> None:
        self.app = app
        self.drain_delay_seconds = drain_delay_seconds
        self.stopping: asyncio.Event = asyncio.Event()
        self._delayed: asyncio.TimerHandle | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.requested, sig)

    def requested(self, sig: int) -> None:
        self.app.state.service.start_draining()
        if self.stopping.is_set():
            return
        if self._delayed is None and self.drain_delay_seconds > 0:
            # Keep serving (readiness fails, answers say Connection: close) so that load balancers
            # stop routing here before the listener closes. A second signal stops at once.
            logger.info(
                "shutdown requested; closing the listener after the drain delay",
                extra={"drain_delay_seconds": self.drain_delay_seconds, "signal": sig},
            )
            self._delayed = asyncio.get_running_loop().call_later(self.drain_delay_seconds, self.stop)
            return
        self.stop()

    def stop(self) -> None:
        if self._delayed is not None:
            self._delayed.cancel()
        if not self.stopping.is_set():
            logger.info("closing the listener; finishing in-flight requests")
            self.stopping.set()


async def _wait_listening(upstream: Upstream, serving: asyncio.Future[None], seconds: float) -> bool:
    """True once the server accepts connections there; False if it ended or time ran out."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not serving.done() and asyncio.get_running_loop().time() < deadline:
        if await upstream.accepts():
            return True
        await asyncio.sleep(0.005)
    return False


def _startup_failed(settings: Settings, serving: asyncio.Future[None]) -> int:
    exc = serving.exception()
    if exc is not None:
        logger.error(
            "the server could not start on %s:%s (%s); free the port or set PORT",
            settings.host,
            settings.port,
            str(exc).splitlines()[0],
        )
    return 3


async def serve(settings: Settings) -> int:
    # Behind the admission proxy the Python server listens on a socket of its own (else on the port).
    upstream = Upstream.choose() if settings.admission_proxy == "haproxy" else Upstream(port=settings.port)
    try:
        return await _serve(settings, upstream)
    finally:
        upstream.remove()


async def _serve(settings: Settings, upstream: Upstream) -> int:
    proxy: AdmissionProxy | None = None
    if settings.admission_proxy == "haproxy":
        # HAProxy holds two descriptors a client connection.
        raise_open_file_limit(2 * settings.max_connections + 1024)
        proxy = AdmissionProxy(settings, upstream.haproxy_address, INFERENCE_PATHS)
        app = create_app(settings, proxy_hops=1)  # HAProxy appends the peer to X-Forwarded-For
        server = build_server(
            settings, app, "127.0.0.1", upstream.port or 0, UPSTREAM_KEEP_ALIVE_SECONDS, uds=upstream.path
        )
    else:
        raise_open_file_limit(settings.max_connections + 1024)
        app = create_app(settings)
        server = build_server(settings, app, settings.host, settings.port, settings.keep_alive_seconds)
    shutdown = GracefulShutdown(app, settings.shutdown_drain_delay_seconds)
    shutdown.install(asyncio.get_running_loop())
    serving = asyncio.ensure_future(server.serve())
    signalled = asyncio.ensure_future(shutdown.stopping.wait())
    waiting: set[asyncio.Future[Any]] = {serving, signalled}
    proxy_exited: asyncio.Future[int | None] | None = None
    if proxy is not None:
        # HAProxy starts once the Python server listens, so that it never answers 503 for a server
        # that is only starting up.
        if not await _wait_listening(upstream, serving, 60):
            signalled.cancel()
            server.stop()
            return _startup_failed(settings, serving) if serving.done() else 3
        proxy.start()
        register_admission_metrics(proxy)
        proxy_exited = asyncio.ensure_future(proxy.wait())
        waiting.add(proxy_exited)
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():  # the server ended without a signal: startup failed (port taken, lifespan error)
        signalled.cancel()
        if proxy is not None:
            proxy.kill()
        return _startup_failed(settings, serving)
    if proxy_exited is not None and proxy_exited.done():
        signalled.cancel()
        logger.error(
            "the admission proxy (haproxy) exited with code %s; its message is above (is %s:%s free?)",
            proxy_exited.result(),
            settings.host,
            settings.port,
        )
        server.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(serving, timeout=settings.shutdown_grace_seconds)
        return 3
    # Leave ~1 s of the grace period for the lifespan shutdown and the process exit.
    remaining = max(1.0, settings.shutdown_grace_seconds - settings.shutdown_drain_delay_seconds - 1)
    started = asyncio.get_running_loop().time()
    if proxy is not None:
        # Its listener closes; what it queued and forwarded is answered, then it exits.
        proxy.soft_stop()
        if await proxy.wait(remaining) is None:
            logger.error("the admission proxy did not finish within the grace period; stopping it")
            proxy.kill()
    server.stop()
    try:
        left = max(0.5, remaining - (asyncio.get_running_loop().time() - started))
        await asyncio.wait_for(serving, timeout=left)
    except TimeoutError:
        logger.error("in-flight requests did not finish within the grace period; exiting")
        return 1
    return 0


def main() -> None:
    settings = get_settings()
    logging.config.dictConfig(logging_config(settings.log_level))
    # Before granian starts its threads, so that they inherit the policy.
    if settings.batch_scheduling and not use_batch_scheduling():
        logger.warning("SCHED_BATCH is not available here; running under the default CPU scheduling")
    raise SystemExit(uvloop.run(serve(settings)))
