"""The service image, built the same way for every target (pulumi_docker_build, BuildKit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_docker_build as docker_build

# Relative to the project directory, which is the working directory of `pulumi up` (and of the
# tests): stable across machines, so previews and snapshots do not depend on the checkout path.
# The context is the repository root so that service/Dockerfile can copy the model runtime
# (runtime/) as well as service/ (with its lock); .dockerignore keeps the rest out.
BUILD_CONTEXT = "."
DOCKERFILE = "service/Dockerfile"

_PLATFORMS: Mapping[str, docker_build.Platform] = {
    "linux/amd64": docker_build.Platform.LINUX_AMD64,
    "linux/arm64": docker_build.Platform.LINUX_ARM64,
}


@dataclass(frozen=True)
class RegistryCredentials:
    """Credentials the image build uses to push (pulumi_docker_build RegistryArgs)."""

    address: pulumi.Input[str]  # registry host, e.g. europe-west1-docker.pkg.dev
    username: pulumi.Input[str]
    password: pulumi.Input[str]  # secret (e.g. a short-lived OAuth token)


@dataclass
class ServiceImageArgs:
    repository: pulumi.Input[str]  # Registry.repository
    tag: pulumi.Input[str]  # human-readable tag; deployments use the digest
    push: bool  # Registry.push
    credentials: RegistryCredentials | None = None  # Registry.credentials
    build_args: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    labels: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    platform: str = "linux/amd64"
    context: str = BUILD_CONTEXT
    dockerfile: str = DOCKERFILE


class ServiceImage(pulumi.ComponentResource):
    """Builds service/ into an image; pushes it when the registry says so.

    ref: what a deployment runs.  Pushed images: ``REPOSITORY@sha256:...`` (by digest, so every
        environment runs exactly the bytes that were built, and a new build is a new revision).
        Local engine (not pushed): the tag, loaded into the local image store.
    digest: the image digest (empty for a local build that was not exported).
    """

    ref: pulumi.Output[str]
    digest: pulumi.Output[str]
    tag: pulumi.Output[str]

    def __init__(self, name: str, args: ServiceImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:image:ServiceImage", name, None, opts)
        if args.platform not in _PLATFORMS:
            raise pulumi.RunError(f"image platform {args.platform!r} is not one of {', '.join(_PLATFORMS)}")
        tag = pulumi.Output.concat(args.repository, ":", args.tag)
        registries = None
        if args.credentials is not None:
            registries = [
                docker_build.RegistryArgs(
                    address=args.credentials.address,
                    username=args.credentials.username,
                    password=pulumi.Output.secret(args.credentials.password),
                )
            ]
        self.image = docker_build.Image(
            f"{name}-build",
            context=docker_build.BuildContextArgs(location=args.context),
            dockerfile=docker_build.DockerfileArgs(location=args.dockerfile),
            platforms=[_PLATFORMS[args.platform]],
            build_args=dict(args.build_args),
            labels=dict(args.labels),
            tags=[tag],
            push=args.push,
            # Without a push the result must land in the local engine's image store to be run.
            load=not args.push,
            registries=registries,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.tag = tag
        self.digest = self.image.digest
        if args.push:
            self.ref = pulumi.Output.concat(args.repository, "@", self.image.digest)
        else:
            self.ref = tag
        self.register_outputs({"ref": self.ref, "digest": self.digest, "tag": self.tag})
