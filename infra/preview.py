"""Offline preview: run the real program per stack under Pulumi's mocks and record the resource graph.

    uv run python -m infra.preview                 # check every Pulumi.<stack>.yaml against its snapshot
    uv run python -m infra.preview --update        # rewrite tests/infra/snapshots/<stack>.json
    uv run python -m infra.preview --stack local   # print one stack's graph

No Pulumi CLI, cloud account or Docker engine is needed: ``pulumi.runtime.set_mocks`` stands in for
the engine, the stack's config comes from ``Pulumi.<stack>.yaml`` merged over the ``Pulumi.yaml``
defaults (as the CLI does), and each resource's type, name, parent and inputs are written as sorted
JSON.  Secrets, and values that differ between machines, are redacted so the file only changes when
the program's graph does; the snapshot test (tests/infra/test_snapshots.py) fails when it changed
without the snapshot being updated, so a pull request shows every infrastructure change.

Each stack runs in a fresh Python process (``--json-one``): Pulumi's runtime keeps global state
(root stack resource, settings, config) that cannot be reset reliably between programs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import runpy
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SNAPSHOT_DIR = REPO_ROOT / "tests" / "infra" / "snapshots"
PROJECT = "scamguard"
UPDATE_COMMAND = "uv run python -m infra.preview --update"

# Values the mocks invent for outputs a provider would compute (keyed by resource type token).
# Targets add theirs in infra/targets/<name>/mocks.py: MOCK_OUTPUTS and MOCK_CALLS dicts.
MockOutputs = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
MockCall = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def fake_digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


MOCK_OUTPUTS: dict[str, MockOutputs] = {
    "docker-build:index:Image": lambda name, inputs: {
        "digest": fake_digest(name),
        "contextHash": "mock-context-hash",
        "ref": f"{(inputs.get('tags') or [name])[0]}@{fake_digest(name)}",
    },
    "docker:index/remoteImage:RemoteImage": lambda name, inputs: {
        "imageId": fake_digest(str(inputs.get("name", name))),
        "repoDigest": f"{inputs.get('name', name)}@{fake_digest(name)}",
    },
    "docker:index/volume:Volume": lambda name, inputs: {"name": inputs.get("name", f"{name}-mock")},
    "random:index/randomPassword:RandomPassword": lambda name, inputs: {"result": f"mock-password-{name}"},
}
MOCK_CALLS: dict[str, MockCall] = {}

# Inputs whose value is secret are shown as this; so are values under these keys.
SECRET = "[secret]"  # noqa: S105 - the placeholder, not a password
# How the Pulumi wire format marks a secret value ({KEY: SIG, "value": ...}).
_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105
_LONG_STRING = 160  # longer strings (rendered config files...) are shown as length + hash
# ...except JSON documents up to this size (IAM policies, task definitions): a pull request shows their
# every change, and the policy pack's tests read them from the snapshots.
_LONG_JSON = 16_384


@dataclass
class RecordedResource:
    type: str
    name: str
    parent: str  # "type::name" of the parent, "" for the stack itself
    inputs: dict[str, Any]
    custom: bool


@dataclass
class ProgramRun:
    stack: str
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def by_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> RecordedResource:
        found = [r for r in self.by_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.by_type(type_)]
            raise AssertionError(f"expected one {type_} named {name!r}, found {names}")
        return found[0]


# --------------------------------------------------------------------------- stack config


def stack_files() -> dict[str, pathlib.Path]:
    """Every Pulumi.<stack>.yaml in the repository, by stack name."""
    return {
        path.name[len("Pulumi.") : -len(".yaml")]: path
        for path in sorted(REPO_ROOT.glob("Pulumi.*.yaml"))
        if path.name.count(".") == 2
    }


def _config_string(value: Any) -> str:
    # The CLI hands the program strings; structured values (lists, maps) as JSON.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def project_defaults() -> dict[str, str]:
    """The ``default:`` of every key declared in Pulumi.yaml, as the CLI applies them."""
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    defaults: dict[str, str] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            full = key if ":" in key else f"{project['name']}:{key}"
            defaults[full] = _config_string(spec["default"])
    return defaults


def stack_config(stack: str, overrides: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """Config of a stack as the program sees it under `pulumi up`, plus its secret keys.

    Secure values (``{secure: ...}``) cannot be decrypted offline: they become a placeholder string,
    still marked secret, so the program takes the same path as with the real value.
    """
    path = stack_files()[stack]
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    config = project_defaults()
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = "mock-secret-value"
            secret_keys.append(key)
        else:
            config[key] = _config_string(value)
    for key, value in (overrides or {}).items():
        config[key] = value
    return config, secret_keys


# --------------------------------------------------------------------------- running the program


def target_mocks(target: str) -> tuple[dict[str, MockOutputs], dict[str, MockCall]]:
    """The shared mocks plus the target's own (infra/targets/<target>/mocks.py, optional)."""
    import importlib

    outputs, calls = dict(MOCK_OUTPUTS), dict(MOCK_CALLS)
    try:
        module = importlib.import_module(f"infra.targets.{target}.mocks")
    except ModuleNotFoundError as exc:
        if exc.name is None or not f"infra.targets.{target}.mocks".startswith(exc.name):
            raise
        return outputs, calls  # no mocks module (or no such target: the program reports that itself)
    outputs.update(getattr(module, "MOCK_OUTPUTS", {}))
    calls.update(getattr(module, "MOCK_CALLS", {}))
    return outputs, calls


