"""Local target: the "registry" is the engine's own image store (nothing to create, nothing pushed)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.platform import Registry


@dataclass
class LocalRegistryArgs:
    image_name: pulumi.Input[str]


class LocalRegistry(Registry):
    def __init__(
        self, name: str, args: LocalRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("scamguard:local:Registry", name, None, opts)
        self.repository = pulumi.Output.from_input(args.image_name)
        self.push = False  # the build loads the image into the local engine instead
        self.credentials = None
        self.register_outputs({"repository": self.repository})
