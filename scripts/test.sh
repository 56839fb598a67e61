#!/usr/bin/env bash
# The one command that runs every check: lint, formatting, types, the docs build and the whole
# test suite (about 8 minutes on 2 cores). Extra arguments go to pytest, e.g. `scripts/test.sh tests/service -x`.
#
# Each deliverable has its own environment (pyproject.toml [tool.scamguard.suites]): the model API's
# suite runs in service/.venv, training's in training/.venv, the Pulumi program's (and the repo-wide
# checks) in .venv. Each suite is type-checked and tested in its own; a path argument runs only the
# suite it belongs to.
#
# It needs the tools that `sudo scripts/setup.sh` installs (Debian/Ubuntu). When one is missing it
# stops at once with one line naming what to install, instead of failing tests one by one.
# SCAMGUARD_TEST_PARTIAL=1 runs anyway: the tests that need a missing tool are skipped (never in CI,
# where they fail).
set -euo pipefail
cd "$(dirname "$0")/.."

# uv from PATH, else the one scripts/setup.sh put in its own venv.
if ! command -v uv >/dev/null && [[ -x .cache/tools/uv/bin/uv ]]; then
    PATH="$PWD/.cache/tools/uv/bin:$PATH"
fi

missing=()
command -v uv >/dev/null || missing+=("uv")
command -v redis-server >/dev/null || missing+=("redis-server")
command -v wrk >/dev/null || missing+=("wrk")
command -v haproxy >/dev/null || missing+=("haproxy")
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=("prometheus+promtool")
command -v amtool >/dev/null || missing+=("amtool (prometheus-alertmanager)")
[[ -d ../shared/schemas ]] || missing+=("../shared/schemas (the CRD schemas beside this clone)")
[[ -d ../shared/data ]] || missing+=("../shared/data (the training corpora beside this clone)")
if [[ -z ${SCAMGUARD_TEST_IMAGE:-} ]] && ! docker info >/dev/null 2>&1; then
    missing+=("a running Docker engine (or SCAMGUARD_TEST_IMAGE)")
fi
if ((${#missing[@]})); then
    printf -v joined '%s, ' "${missing[@]}"
    line="scripts/test.sh needs: ${joined%, } -- run 'sudo scripts/setup.sh' once (Debian/Ubuntu; other systems: docs/development.md)"
    if [[ ${SCAMGUARD_TEST_PARTIAL:-} == 1 && ${CI:-} != true ]] && command -v uv >/dev/null; then
        echo "$line; SCAMGUARD_TEST_PARTIAL=1: the tests that need them are skipped" >&2
    else
        echo "$line" >&2
        exit 2
    fi
fi

options=() paths=()
for arg in "$@"; do
    if [[ $arg != -* && -e ${arg%%::*} ]]; then paths+=("$arg"); else options+=("$arg"); fi
done

uv run --frozen ruff check .
uv run --frozen ruff format --check .
plan="$(python3 scripts/suites.py "${paths[@]}")"
status=0
while IFS=$'\t' read -r name project code tests; do
    printf '\n==> suite %s (environment of %s)\n' "$name" "$project"
    read -ra code_paths <<<"$code"
    read -ra test_paths <<<"$tests"
    uv sync --frozen --quiet --project "$project"
    python="$project/.venv/bin/python"
    uv run --frozen pyright --pythonpath "$python" "${code_paths[@]}" "${test_paths[@]}" || status=1
    # SCAMGUARD_SERVICE_PYTHON: the interpreter a test starts the model API with (tests/tools.py).
    SCAMGUARD_SERVICE_PYTHON="$PWD/service/.venv/bin/python" \
        uv run --frozen --project "$project" pytest "${test_paths[@]}" "${options[@]}" || status=1
done <<<"$plan"
exit "$status"
