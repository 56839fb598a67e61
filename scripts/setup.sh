#!/usr/bin/env bash
# One-time setup of everything `scripts/test.sh` needs, on Debian 12 / Ubuntu 22.04+ (as root):
#
#   sudo scripts/setup.sh            # system packages, uv, the project environment, Docker + image
#   sudo scripts/setup.sh --no-docker  # the same without the Docker engine and the service image
#
# What it installs and why:
#   Debian packages  docker.io debootstrap (the container tests; the image base when no registry
#                    answers), prometheus (promtool + a real Prometheus for the monitoring tests),
#                    prometheus-alertmanager (amtool checks the Kubernetes target's Alertmanager config),
#                    redis-server (the shared rate-limit store test), wrk (benchmarks), haproxy (the
#                    service's admission proxy, service/admission.py), python3-venv
#                    (uv's own venv), gcc libc6-dev python3-dev (runtime/_native.c, built
#                    below), locales.
#   uv               pinned, in its own venv under .cache/tools/uv (the machine's Python, pip and any
#                    other uv stay as they are); scripts/test.sh finds it there.
#   .venv            `uv sync --frozen`: the Pulumi program, the policy pack and the repo's tools;
#   service/.venv    the model API (service/uv.lock); training/.venv: training (training/uv.lock).
#   Docker           scripts/docker-env.sh up: starts dockerd if none runs, builds the service image.
# Every step is idempotent; a second run takes seconds. Each step prints its elapsed time.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.8"
UV_VENV=".cache/tools/uv"
with_docker=1
[[ ${1:-} == --no-docker ]] && with_docker=0

step() { printf '\n==> %s (%ss)\n' "$1" "$SECONDS"; }
die() {
    printf 'setup: %s\n' "$*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root for apt-get and dockerd: run 'sudo scripts/setup.sh'"
command -v apt-get >/dev/null || die "needs apt-get (Debian/Ubuntu); elsewhere install what docs/development.md lists"
export DEBIAN_FRONTEND=noninteractive

step "system packages"
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    docker.io debootstrap prometheus prometheus-alertmanager redis-server wrk haproxy locales ca-certificates \
    python3 python3-venv python3-dev gcc libc6-dev >/dev/null
# Some tools refuse to run without a real UTF-8 locale.
if ! locale -a 2>/dev/null | grep -qi '^en_US.utf8$'; then
    sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen
    locale-gen >/dev/null
fi

step "uv $UV_VERSION in its own venv ($UV_VENV)"
if [[ "$("$UV_VENV/bin/uv" --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
    rm -rf "$UV_VENV"
    # Debian's own Python: present on every Debian machine, and python3-venv was installed above.
    /usr/bin/python3 -m venv "$UV_VENV"
    "$UV_VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
"$UV_VENV/bin/uv" --version

# One environment per deliverable, each from its own lock (pyproject.toml [tool.scamguard.suites]).
for project in . service training; do
    step "environment of $project (uv sync --frozen --project $project)"
    "$UV_VENV/bin/uv" sync --frozen --quiet --project "$project"
done

# The model runtime's compiled part (runtime/_native.c); the tests fail without it (the image builds its own).
step "compiled runtime (python -m runtime.build)"
"$UV_VENV/bin/uv" run --frozen --quiet --project service python -m runtime.build

if ((with_docker)); then
    step "Docker engine and service image"
    scripts/docker-env.sh up
fi
step "setup done"
