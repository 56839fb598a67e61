from __future__ import annotations

import pytest

from tests import tools


def require_tool(name: str) -> str:
    return tools.require_tool(name, "prometheus")


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return require_tool("prometheus")
