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

# A service image from its Debian package, made like the upstream one: it runs as nobody,
# and its data directory (a VOLUME) belongs to nobody, so one named volume works with both;
# wget is there for the compose healthcheck (busybox has it upstream).
make_service_image() {  # NAME REPO PACKAGE DATADIR PORT ENTRYPOINT [CMD]; writes $workdir/NAME.image
    local name=$1 repo=$2 package=$3 datadir=$4 port=$5 entrypoint=$6 cmd=${7:-}
    local image version existing tar=$workdir/$1.tar
    existing=$(docker image ls --format '{{.Repository}}:{{.Tag}}' "$repo" | head -n 1)
    if [ "${LUMEN_AIRGAP_REBUILD:-0}" = 1 ] || [ -z "$existing" ]; then
        log "$name image (Debian's $package package, mmdebstrap)"
        # shellcheck disable=SC2016 # the hooks' $1 (the rootfs) is expanded by mmdebstrap
        rootfs "$tar" essential "$package,wget" \
            --customize-hook='mkdir -p "$1'"$datadir"'" && chown 65534:65534 "$1'"$datadir"'"' \
            --customize-hook='chroot "$1" dpkg-query -W -f="\${Version}" '"$package"' > "$1/etc/'"$name"'-debian-version"'
        version=$(debian_version "$tar" "./etc/$name-debian-version")
        [ -n "$version" ] || { log "could not read the $name version"; exit 1; }
        image=$repo:$version
        local changes=(--change 'USER 65534:65534' --change "WORKDIR $datadir"
                       --change "EXPOSE $port" --change "VOLUME [\"$datadir\"]"
                       --change "ENTRYPOINT [\"$entrypoint\"]")
        [ -z "$cmd" ] || changes+=(--change "CMD $cmd")
        docker import "${changes[@]}" "$tar" "$image" >/dev/null
        rm -f "$tar"
    else
        image=$existing
        log "$name image $image exists (LUMEN_AIRGAP_REBUILD=1 to remake it)"
    fi
    echo "$image" >"$workdir/$name.image"
}

# Independent, and mostly downloading and unpacking: made side by side.
pids=()
make_project_images & pids+=($!)
# Same entrypoint, arguments, user, workdir and data path as the upstream images, so compose
# passes the same arguments to either (amtool is on the alertmanager image's PATH too).
make_service_image prometheus "$PROMETHEUS_REPO" prometheus /prometheus 9090 /bin/prometheus \
    '["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' &
pids+=($!)
make_service_image alertmanager "$ALERTMANAGER_REPO" prometheus-alertmanager /alertmanager 9093 \
    /usr/bin/prometheus-alertmanager \
    '["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]' &
pids+=($!)
make_service_image victoriametrics "$VICTORIAMETRICS_REPO" victoria-metrics /storage 8428 \
    /usr/bin/victoria-metrics &
pids+=($!)
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
