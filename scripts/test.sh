#!/usr/bin/env bash
# The one command that runs every check: lint, types, and the whole test suite.
# Needs the project environment (uv sync); Docker, Prometheus and Redis tests need the
# system tools that scripts/ci-deps.sh installs (CI runs that first; see README).
set -euo pipefail
cd "$(dirname "$0")/.."
uv run --frozen ruff check .
uv run --frozen ruff format --check .
uv run --frozen pyright
uv run --frozen pytest "$@"
