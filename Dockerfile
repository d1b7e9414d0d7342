# One image for the tracker, the exporter and the demo simulator.
#
# The Python is Debian bookworm's python3 (3.11) with Debian's libraries, so the image built
# from a registry base and the one built air-gapped (scripts/build-images.sh, on a base made
# by mmdebstrap that already holds these packages) run the very same code and versions.
# Any Debian bookworm based image works as PYTHON_IMAGE; commands use /usr/bin/python3.
ARG PYTHON_IMAGE=debian:bookworm-slim
FROM ${PYTHON_IMAGE}

# The air-gapped base already has everything: skip apt there (it may have no mirror).
RUN if /usr/bin/python3 -c 'import prometheus_client, dateutil, yaml, numpy, bcrypt, zoneinfo; \
            zoneinfo.ZoneInfo("Asia/Seoul")' 2>/dev/null; then \
        echo "python3 and its libraries are already in the base image"; \
    else \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3 python3-prometheus-client python3-dateutil python3-yaml python3-numpy \
            python3-bcrypt tzdata \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# A fixed non-root user. /data belongs to it so that a fresh named volume mounted there
# (docker copies the image's ownership into it) is writable; a bind-mounted data root is
# used with LUMEN_UID/LUMEN_GID in compose.yaml instead. /var/lib/lumen-longterm belongs to
# nobody for the same reason: compose.yaml's longterm-init hands that ownership to the
# long-term store's fresh volume, where the store runs as nobody. Written directly into
# /etc/passwd because minimal bases have no useradd.
ARG LUMEN_UID=10001
ARG LUMEN_GID=10001
RUN grep -q '^lumen:' /etc/group || echo "lumen:x:${LUMEN_GID}:" >> /etc/group; \
    grep -q '^lumen:' /etc/passwd \
        || echo "lumen:x:${LUMEN_UID}:${LUMEN_GID}:lumen:/nonexistent:/usr/sbin/nologin" >> /etc/passwd; \
    mkdir -p /data/controls /data/logs \
    && chown -R "${LUMEN_UID}:${LUMEN_GID}" /data \
    && mkdir -p /var/lib/lumen-longterm \
    && chown 65534:65534 /var/lib/lumen-longterm

WORKDIR /app
COPY tracker/ /app/tracker/
COPY exporter/ /app/exporter/
COPY demo/ /app/demo/

ENV PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUTF8=1 \
    HOME=/tmp \
    LUMEN_ROOT=/data

USER ${LUMEN_UID}:${LUMEN_GID}
EXPOSE 9108
CMD ["/usr/bin/python3", "-m", "exporter", "--root", "/data"]
