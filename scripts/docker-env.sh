#!/usr/bin/env bash
# Docker environment for scamguard: used by CI (.ci/run) and by developers.
#
#   scripts/docker-env.sh up          # engine + base image + wheelhouse + service image (all of below)
#   scripts/docker-env.sh engine      # install Debian's docker.io if dockerd is missing; start dockerd
#   scripts/docker-env.sh base        # make sure a Python 3.11 base image exists (pull, else debootstrap)
#   scripts/docker-env.sh wheelhouse  # pip download the hash-pinned runtime wheels (linux x86_64, cp311)
#   scripts/docker-env.sh build       # build the service image offline from the wheelhouse
#   scripts/docker-env.sh image       # base + wheelhouse + build (needs a running engine)
#   scripts/docker-env.sh env         # print the variables the container tests read (eval-able)
#   scripts/docker-env.sh down        # stop the dockerd this script started (by its PID file), nothing else
#
# Every step is idempotent: a second `up` finds the running engine, the base image, the downloaded
# wheels and the cached layers, and finishes in seconds. Settings (environment variables):
#   SCAMGUARD_IMAGE        tag of the service image        (default scamguard:dev)
#   SCAMGUARD_BASE_IMAGE   base image to build on          (default: python:3.11-slim if it is present or
#                          can be pulled, else the local debootstrap image scamguard/base:bookworm-py311)
#   SCAMGUARD_DOCKER_STATE where the PID file and logs live (default .cache/docker-env in the repo)
#   DEBIAN_MIRROR          mirror for debootstrap          (default: the first one apt is configured with)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SCAMGUARD_DOCKER_STATE:-$REPO/.cache/docker-env}"
IMAGE="${SCAMGUARD_IMAGE:-scamguard:dev}"
UPSTREAM_BASE="python:3.11-slim"
LOCAL_BASE="scamguard/base:bookworm-py311"
WHEELHOUSE="$REPO/.wheelhouse"
LOCK="$REPO/service/requirements.lock"
PIDFILE="$STATE/dockerd.pid"
# Every step logs into $STATE, not only the engine step (which returns early when an engine runs).
mkdir -p "$STATE"

log() { printf '[docker-env] %s\n' "$*" >&2; }
die() {
    printf '[docker-env] ERROR: %s\n' "$*" >&2
    exit 1
}

need_root() { [[ $(id -u) -eq 0 ]] || die "$1 needs root (run with sudo)"; }

apt_install() {
    need_root "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    # apt lists may be missing on a fresh machine; another apt may hold the lock for a while.
    if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]]; then
        apt-get -o DPkg::Lock::Timeout=300 update -qq
    fi
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null ||
        { apt-get -o DPkg::Lock::Timeout=300 update -qq &&
            apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null; }
}

engine_up() {
    if docker info >/dev/null 2>&1; then
        log "engine: a Docker engine is already running"
        return
    fi
    if ! command -v dockerd >/dev/null; then
        log "engine: installing Debian's docker.io"
        apt_install docker.io
    fi
    # The docker client may come from elsewhere (e.g. /usr/local/bin); Debian's works with its dockerd.
    command -v docker >/dev/null || apt_install docker.io
    need_root "starting dockerd"
    if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        log "engine: dockerd (PID $(cat "$PIDFILE")) is starting"
    else
        log "engine: starting dockerd (log $STATE/dockerd.log)"
        # setsid: the daemon outlives this shell and a Ctrl-C in it; stopped by `down` via the PID file.
        setsid dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
        echo $! >"$PIDFILE"
    fi
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && {
            log "engine: ready (dockerd PID $(cat "$PIDFILE"))"
            return
        }
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || {
            tail -20 "$STATE/dockerd.log" >&2 || true
            die "dockerd exited; see $STATE/dockerd.log"
        }
        sleep 0.5
    done
    die "dockerd did not answer within 30 s; see $STATE/dockerd.log"
}

engine_down() {
    if [[ ! -f $PIDFILE ]]; then
        log "down: no dockerd started by this script"
        return
    fi
    local pid
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; then
        log "down: stopping dockerd PID $pid"
        kill -TERM "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$pid" 2>/dev/null && die "dockerd PID $pid did not stop within 30 s"
    fi
    rm -f "$PIDFILE"
}

debian_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local m
    m="$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 |
        sed 's/^URIs: *//')"
    [[ -z $m ]] && m="$(grep -hoE '^deb +http[^ ]*/debian/? ' /etc/apt/sources.list 2>/dev/null | head -1 |
        awk '{print $2}')"
    echo "${m:-http://deb.debian.org/debian}"
}

resolve_base() {
    if [[ -n ${SCAMGUARD_BASE_IMAGE:-} ]]; then
        echo "$SCAMGUARD_BASE_IMAGE"
    elif docker image inspect "$UPSTREAM_BASE" >/dev/null 2>&1; then
        echo "$UPSTREAM_BASE"
    else
        echo "$LOCAL_BASE"
    fi
}

