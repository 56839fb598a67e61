"""Deployment targets: one package per target, each exporting one Platform subclass."""

from __future__ import annotations

import pulumi

from infra.config import TARGETS, Settings
from infra.platform import AnyPlatform

IMPLEMENTED = ("local", "gcp", "kubernetes")


def platform_for(settings: Settings) -> AnyPlatform:
    """The Platform of ``settings.target``; targets are imported lazily (their SDKs are large)."""
    if settings.target == "local":
        from infra.targets.local import LocalPlatform

        return LocalPlatform(settings)
    if settings.target == "gcp":
        from infra.targets.gcp import GcpPlatform

        return GcpPlatform(settings)
    if settings.target == "kubernetes":
        from infra.targets.kubernetes import KubernetesPlatform

        return KubernetesPlatform(settings)
    if settings.target in TARGETS:
        raise pulumi.RunError(
            f"target {settings.target!r} (config {settings.project}:target of stack {settings.stack!r}) "
            f"is planned but not implemented in this version; implemented targets: {', '.join(IMPLEMENTED)}"
        )
    raise pulumi.RunError(f"unknown target {settings.target!r}; allowed: {', '.join(TARGETS)}")
