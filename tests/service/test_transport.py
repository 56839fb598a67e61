"""The server's write-joining transport: one send per loop iteration, nothing lost or reordered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from service.server import _CoalescingTransport


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 5555)}.get(name)


class FakeLoop:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def run_once(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


def make() -> tuple[_CoalescingTransport, FakeTransport, FakeLoop]:
    real, loop = FakeTransport(), FakeLoop()
    wrapper = _CoalescingTransport(cast(asyncio.Transport, real), cast(asyncio.AbstractEventLoop, loop))
    return wrapper, real, loop


def test_writes_of_one_iteration_go_out_as_one() -> None:
    transport, real, loop = make()
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(bytearray(b"ok"))
    assert real.writes == []  # nothing sent before the loop comes round
    assert len(loop.callbacks) == 1  # one flush scheduled, however many writes
    loop.run_once()
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    transport.write(b"next")
    loop.run_once()
    assert real.writes[-1] == b"next"


def test_close_sends_what_was_written_first() -> None:
    transport, real, loop = make()
    transport.write(b"last response")
    transport.close()
    assert real.writes == [b"last response"]
    assert real.closed
    loop.run_once()  # the scheduled flush finds nothing left to send
    assert real.writes == [b"last response"]


def test_abort_drops_pending_and_other_calls_pass_through() -> None:
    transport, real, loop = make()
    transport.write(b"never sent")
    transport.abort()
    loop.run_once()
    assert real.writes == []
    assert real.aborted
    assert transport.get_extra_info("peername") == ("127.0.0.1", 5555)
    assert transport.is_closing()
