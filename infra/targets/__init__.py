"""Deployment targets: one package per target, each exporting one Platform subclass."""

from __future__ import annotations

import pulumi

from infra.config import TARGETS, Settings
from infra.platform import AnyPlatform


def platform_for(settings: Settings) -> AnyPlatform:
    """The Platform of ``settings.target``; targets are imported lazily (their SDKs are large)."""
    if settings.target == "local":
        from infra.targets.local import LocalPlatform

        return LocalPlatform(settings)
    if settings.target == "gcp":
        from infra.targets.gcp import GcpPlatform

        return GcpPlatform(settings)
    if settings.target == "aws":
        from infra.targets.aws import AwsPlatform

        return AwsPlatform(settings)
    if settings.target == "kubernetes":
        from infra.targets.kubernetes import KubernetesPlatform

        return KubernetesPlatform(settings)
    raise pulumi.RunError(f"unknown target {settings.target!r}; allowed: {', '.join(TARGETS)}")
