"""Fixtures for the whole suite."""

from __future__ import annotations

import pytest

from tests.tools import ensure_event_loop


@pytest.fixture(autouse=True)
def event_loop_for_pulumi() -> None:
    """Before every test; module-scoped fixtures that run the program call it themselves
    (tests/infra/mocked_program.py), since they are set up before any function-scoped fixture."""
    ensure_event_loop()
