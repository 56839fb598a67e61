#!/usr/bin/env bash
# Bring up the `local` stack on this machine's Docker engine: `pulumi up --stack local`, wrapped so
# that a fresh clone needs nothing else. No cloud account, no Pulumi Cloud login:
#   - the Python environment comes from uv (pyproject.toml + uv.lock -> .venv),
#   - state lives in a local file backend (<repo>/.pulumi-state, git-ignored),
#   - secrets are encrypted with a passphrase (PULUMI_CONFIG_PASSPHRASE).
#
# Usage: scripts/up-local.sh [extra `pulumi up` flags, e.g. --yes or --skip-preview]
#        scripts/up-local.sh destroy [--yes]     # tear the local stack down
#        scripts/up-local.sh preview             # show what would change
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

die() { printf 'up-local: %s\n' "$*" >&2; exit 1; }

command -v pulumi >/dev/null 2>&1 || die "the Pulumi CLI is not installed (or not on PATH).
  Install it: curl -fsSL https://get.pulumi.com | sh   (or: brew install pulumi)
  See https://www.pulumi.com/docs/iac/download-install/ then run this script again.
  Without it you can still run:
    uv run --project service python -m service           # the API alone on http://127.0.0.1:8080
    sudo scripts/docker-env.sh up      # build the image, then: docker run --rm --read-only -p 127.0.0.1:8080:8080 scamguard:dev
    uv run python -m infra.preview     # every stack's resource graph offline, checked against its snapshot
    scripts/test.sh                    # every check (docs/development.md)"
command -v docker >/dev/null 2>&1 || die "Docker is not installed (or not on PATH).
  Install Docker Engine or Docker Desktop: https://docs.docker.com/engine/install/
  (On Debian: apt-get install docker.io; scripts/docker-env.sh up starts an engine.)"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (is it running? may you use it?).
  Start it (systemctl start docker, Docker Desktop, or scripts/docker-env.sh up) and try again."
command -v uv >/dev/null 2>&1 || die "uv is not installed: https://docs.astral.sh/uv/getting-started/installation/
  (or: python3 -m pip install uv)"

# The same locked environment the tests use; Pulumi.yaml's runtime options point at this .venv.
uv sync --frozen

# A file backend inside the repository: no account, nothing global changed (no `pulumi login`).
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://${repo}/.pulumi-state}"
mkdir -p "${repo}/.pulumi-state"
# The passphrase protects the secrets in the local state (the Grafana admin password, API keys).
# The default is fine for a throwaway local stack; export your own before the first run to keep
# it private (and keep using the same one afterwards: it cannot be changed without re-encrypting).
if [[ -z "${PULUMI_CONFIG_PASSPHRASE:-}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
  export PULUMI_CONFIG_PASSPHRASE="scamguard-local"
  printf 'up-local: PULUMI_CONFIG_PASSPHRASE not set: using the local default (see docs/getting-started.md)\n' >&2
fi
export PULUMI_SKIP_UPDATE_CHECK=true

pulumi stack select local >/dev/null 2>&1 \
  || pulumi stack init local --secrets-provider passphrase

action="up"
case "${1:-}" in
  destroy|preview|refresh) action="$1"; shift ;;
esac
exec pulumi "$action" --stack local "$@"
