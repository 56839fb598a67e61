"""Generated views of infra.config.CONFIG_KEYS: Pulumi.yaml's ``config:`` block and the docs' table.

    uv run python -m infra.configref --write   # rewrite Pulumi.yaml from CONFIG_KEYS
    uv run python -m infra.configref --markdown  # print the configuration reference (the docs build
                                                 # inserts it into docs/infrastructure/configuration.md)

tests/infra/test_config.py fails when Pulumi.yaml and CONFIG_KEYS disagree.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Sequence

from infra.config import CONFIG_KEYS, REPO_ROOT

PULUMI_YAML = REPO_ROOT / "Pulumi.yaml"

HEADER = """\
name: scamguard
description: Scam/phishing e-mail classifier API, deployed per stack to Docker, Cloud Run, ECS or Kubernetes
runtime:
  name: python
  options:
    # uv creates .venv from pyproject.toml + uv.lock: the Pulumi program's own dependency set
    # (the model API and training lock theirs in service/ and training/).
    toolchain: uv
    virtualenv: .venv
# No `backend:` here: a project backend would override PULUMI_BACKEND_URL for every stack. The local
# stack uses a file backend (scripts/up-local.sh: PULUMI_BACKEND_URL=file://<repo>/.pulumi-state,
# passphrase secrets provider); staging/prod use a bucket (see docs/infrastructure/index.md).
#
# Every key the program reads, in the scamguard: namespace. Generated from infra/config.py
# (CONFIG_KEYS, the program's own defaults) by `uv run python -m infra.configref --write`;
# tests/infra/test_config.py keeps the two identical.
config:
"""


def pulumi_yaml() -> str:
    lines = [HEADER.rstrip("\n")]
    for key in CONFIG_KEYS:
        lines += [f"  {key.name}:", f"    type: {key.type}"]
        if key.type == "array":
            lines += ["    items:", "      type: string"]
        lines.append(f"    description: {json.dumps(key.description)}")
        if key.default is not None:
            lines.append(f"    default: {json.dumps(key.default)}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    rows = ["| Key (`scamguard:`) | Type | Default | Meaning |", "| --- | --- | --- | --- |"]
    for key in CONFIG_KEYS:
        if key.default == "" or key.default == []:
            default = "*(empty)*"
        else:
            default = f"`{json.dumps(key.default) if not isinstance(key.default, str) else key.default}`"
        meaning = key.description.replace("|", "\\|")
        rows.append(f"| `{key.name}` | {key.type} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.configref", description=(__doc__ or "").split("\n", maxsplit=1)[0]
    )
    parser.add_argument("--write", action="store_true", help="rewrite Pulumi.yaml")
    parser.add_argument("--markdown", action="store_true", help="print the configuration reference table")
    args = parser.parse_args(argv)
    if args.write:
        pathlib.Path(PULUMI_YAML).write_text(pulumi_yaml(), encoding="utf-8")
    if args.markdown:
        print(markdown_table(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