base_image() {
    local base
    base="$(resolve_base)"
    if docker image inspect "$base" >/dev/null 2>&1; then
        log "base: $base is present"
        return
    fi
    if [[ $base != "$LOCAL_BASE" ]]; then
        timeout 300 docker pull "$base" >&2 || die "cannot pull the base image $base"
        return
    fi
    # No network to a registry answers quickly with an error; a slow one gets 60 s.
    if timeout 60 docker pull -q "$UPSTREAM_BASE" >/dev/null 2>&1; then
        log "base: pulled $UPSTREAM_BASE"
        return
    fi
    log "base: $UPSTREAM_BASE cannot be pulled; making $LOCAL_BASE with debootstrap"
    need_root "debootstrap"
    command -v debootstrap >/dev/null || apt_install debootstrap
    local root
    root="$(mktemp -d /var/tmp/scamguard-rootfs.XXXXXX)"
    # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
    trap "rm -rf '$root'" EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$root" "$(debian_mirror)" >"$STATE/debootstrap.log" 2>&1 ||
        {
            tail -20 "$STATE/debootstrap.log" >&2 || true
            die "debootstrap failed; see $STATE/debootstrap.log"
        }
    # What a container never needs: apt caches and lists, docs, man pages, non-English locales.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*
    tar -C "$root" --numeric-owner -c . |
        docker import \
            -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            -c 'CMD ["python3"]' \
            -m "debian bookworm minbase + python3 (scripts/docker-env.sh)" - "$LOCAL_BASE" >/dev/null
    rm -rf "$root"
    trap - EXIT
    log "base: made $LOCAL_BASE ($(docker image inspect -f '{{.Size}}' "$LOCAL_BASE") bytes)"
}

wheelhouse() {
    [[ -f $LOCK ]] || die "$LOCK is missing (see the Dockerfile header for how it is exported)"
    mkdir -p "$WHEELHOUSE"
    local stamp="$WHEELHOUSE/.lock.sha256"
    local want
    want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
        log "wheelhouse: up to date with service/requirements.lock"
        return
    fi
    # pip of the venv scripts/setup.sh made for uv, else the machine's (Debian's python3-pip).
    local py=python3
    [[ -x $REPO/.cache/tools/uv/bin/python ]] && py="$REPO/.cache/tools/uv/bin/python"
    "$py" -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    log "wheelhouse: downloading the locked runtime wheels for linux x86_64 / CPython 3.11"
    # The exact files the lock pins (hashes checked), for the image's platform, not the host's.
    "$py" -m pip download --quiet --disable-pip-version-check --require-hashes --only-binary=:all: --no-deps \
        --platform manylinux_2_36_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform linux_x86_64 \
        --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
        -r "$LOCK" -d "$WHEELHOUSE" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2
    # Wheels of versions the lock no longer pins would only bloat the build context.
    local keep
    keep="$(sed -nE 's/^([A-Za-z0-9_.-]+)==([^ ;\\]+).*/\1-\2/p' "$LOCK" | tr 'A-Z.-' 'a-z__')"
    for whl in "$WHEELHOUSE"/*.whl; do
        local name
        name="$(basename "$whl" | cut -d- -f1-2 | tr 'A-Z.-' 'a-z__')"
        grep -qxF "$name" <<<"$keep" || rm -f "$whl"
    done
    echo "$want" >"$stamp"
}

git_or() { git -C "$REPO" "$@" 2>/dev/null || true; }

build_image() {
    local base version revision created model_version
    base="$(resolve_base)"
    docker image inspect "$base" >/dev/null 2>&1 || die "base image $base is missing: run '$0 base'"
    version="$(sed -nE 's/^version *= *"([^"]+)".*/\1/p' "$REPO/service/pyproject.toml" | head -1)"
    revision="$(git_or rev-parse HEAD)"
    # The commit time, not the wall clock: the same commit gives the same labels.
    created="$(git_or log -1 --format=%cI)"
    model_version="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
        "$REPO/runtime/model/metadata.json" 2>/dev/null || echo unknown)"
    log "build: $IMAGE on $base (version $version, model $model_version, revision ${revision:0:12})"
    local t0=$SECONDS
    DOCKER_BUILDKIT=0 docker build --quiet -f "$REPO/service/Dockerfile" \
        --build-arg "BASE_IMAGE=$base" \
        --build-arg "VERSION=$version" \
        --build-arg "REVISION=${revision:-unknown}" \
        --build-arg "CREATED=${created:-}" \
        --build-arg "MODEL_VERSION=$model_version" \
        --build-arg "SOURCE=$(git_or remote get-url origin)" \
        -t "$IMAGE" "$REPO" 2>&1 >/dev/null | { grep -vE "DEPRECATED: The legacy builder|BuildKit is currently disabled|environment-variable.|^ *$" || true; } >&2
    log "build: done in $((SECONDS - t0)) s; $IMAGE is $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes"
}

print_env() {
    echo "export SCAMGUARD_TEST_IMAGE=$IMAGE"
}

cmd="${1:-up}"
case "$cmd" in
up)
    engine_up
    base_image
    wheelhouse
    build_image
    ;;
engine) engine_up ;;
base) base_image ;;
wheelhouse) wheelhouse ;;
image)
    base_image
    wheelhouse
    build_image
    ;;
build) build_image ;;
env) print_env ;;
down) engine_down ;;
*) die "unknown command '$cmd' (up|engine|base|wheelhouse|build|image|env|down)" ;;
esac
