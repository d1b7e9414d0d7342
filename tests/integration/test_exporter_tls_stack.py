"""The exporter with TLS and basic auth in the stack, set up the way README says: a web config
in the exporter's web directory, the commented TLS lines of prometheus/prometheus.yml turned
on. Its health check and Prometheus' scrape must still work; a wrong password gets 401."""

from __future__ import annotations

import base64
import re
import shlex
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import COMPOSE_FILE, REPO, _compose_command, http_json, wait_for
from .test_demo_stack import _fresh_user_env

pytestmark = pytest.mark.integration

bcrypt = pytest.importorskip("bcrypt")
SERVICES = ["demo", "exporter", "prometheus"]


def _uncommented_tls_lines(text: str) -> str:
    """prometheus.yml with README's step done: the '# ' of the TLS block removed."""
    start = text.index("    # scheme: https")
    end = text.index("password_file:", start)
    end = text.index("\n", end) + 1
    block = re.sub(r"^    # ", "    ", text[start:end], flags=re.M)
    return text[:start] + block + text[end:]


@pytest.fixture
def tls_stack(compose_env, tmp_path: Path) -> Iterator[dict]:
    web = tmp_path / "exporter-web"
    web.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=exporter",
         "-addext", "subjectAltName=DNS:exporter,DNS:localhost,IP:127.0.0.1",
         "-keyout", str(web / "exporter.key"), "-out", str(web / "exporter.crt")],
        check=True, capture_output=True,
    )
    password = base64.b64encode(time.time_ns().to_bytes(16, "big")).decode()
    (web / "password").write_text(password, encoding="utf-8")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()
    (web / "web.yml").write_text(
        "tls_server_config:\n  cert_file: exporter.crt\n  key_file: exporter.key\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n",
        encoding="utf-8",
    )
    for path in (web, *web.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)  # users 10001 and 65534 read them
    prometheus_yml = tmp_path / "prometheus.yml"
    prometheus_yml.write_text(
        _uncommented_tls_lines((REPO / "prometheus" / "prometheus.yml").read_text()),
        encoding="utf-8",
    )
    prometheus_yml.chmod(0o644)

    env = _fresh_user_env(compose_env)
    env |= {
        "LUMEN_EXPORTER_WEB_DIR": str(web),
        "LUMEN_EXPORTER_WEB_CONFIG": "/etc/lumen/exporter-web/web.yml",
        "LUMEN_PROMETHEUS_CONFIG": str(prometheus_yml),
    }
    project = f"lumentls{time.time_ns() % 10**9}"
    compose = ["env", *(f"{k}={v}" for k, v in sorted(env.items())),
               *shlex.split(_compose_command()), "-f", str(COMPOSE_FILE), "-p", project]

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*compose, *args], capture_output=True, text=True,
                              timeout=timeout, check=False)

    try:
        up = run("up", "-d", "--build", "--wait", *SERVICES)
        assert up.returncode == 0, f"{up.stdout}{up.stderr}\n{run('logs', '--tail', '30').stdout}"
        yield {
            "exporter": f"https://127.0.0.1:{env['LUMEN_EXPORTER_PORT']}",
            "prometheus": f"http://127.0.0.1:{env['LUMEN_PROMETHEUS_PORT']}",
            "ca": web / "exporter.crt",
            "password": password,
        }
    finally:
        run("down", "-v", "--remove-orphans", "--timeout", "5", timeout=180)


def _get(url: str, ca: Path, auth: tuple[str, str] | None) -> int:
    req = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10, context=ssl.create_default_context(
                cafile=str(ca))) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_exporter_with_tls_and_auth_is_healthy_and_scraped(tls_stack: dict) -> None:
    # `up --wait` returned: the health checks, the exporter's over HTTPS, all passed.
    ca, url = tls_stack["ca"], tls_stack["exporter"] + "/metrics"
    assert _get(url, ca, ("prometheus", tls_stack["password"])) == 200
    assert _get(url, ca, ("prometheus", "wrong")) == 401
    assert _get(url, ca, None) == 401

    def scraped() -> dict | None:
        status, body = http_json(tls_stack["prometheus"] + "/api/v1/targets")
        if status != 200:
            return None
        for target in body["data"]["activeTargets"]:
            if target["labels"].get("job") == "lumen-exporter" and target["health"] == "up":
                return target
        return None

    target = wait_for(scraped, timeout=60, what="Prometheus to scrape the exporter over TLS")
    assert target["scrapeUrl"] == "https://exporter:9108/metrics"
