"""Every request example in the README and docs/ is run against the real service, and the response
the docs show is compared with what the service answers. A model or API change that alters a
documented answer fails here until the docs say what the service really does.

The convention (docs/service/api.md says it to readers too): a ```sh block holding one `curl` to
localhost:8080, optionally followed by a ```json block with the documented response. In that response
the keys shown must be present with those values, "..." stands for any value, and a number is compared
to the digits shown (0.88 matches 0.8834)."""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import urllib.parse
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from runtime.classifier import DEFAULT_MODEL_DIR
from service.app import create_app
from service.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
API_KEY = "k1"  # the key the examples use


@dataclass
class Example:
    where: str
    command: list[str]
    expected: str | None  # the documented JSON response, if any

    def __str__(self) -> str:
        return self.where


def _commands(script: str) -> list[str]:
    """The shell commands of a block: continuation lines joined, a quote may span lines."""
    commands, pending = [], ""
    for line in re.sub(r"\\\n", " ", script).splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line.strip()
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        commands.append(pending)
        pending = ""
    assert not pending, f"unterminated command: {pending[:80]}"
    return commands


def collect() -> list[Example]:
    examples = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        blocks = list(FENCE.finditer(text))
        for i, block in enumerate(blocks):
            if block.group(1) not in {"sh", "bash", "console"}:
                continue
            curls = [
                c
                for c in _commands(block.group(2))
                if c.startswith("curl ") and re.search(r"(localhost|127\.0\.0\.1):8080", c)
            ]
            if not curls:
                continue
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            documented = following is not None and following.group(1) == "json"
            # Only blocks separated by prose belong to each other: the JSON must follow the command.
            if documented and following is not None:
                documented = not text[block.end() : following.start()].strip()
            line = text[: block.start()].count("\n") + 1
            where = f"{path.relative_to(ROOT)}:{line}"
            assert len(curls) == 1 or not documented, f"{where}: one curl per block when a response follows"
            for curl in curls:
                expected = following.group(2) if documented and following is not None else None
                examples.append(Example(where, shlex.split(curl, comments=True), expected))
    return examples


EXAMPLES = collect()


def test_the_docs_have_examples() -> None:
    """Guards the collector: if the convention stopped matching, every example test would vanish."""
    readme = [e for e in EXAMPLES if e.where.startswith("README.md")]
    documented = [e for e in EXAMPLES if e.expected is not None]
    assert readme, "the README's API example is not found by the collector"
    assert len(documented) >= 10, [str(e) for e in EXAMPLES]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None


def parse_curl(argv: list[str]) -> Request:
    assert argv[0] == "curl"
    method, url, headers, body = None, None, {}, None
    args = iter(argv[1:])
    for arg in args:
        if arg in {"-s", "--silent", "-S", "--show-error", "-f", "--fail"}:
            continue
        if arg in {"-H", "--header"}:
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in {"-d", "--data", "--data-binary", "--data-raw"}:
            value = next(args)
            assert not value.startswith("@"), "examples carry their body inline (a reader has no such file)"
            body = value.encode()
        elif arg in {"-X", "--request"}:
            method = next(args)
        elif arg.startswith("-"):
            raise AssertionError(f"curl option {arg} is not understood by this test; add it here")
        else:
            url = arg
    assert url is not None, "no URL"
    if body is not None and not any(h.lower() == "content-type" for h in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"  # what curl -d sends
    split = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    path = split.path + (f"?{split.query}" if split.query else "")
    return Request(method or ("POST" if body is not None else "GET"), path, headers, body)


def matches(documented: Any, actual: Any, where: str = "$") -> list[str]:
    """Differences between a documented value and the real one (empty: they agree)."""
    if documented == "...":
        return []
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{where}: documented an object, got {actual!r}"]
        problems = []
        for key, value in documented.items():
            if key not in actual:
                problems.append(f"{where}.{key}: documented but absent")
            else:
                problems += matches(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(documented, list):
        if not isinstance(actual, list) or len(actual) != len(documented):
            return [f"{where}: documented {documented!r}, got {actual!r}"]
        return [
            p
            for i, (d, a) in enumerate(zip(documented, actual, strict=True))
            for p in matches(d, a, f"{where}[{i}]")
        ]
    if isinstance(documented, Decimal):
        digits = -documented.as_tuple().exponent  # type: ignore[operator]
        if not isinstance(actual, int | float) or isinstance(actual, bool):
            return [f"{where}: documented {documented}, got {actual!r}"]
        shown = Decimal(repr(actual)).quantize(Decimal(1).scaleb(-digits))
        return [] if shown == documented else [f"{where}: documented {documented}, the service says {actual}"]
    if documented != actual or type(documented) is not type(actual):
        return [f"{where}: documented {documented!r}, got {actual!r}"]
    return []


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[bool, TestClient]]:
    """One app without keys and one with the examples' key, each with the shipped model loaded."""
    made = {
        keyed: TestClient(
            create_app(Settings(model_dir=DEFAULT_MODEL_DIR, api_keys=(API_KEY,) if keyed else ())),
            raise_server_exceptions=False,
        )
        for keyed in (False, True)
    }
    for client in made.values():
        client.__enter__()
    yield made
    for client in made.values():
        client.__exit__(None, None, None)


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_documented_example_answers_as_documented(example: Example, clients: dict[bool, TestClient]) -> None:
    request = parse_curl(example.command)
    keyed = any(h.lower() in {"authorization", "x-api-key"} for h in request.headers)
    response = clients[keyed].request(
        request.method, request.path, headers=request.headers, content=request.body
    )
    if example.expected is None:
        assert response.status_code < 300, f"{example}: {response.status_code} {response.text[:300]}"
        return
    documented = json.loads(example.expected, parse_float=Decimal)
    problems = matches(documented, response.json())
    assert not problems, f"{example}: the docs disagree with the service:\n" + "\n".join(problems)
