"""Run the API under uvicorn with graceful shutdown (`python -m service`).

On SIGTERM/SIGINT: readiness fails at once (draining), then - after the optional drain delay - the
listener closes, in-flight requests finish within the grace period, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
from types import FrameType
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.app import create_app
from service.logs import logging_config
from service.settings import Settings, get_settings
from service.state import ServiceState

logger = logging.getLogger("scamguard")


class DrainingServer(uvicorn.Server):
    """uvicorn.Server that flips readiness before uvicorn starts its own shutdown."""

    def __init__(self, config: uvicorn.Config, state: ServiceState, drain_delay_seconds: float) -> None:
        super().__init__(config)
        self.state = state
        self.drain_delay_seconds = drain_delay_seconds
        self._delayed_exit: asyncio.TimerHandle | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.state.start_draining()
        if self.drain_delay_seconds > 0 and self._delayed_exit is None and not self.should_exit:
            # Keep accepting for a moment (readiness already fails) so load balancers stop routing here
            # before the listener closes. A second signal exits at once.
            logger.info(
                "shutdown requested; closing the listener after the drain delay",
                extra={"drain_delay_seconds": self.drain_delay_seconds, "signal": sig},
            )
            loop = asyncio.get_running_loop()
            self._delayed_exit = loop.call_later(self.drain_delay_seconds, super().handle_exit, sig, None)
            return
        if self._delayed_exit is not None:
            self._delayed_exit.cancel()
        super().handle_exit(sig, frame)


class _CoalescingTransport:
    """A transport whose writes go out once per event-loop iteration, joined into one send.

    uvicorn writes a response's status line and headers, then its body, each with its own send(2)
    on loopback/TCP: two syscalls per small response, about half the CPU of a constant endpoint
    (py-spy under wrk). Joined, a small response is one send. Everything else is the real transport.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(bytes(data))

    def _flush(self) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            if not self._transport.is_closing():
                self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()  # what was written before close() still goes out, as with a plain transport
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over `_CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, _CoalescingTransport(transport, self.loop)))


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    """Stands in for the default action when uvicorn re-raises the signal after a clean drain."""


def build_server(settings: Settings) -> DrainingServer:
    app = create_app(settings)
    remaining = settings.shutdown_grace_seconds - settings.shutdown_drain_delay_seconds
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=CoalescingHttpToolsProtocol if settings.http_impl == "httptools" else settings.http_impl,
        loop=settings.loop_impl,
        lifespan="on",
        access_log=False,
        log_config=logging_config(settings.log_level),
        log_level=settings.log_level.lower(),
        # With a hop count the pipeline reads X-Forwarded-For itself (from the right); uvicorn's
        # proxy handling would take a client-written entry when every peer is trusted.
        proxy_headers=settings.forwarded_hops == 0,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        # Leave ~1 s of the grace period for the lifespan shutdown and process exit.
        timeout_graceful_shutdown=max(1, math.floor(remaining - 1)),
        timeout_keep_alive=settings.keep_alive_seconds,
    )
    return DrainingServer(config, app.state.service, settings.shutdown_drain_delay_seconds)


def main() -> None:
    settings = get_settings()
    server = build_server(settings)
    # uvicorn restores the previous handlers and re-raises the signal after its graceful shutdown;
    # with the default handler that would kill the process (exit 143) right after a clean drain.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ignore_signal)
    server.run()
    if not server.started:
        raise SystemExit(3)
