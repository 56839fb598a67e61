"""ServiceImage in-process under Pulumi's mocks (@pulumi.runtime.test awaits every assertion)."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings as runtime_settings

from infra.image import RegistryCredentials, ServiceImage, ServiceImageArgs

DIGEST = "sha256:" + "ab" * 32
registered: dict[str, dict[str, Any]] = {}


class ImageMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[Any, Any]]:
        registered[args.name] = dict(args.inputs)
        return f"{args.name}-id", {**args.inputs, "digest": DIGEST}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]]]:
        return {}, []


@pytest.fixture(autouse=True)
def _mocks() -> None:
    registered.clear()
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(ImageMocks(), project="scamguard", stack="unit", preview=False)


@pulumi.runtime.test
def test_pushed_image_is_deployed_by_digest_with_registry_credentials() -> pulumi.Output[None]:
    image = ServiceImage(
        "t",
        ServiceImageArgs(
            repository="europe-west1-docker.pkg.dev/p/r/scamguard-api",
            tag="1.2.3",
            push=True,
            credentials=RegistryCredentials(
                address="europe-west1-docker.pkg.dev", username="oauth2accesstoken", password="token"
            ),
            build_args={"VERSION": "1.2.3"},
        ),
    )

    def check(values: list[Any]) -> None:
        ref, tag = values
        assert ref == f"europe-west1-docker.pkg.dev/p/r/scamguard-api@{DIGEST}"
        assert tag == "europe-west1-docker.pkg.dev/p/r/scamguard-api:1.2.3"
        build = registered["t-build"]
        assert build["push"] is True
        assert build["load"] is False
        assert build["platforms"] == ["linux/amd64"]
        assert build["buildArgs"] == {"VERSION": "1.2.3"}
        registries = build["registries"]  # the whole list is secret: it carries the password
        assert registries["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
        assert registries["value"][0]["address"] == "europe-west1-docker.pkg.dev"

    return pulumi.Output.all(image.ref, image.tag).apply(check)


@pulumi.runtime.test
def test_local_image_is_loaded_and_referenced_by_tag() -> pulumi.Output[None]:
    image = ServiceImage("l", ServiceImageArgs(repository="scamguard-api", tag="0.1.0", push=False))

    def check(values: list[Any]) -> None:
        ref, digest = values
        assert ref == "scamguard-api:0.1.0"
        assert digest == DIGEST
        assert registered["l-build"]["load"] is True
        assert "registries" not in registered["l-build"]

    # Waiting on the digest too: the tag alone resolves before the build is registered.
    return pulumi.Output.all(image.ref, image.digest).apply(check)


def test_unknown_platform_is_a_run_error() -> None:
    with pytest.raises(pulumi.RunError, match="linux/amd64"):
        ServiceImage("x", ServiceImageArgs(repository="r", tag="t", push=False, platform="windows/amd64"))
