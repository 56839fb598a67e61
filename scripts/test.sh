#!/usr/bin/env bash
# The one command that runs every check: lint, formatting, types, the docs build and the whole
# test suite (about 7 minutes on 2 cores). Extra arguments go to pytest, e.g. `scripts/test.sh tests/service`.
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

uv run --frozen ruff check .
uv run --frozen ruff format --check .
uv run --frozen pyright
uv run --frozen pytest "$@"
