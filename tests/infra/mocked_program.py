"""Run the real program for one stack under Pulumi's mocks, in this process, and record what it registered.

``@pulumi.runtime.test`` waits for every resource registration, so tests assert on the records
afterwards and an assertion can never be skipped inside an unresolved Output. Mocked inputs are
camelCase; the target's own mocks (infra/targets/<target>/mocks.py) fill in computed outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pulumi
from pulumi.runtime import mocks as runtime_mocks

from infra import preview
from infra.config import Settings, load_settings
from infra.deploy import deploy
from infra.targets import platform_for
from tests.tools import ensure_event_loop


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    urn: str = ""
    retain_on_delete: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    parent: str = ""  # the parent's URN
    # The parent URN of each alias (the resource's former place in the tree), "" for none.
    alias_parents: list[str] = field(default_factory=list)


@dataclass
class Record:
    """What a program run registered (the target test modules subclass it with their own lookups)."""

    stack: str
    resources: list[Registered]
    outputs: dict[str, Any]
    settings: Settings

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Registered:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(found) == 1, (
            f"expected one {type_} {name or ''}, got {[r.name for r in self.of_type(type_)]}"
        )
        return found[0]


RecordT = TypeVar("RecordT")


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, target: str) -> None:
        self.outputs, self.calls = preview.target_mocks(target)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        outputs = dict(args.inputs)
        maker = self.outputs.get(args.typ)
        if maker is not None:
            outputs.update(maker(args.name, args.inputs))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]]]:
        maker = self.calls.get(args.token)
        return (dict(maker(args.args)) if maker else dict(args.args)), []


def run_stack(
    make: Callable[[str, list[Registered], dict[str, Any], Settings], RecordT],
    stack: str,
    overrides: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> RecordT:
    """Run the real program for `stack` (Pulumi.<stack>.yaml plus overrides) under mocks;
    ``make(stack, resources, outputs, settings)`` builds the test's record of it."""
    ensure_event_loop()
    config, secret_keys = preview.stack_config(stack, {**(overrides or {}), **(secrets or {})})
    secret_keys = [*secret_keys, *(secrets or {})]
    registered: list[Registered] = []
    outputs: dict[str, Any] = {}
    captured: list[Settings] = []

    class Monitor(runtime_mocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:  # gRPC method name
            response = super().RegisterResource(request)
            if request.custom:
                from pulumi.runtime import rpc

                props = rpc.deserialize_properties(request.object)
                registered.append(
                    Registered(
                        request.type,
                        request.name,
                        props,
                        list(request.dependencies),
                        response.urn,
                        bool(getattr(request, "retainOnDelete", False)),
                        list(getattr(request, "ignoreChanges", [])),
                        request.parent,
                        [a.spec.parentUrn for a in request.aliases if a.HasField("spec")],
                    )
                )
            return response

    mocks = _Mocks(config.get("scamguard:target", "local"))
    pulumi.runtime.set_all_config(config, secret_keys)
    runtime_mocks.set_mocks(mocks, project="scamguard", stack=stack, preview=False, monitor=Monitor(mocks))

    @pulumi.runtime.test
    def program() -> pulumi.Output[None]:
        settings = load_settings()
        captured.append(settings)
        result = deploy(platform_for(settings), settings)
        return pulumi.Output.all(
            service_url=result.service_url,
            image_ref=result.image_ref,
            grafana_url=result.grafana_url,
            prometheus_url=result.prometheus_url,
            **{k: pulumi.Output.from_input(v) for k, v in result.extra.items()},
        ).apply(outputs.update)

    program()
    assert len(registered) > 15, "the program registered (almost) nothing: mocks are not wired"
    return make(stack, registered, outputs, captured[0])


def unwrap(value: Any) -> Any:
    """Plain value of a deserialized property (secrets arrive as {sig: ..., value: ...})."""
    if isinstance(value, dict) and preview._SECRET_SIG_KEY in value:
        return value.get("value")
    return value
