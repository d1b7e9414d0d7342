#!/usr/bin/env bash
# Air-gapped build: every image of the stack except Grafana, from Debian packages alone
# (no container registry). mmdebstrap makes the root filesystems, `docker import` turns them
# into images:
#   lumen-airgap/debian-python:bookworm   python3 + the project's libraries (LUMEN_PYTHON_IMAGE)
#   lumen/rules-resonance-tracker:local   the project image (Dockerfile) on top of it
#   lumen-airgap/prometheus:<version>     Debian's prometheus package (LUMEN_PROMETHEUS_IMAGE)
#   lumen-airgap/alertmanager:<version>   Debian's prometheus-alertmanager package
#                                         (LUMEN_ALERTMANAGER_IMAGE)
#   lumen-airgap/victoria-metrics:<version>  Debian's victoria-metrics package, the long-term
#                                         store of the `longterm` profile
#                                         (LUMEN_VICTORIAMETRICS_IMAGE)
# The variables for compose are written to build/airgap.env and printed at the end.
#
# Settings (environment): LUMEN_DEBIAN_MIRROR, LUMEN_DEBIAN_SECURITY_MIRROR (a local mirror
# for a truly offline machine), LUMEN_AIRGAP_REBUILD=1 to rebuild bases that already exist.
set -euo pipefail

cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR=${LUMEN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${LUMEN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PYTHON_BASE=lumen-airgap/debian-python:$SUITE
PROJECT_IMAGE=lumen/rules-resonance-tracker:local
PROMETHEUS_REPO=lumen-airgap/prometheus
ALERTMANAGER_REPO=lumen-airgap/alertmanager
VICTORIAMETRICS_REPO=lumen-airgap/victoria-metrics
ENV_FILE=build/airgap.env

log() { printf 'build-images: %s\n' "$*" >&2; }

for tool in mmdebstrap docker; do
    command -v "$tool" >/dev/null 2>&1 || { log "$tool is missing (see .ci/setup-docker.sh)"; exit 1; }
done

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

sources=(
    "deb $MIRROR $SUITE main"
    "deb $MIRROR $SUITE-updates main"
    "deb $SECURITY_MIRROR $SUITE-security main"
)
# Small images: no recommended packages, no docs, man pages or translations.
slim=(
    --aptopt='APT::Install-Recommends "false"'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
)

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The Debian version (e.g. 2.42.0+ds-5+deb12u1) without epoch or Debian suffix names the tag.
debian_version() {  # debian_version ROOTFS.tar FILE
    tar -xOf "$1" "$2" | sed -e 's/^[0-9]*://' -e 's/[+~-].*//'
}

rootfs() {  # rootfs OUT.tar VARIANT PACKAGES [extra mmdebstrap options...]
    local out=$1 variant=$2 packages=$3
    shift 3
    # stdin from /dev/null: without a terminal mmdebstrap would read sources from stdin.
    mmdebstrap --quiet --variant="$variant" --include="$packages" "${slim[@]}" "$@" \
        "$SUITE" "$out" "${sources[@]}" </dev/null
}

start=$(date +%s)

# A base made before a library was added to the list below is made again.
base_current() {
    image_exists "$PYTHON_BASE" && docker run --rm --network none "$PYTHON_BASE" /usr/bin/python3 \
        -c 'import prometheus_client, dateutil, yaml, numpy, bcrypt' >/dev/null 2>&1
}

make_project_images() {  # the python base when missing or outdated, then the project image
    if [ "${LUMEN_AIRGAP_REBUILD:-0}" = 1 ] || ! base_current; then
        log "python base $PYTHON_BASE (mmdebstrap)"
        # apt stays in (variant apt) so that the Dockerfile can be built on it like on any
        # Debian image; the libraries are preinstalled so that it needs no mirror.
        rootfs "$workdir/python.tar" apt \
            python3,python3-prometheus-client,python3-dateutil,python3-yaml,python3-numpy,python3-bcrypt,tzdata
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/bash"]' \
            "$workdir/python.tar" "$PYTHON_BASE" >/dev/null
        rm -f "$workdir/python.tar"
    else
        log "python base $PYTHON_BASE exists (LUMEN_AIRGAP_REBUILD=1 to remake it)"
    fi

    log "project image $PROJECT_IMAGE (Dockerfile on $PYTHON_BASE)"
    # --network none: proof that the image needs nothing beyond the base (no apt, no pip).
    docker build --quiet --network none --build-arg "PYTHON_IMAGE=$PYTHON_BASE" \
        -t "$PROJECT_IMAGE" . >/dev/null
}

make_prometheus() {  # writes the image's name to $workdir/prometheus.image
    local image version existing_prometheus
    existing_prometheus=$(docker image ls --format '{{.Repository}}:{{.Tag}}' "$PROMETHEUS_REPO" | head -n 1)
    if [ "${LUMEN_AIRGAP_REBUILD:-0}" = 1 ] || [ -z "$existing_prometheus" ]; then
        log "prometheus image (Debian's prometheus package, mmdebstrap)"
        # /prometheus belongs to nobody (65534) like in the official image, so one named volume
        # works with both; wget is there for the compose healthcheck (busybox has it upstream).
        # shellcheck disable=SC2016 # the hooks' $1 (the rootfs) is expanded by mmdebstrap
        rootfs "$workdir/prometheus.tar" essential prometheus,wget \
            --customize-hook='mkdir -p "$1/prometheus" && chown 65534:65534 "$1/prometheus"' \
            --customize-hook='chroot "$1" dpkg-query -W -f="\${Version}" prometheus > "$1/etc/prometheus-debian-version"'
        version=$(debian_version "$workdir/prometheus.tar" ./etc/prometheus-debian-version)
        [ -n "$version" ] || { log "could not read the prometheus version"; exit 1; }
        image=$PROMETHEUS_REPO:$version
        # Same entrypoint, user, workdir and data path as prom/prometheus.
        docker import \
            --change 'USER 65534:65534' \
            --change 'WORKDIR /prometheus' \
            --change 'EXPOSE 9090' \
            --change 'VOLUME ["/prometheus"]' \
            --change 'ENTRYPOINT ["/bin/prometheus"]' \
            --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
            "$workdir/prometheus.tar" "$image" >/dev/null
        rm -f "$workdir/prometheus.tar"
    else
        image=$existing_prometheus
        log "prometheus image $image exists (LUMEN_AIRGAP_REBUILD=1 to remake it)"
    fi
    echo "$image" >"$workdir/prometheus.image"
}

make_alertmanager() {  # writes the image's name to $workdir/alertmanager.image
    local image version existing_alertmanager
    existing_alertmanager=$(docker image ls --format '{{.Repository}}:{{.Tag}}' "$ALERTMANAGER_REPO" | head -n 1)
    if [ "${LUMEN_AIRGAP_REBUILD:-0}" = 1 ] || [ -z "$existing_alertmanager" ]; then
        log "alertmanager image (Debian's prometheus-alertmanager package, mmdebstrap)"
        # Like prom/alertmanager: /alertmanager belongs to nobody and amtool is on the PATH, so
        # compose passes the same arguments to either image.
        # shellcheck disable=SC2016 # the hooks' $1 (the rootfs) is expanded by mmdebstrap
        rootfs "$workdir/alertmanager.tar" essential prometheus-alertmanager,wget \
            --customize-hook='mkdir -p "$1/alertmanager" && chown 65534:65534 "$1/alertmanager"' \
            --customize-hook='chroot "$1" dpkg-query -W -f="\${Version}" prometheus-alertmanager > "$1/etc/alertmanager-debian-version"'
        version=$(debian_version "$workdir/alertmanager.tar" ./etc/alertmanager-debian-version)
        [ -n "$version" ] || { log "could not read the alertmanager version"; exit 1; }
        image=$ALERTMANAGER_REPO:$version
        docker import \
            --change 'USER 65534:65534' \
            --change 'WORKDIR /alertmanager' \
            --change 'EXPOSE 9093' \
            --change 'VOLUME ["/alertmanager"]' \
            --change 'ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]' \
            --change 'CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]' \
            "$workdir/alertmanager.tar" "$image" >/dev/null
        rm -f "$workdir/alertmanager.tar"
    else
        image=$existing_alertmanager
        log "alertmanager image $image exists (LUMEN_AIRGAP_REBUILD=1 to remake it)"
    fi
    echo "$image" >"$workdir/alertmanager.image"
}

make_victoriametrics() {  # writes the image's name to $workdir/victoriametrics.image
    local image version existing
    existing=$(docker image ls --format '{{.Repository}}:{{.Tag}}' "$VICTORIAMETRICS_REPO" | head -n 1)
    if [ "${LUMEN_AIRGAP_REBUILD:-0}" = 1 ] || [ -z "$existing" ]; then
        log "victoria-metrics image (Debian's victoria-metrics package, mmdebstrap)"
        # Like the prometheus image: the data path /storage belongs to nobody, so a fresh
        # named volume mounted there does too; wget for the compose healthcheck.
        # shellcheck disable=SC2016 # the hooks' $1 (the rootfs) is expanded by mmdebstrap
        rootfs "$workdir/victoriametrics.tar" essential victoria-metrics,wget \
            --customize-hook='mkdir -p "$1/storage" && chown 65534:65534 "$1/storage"' \
            --customize-hook='chroot "$1" dpkg-query -W -f="\${Version}" victoria-metrics > "$1/etc/victoria-metrics-debian-version"'
        version=$(debian_version "$workdir/victoriametrics.tar" ./etc/victoria-metrics-debian-version)
        [ -n "$version" ] || { log "could not read the victoria-metrics version"; exit 1; }
        image=$VICTORIAMETRICS_REPO:$version
        # The upstream image's entrypoint takes the same flags (compose passes them).
        docker import \
            --change 'USER 65534:65534' \
            --change 'WORKDIR /storage' \
            --change 'EXPOSE 8428' \
            --change 'VOLUME ["/storage"]' \
            --change 'ENTRYPOINT ["/usr/bin/victoria-metrics"]' \
            "$workdir/victoriametrics.tar" "$image" >/dev/null
        rm -f "$workdir/victoriametrics.tar"
    else
        image=$existing
        log "victoria-metrics image $image exists (LUMEN_AIRGAP_REBUILD=1 to remake it)"
    fi
    echo "$image" >"$workdir/victoriametrics.image"
}

# Independent, and mostly downloading and unpacking: made side by side.
pids=()
make_project_images & pids+=($!)
make_prometheus & pids+=($!)
make_alertmanager & pids+=($!)
make_victoriametrics & pids+=($!)
failed=0
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done
[ "$failed" = 0 ] || { log "an image could not be made (see above)"; exit 1; }
prometheus_image=$(cat "$workdir/prometheus.image")
alertmanager_image=$(cat "$workdir/alertmanager.image")
victoriametrics_image=$(cat "$workdir/victoriametrics.image")

mkdir -p "$(dirname "$ENV_FILE")"
cat >"$ENV_FILE" <<EOF
LUMEN_PYTHON_IMAGE=$PYTHON_BASE
LUMEN_PROMETHEUS_IMAGE=$prometheus_image
LUMEN_ALERTMANAGER_IMAGE=$alertmanager_image
LUMEN_VICTORIAMETRICS_IMAGE=$victoriametrics_image
EOF

log "done in $(( $(date +%s) - start )) s; images:"
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' \
    | grep -E "^($PYTHON_BASE|$PROJECT_IMAGE|$PROMETHEUS_REPO:|$ALERTMANAGER_REPO:|$VICTORIAMETRICS_REPO:)" | sed 's/^/    /' >&2 || true
cat >&2 <<EOF
build-images: compose uses these images through these variables, written to $ENV_FILE:
$(sed 's/^/    /' "$ENV_FILE")
  add them to .env (cat $ENV_FILE >> .env) or export them, then, with no Grafana image:
    docker compose up -d --build demo tracker exporter runbook prometheus alertmanager
EOF
