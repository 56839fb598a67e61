"""Fixtures for the whole suite."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture(autouse=True)
def event_loop_for_pulumi() -> None:
    """The Pulumi SDK calls asyncio.get_event_loop() (on import and in its mocks), which raises once an
    earlier test's asyncio.run() has left the thread without a loop: the suite order must not matter."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
