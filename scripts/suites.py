"""The test suites of pyproject.toml ([tool.scamguard.suites]), for scripts/test.sh. Standard library only.

    python3 scripts/suites.py [PATH ...]

Prints one line per suite that has something to run: `name<TAB>project<TAB>code<TAB>tests`, the
last two space-separated. Without paths, each suite's own test paths; with paths (what a user passed
to scripts/test.sh), each path goes to the suite whose test paths contain it, and a path that no
suite contains is an error, so nothing is silently left out.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import TypedDict, cast

REPO = Path(__file__).resolve().parents[1]


class Suite(TypedDict):
    project: str  # the uv project (its folder) whose environment runs the suite
    code: list[str]  # what pyright checks besides the tests
    tests: list[str]  # what pytest runs


def suites() -> dict[str, Suite]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return cast(dict[str, Suite], tomllib.load(handle)["tool"]["scamguard"]["suites"])


def _contains(root: str, path: str) -> bool:
    root_parts, parts = Path(root).parts, Path(path).parts
    return parts[: len(root_parts)] == root_parts


def owner(path: str, table: dict[str, Suite]) -> str | None:
    """The suite whose test paths contain `path` (a file or folder, with or without ::test)."""
    plain = path.split("::", 1)[0].rstrip("/")
    for name, suite in table.items():
        if any(_contains(root, plain) for root in suite["tests"]):
            return name
    return None


def main(argv: list[str]) -> int:
    table = suites()
    selected: dict[str, list[str]] = {}
    if argv:
        for path in argv:
            name = owner(path, table)
            if name is None:
                print(f"scripts/suites.py: {path} is in no test suite of pyproject.toml", file=sys.stderr)
                return 2
            selected.setdefault(name, []).append(path)
    else:
        selected = {name: list(suite["tests"]) for name, suite in table.items()}
    for name, tests in selected.items():
        suite = table[name]
        code = " ".join(suite["code"])
        print(f"{name}\t{suite['project']}\t{code}\t{' '.join(tests)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