def run_program(
    stack: str,
    config: Mapping[str, str],
    secret_keys: Sequence[str] = (),
    program: pathlib.Path = REPO_ROOT / "__main__.py",
) -> ProgramRun:
    """Run the real program once under mocks.  Call once per process (see the module docstring)."""
    import pulumi
    from pulumi.runtime import config as runtime_config
    from pulumi.runtime import mocks as runtime_mocks
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.stack import run_in_stack
    from pulumi.runtime.sync_await import _sync_await

    mock_outputs, mock_calls = target_mocks(config.get(f"{PROJECT}:target", "local"))
    run = ProgramRun(stack=stack)
    urn_names: dict[str, str] = {}

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
            outputs = dict(args.inputs)
            maker = mock_outputs.get(args.typ)
            if maker is not None:
                outputs.update(maker(args.name, args.inputs))
            return f"{args.name}-id", outputs

        def call(
            self, args: pulumi.runtime.MockCallArgs
        ) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
            maker = mock_calls.get(args.token)
            return (dict(maker(args.args)) if maker else dict(args.args)), []

    class RecordingMonitor(runtime_mocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)
            urn_names[response.urn] = f"{request.type}::{request.name}"
            if request.type != "pulumi:pulumi:Stack":
                from pulumi.runtime import rpc

                run.resources.append(
                    RecordedResource(
                        type=request.type,
                        name=request.name,
                        parent=request.parent,  # a URN: resolved to type::name below
                        inputs=rpc.deserialize_properties(request.object),
                        custom=bool(request.custom),
                    )
                )
            return response

        def RegisterResourceOutputs(self, request: Any) -> Any:
            if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
                from pulumi.runtime import rpc

                run.outputs.update(rpc.deserialize_properties(request.outputs))
            return super().RegisterResourceOutputs(request)

    mocks = Mocks()
    runtime_config.set_all_config(dict(config), list(secret_keys))
    runtime_mocks.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=False, monitor=RecordingMonitor(mocks)
    )
    runtime_settings.ROOT.set(None)  # set_mocks made a placeholder stack; the program gets its own
    try:

        def program_main() -> None:
            runpy.run_path(str(program), run_name="__main__")

        _sync_await(run_in_stack(program_main))
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, pulumi.RunError):  # a bug, not a config error: show where
            traceback.print_exc(file=sys.stderr)
        return run
    for resource in run.resources:
        resource.parent = urn_names.get(resource.parent, "")
    return run


# --------------------------------------------------------------------------- stable rendering


def redact(value: Any) -> Any:
    """Secrets -> "[secret]"; machine-specific paths -> "<repo>"; long text -> length + hash."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return SECRET
        return {k: redact(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        text = value.replace(str(REPO_ROOT), "<repo>")
        if len(text) > _LONG_STRING and not (len(text) <= _LONG_JSON and _is_json_document(text)):
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            return f"<{len(text)} chars, sha256:{digest}>"
        return text
    if isinstance(value, int | float | bool) or value is None:
        return value
    return f"<{type(value).__name__}>"


def _is_json_document(text: str) -> bool:
    if not text.lstrip().startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def graph(run: ProgramRun) -> dict[str, Any]:
    if run.error is not None:
        return {"stack": run.stack, "error": run.error.replace(str(REPO_ROOT), "<repo>")}
    resources = sorted(
        (
            {
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "custom": r.custom,
                "inputs": redact(r.inputs),
            }
            for r in run.resources
        ),
        key=lambda r: (r["type"], r["name"]),
    )
    return {"stack": run.stack, "outputs": redact(run.outputs), "resources": resources}


def render(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def graph_in_subprocess(stack: str, overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The stack's graph, computed in a fresh interpreter (clean Pulumi runtime state).

    ``overrides``: full config keys (``scamguard:target``) to values, over the stack's own.
    """
    sets = [arg for key, value in sorted((overrides or {}).items()) for arg in ("--set", f"{key}={value}")]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("PULUMI_CONFIG", None)
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "infra.preview", "--json-one", stack, *sets],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"offline preview of stack {stack!r} crashed:\n{result.stderr}")
    return json.loads(result.stdout)


def snapshot_path(stack: str) -> pathlib.Path:
    return SNAPSHOT_DIR / f"{stack}.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.preview", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--stack", action="append", help="only this stack (repeatable); default: all")
    parser.add_argument("--update", action="store_true", help="rewrite the committed snapshots")
    parser.add_argument("--json-one", metavar="STACK", help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    os.chdir(REPO_ROOT)  # the program's relative paths (build context) are relative to the project
    if args.json_one:
        overrides = dict(item.split("=", 1) for item in args.set)
        config, secret_keys = stack_config(args.json_one, overrides)
        sys.stdout.write(render(graph(run_program(args.json_one, config, secret_keys))))
        return 0

    stacks = args.stack or sorted(stack_files())
    checking = not args.update and not args.stack
    if checking:
        print(f"running the program under mocks for {len(stacks)} stacks (one process each)", flush=True)
    stale: list[str] = []
    for stack in stacks:
        graph_ = graph_in_subprocess(stack)
        text = render(graph_)
        path = snapshot_path(stack)
        if args.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO_ROOT)}")
        elif args.stack:
            sys.stdout.write(text)
        else:
            same = path.exists() and path.read_text(encoding="utf-8") == text
            what = "program error" if "error" in graph_ else f"{len(graph_['resources'])} resources"
            verdict = "matches" if same else "DIFFERS FROM"
            print(f"{stack}: {what}, {verdict} {path.relative_to(REPO_ROOT)}")
            if not same:
                stale.append(stack)
    if stale:
        print(f"snapshots out of date for: {', '.join(stale)}; run: {UPDATE_COMMAND}", file=sys.stderr)
        return 1
    if checking:
        print(f"all {len(stacks)} stacks match their snapshots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
