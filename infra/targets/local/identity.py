"""Local target: the runtime principal is the image's unprivileged user; there is no cloud IAM."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.platform import Identity

# The fixed non-root UID:GID created by service/Dockerfile.
SERVICE_USER = "10001:10001"


@dataclass
class LocalIdentityArgs:
    user: pulumi.Input[str] = SERVICE_USER


class LocalIdentity(Identity):
    def __init__(
        self, name: str, args: LocalIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:local:Identity", name, None, opts)
        self.principal = pulumi.Output.from_input(args.user)
        self.register_outputs({"principal": self.principal})
