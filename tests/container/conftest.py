"""Fixtures for the container tests: a Docker engine (a missing one FAILS under CI=true, never
skips) and the image under test."""

from __future__ import annotations

import os

import pytest

from tests.container.dockerutil import DockerUnavailable, image_under_test, require_docker


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def docker_engine() -> None:
    try:
        require_docker()
    except DockerUnavailable as exc:
        if _in_ci():
            pytest.fail(f"CI=true but Docker is unavailable: {exc}", pytrace=False)
        pytest.skip(f"Docker is unavailable: {exc}")


@pytest.fixture(scope="session")
def image(docker_engine: None) -> str:
    """The service image: SCAMGUARD_TEST_IMAGE, or scamguard:test built from this tree."""
    return image_under_test()
