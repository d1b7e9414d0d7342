"""Start the stack from compose.yaml, exactly as users run it, on a fixture data root.

Only environment variables differ from a user's run: the data root (a bind-mounted temp
directory fed at 5 Hz by a thread of this process), free ports on 127.0.0.1, short effect
windows, a throwaway Grafana password, and the images where the defaults are not on this
machine but the air-gapped ones (scripts/build-images.sh) are. pytest-docker runs compose;
`down -v` removes containers and volumes at the end, also after a failed start or test.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_docker.plugin import DockerComposeExecutor, Services

from .feed import Change, Gateway

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
AIRGAP_ENV = REPO / "build" / "airgap.env"
IMAGE_UID = 10001  # the image's user (Dockerfile), owner of the data root in the tests
PRE_S, POST_S, GUARD_S = 5, 5, 1
CORE_SERVICES = ["demo", "tracker", "exporter", "runbook", "prometheus", "alertmanager"]
# What README tells users to type (Compose v2); CI installs it (.ci/setup-docker.sh).
COMPOSE_COMMAND = "docker compose"
START_TIMEOUT_S = 300
# Why the Grafana checks were skipped, and the services' logs: shown at the end of the run.
_grafana_skipped: list[str] = []
# What each Grafana test of test_stack.py checks: a run without Grafana names what it missed.
GRAFANA_CHECKS = {
    "test_grafana_health_and_login": "Grafana's health and admin login (default password refused)",
    "test_grafana_datasource_is_healthy": "the Prometheus datasource's health through Grafana",
    "test_grafana_serves_every_dashboard_and_panel_query": (
        "every dashboard served by Grafana and every panel query through /api/ds/query"
    ),
    "test_grafana_reads_the_long_term_store": (
        "the Long-term store datasource's health and a query through it"
    ),
}


def grafana_not_checked(why: str) -> str:
    """The skip reason of the Grafana tests: what was not checked, and why."""
    return f"Grafana NOT checked: {'; '.join(GRAFANA_CHECKS.values())}. Why: {why}"
_service_logs: list[str] = []


def _run(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _image_present(image: str) -> bool:
    return _run("docker", "image", "inspect", image).returncode == 0


def _compose_defaults() -> dict[str, str]:
    """The ${LUMEN_*_IMAGE:-default} values written in compose.yaml."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    return dict(re.findall(r"\$\{(LUMEN_\w+_IMAGE):-([^}]+)\}", text))


def _airgap_images() -> dict[str, str]:
    if not AIRGAP_ENV.exists():
        return {}
    pairs = (line.split("=", 1) for line in AIRGAP_ENV.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _docker_available() -> bool:
    return shutil.which("docker") is not None and _run("docker", "info").returncode == 0


def _compose_command() -> str:
    if _run(*COMPOSE_COMMAND.split(), "version").returncode != 0:
        pytest.fail(f"`{COMPOSE_COMMAND}` (Compose v2) is not installed: run .ci/setup-docker.sh")
    return COMPOSE_COMMAND


@dataclass
class Stack:
    root: Path
    gateway: Gateway
    prometheus_url: str
    exporter_url: str
    alertmanager_url: str
    grafana_url: str | None  # None: no Grafana image here, Grafana not started
    grafana_skip_reason: str
    grafana_auth: tuple[str, str]
    started_at: float
    history_change: Change
    compose: DockerComposeExecutor
    services: list[str]


@dataclass
class FixtureRoot:
    root: Path
    gateway: Gateway
    history_change: Change


@pytest.fixture(scope="session")
def compose_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The variables compose.yaml is run with (on its command line: os.environ stays as is,
    so that tests running after these see the environment they were started with)."""
    if not _docker_available():
        if os.environ.get("CI"):
            pytest.fail("CI: the docker engine is not reachable (run .ci/setup-docker.sh)")
        pytest.skip("no docker engine reachable (.ci/setup-docker.sh starts one)")

    env = {
        # A path: bind-mounted as the data root (filled by the fixture_root fixture).
        "LUMEN_DATA_DIR": str(tmp_path_factory.mktemp("lumen-root")),
        "LUMEN_BIND_ADDRESS": "127.0.0.1",
        "LUMEN_EXPORTER_PORT": str(_free_port()),
        "LUMEN_PROMETHEUS_PORT": str(_free_port()),
        "LUMEN_ALERTMANAGER_PORT": str(_free_port()),
        "LUMEN_GRAFANA_PORT": str(_free_port()),
        "LUMEN_EFFECT_PRE_S": str(PRE_S),
        "LUMEN_EFFECT_POST_S": str(POST_S),
        "LUMEN_EFFECT_GUARD_S": str(GUARD_S),
        "LUMEN_GRAFANA_ADMIN_USER": "admin",
        "LUMEN_GRAFANA_ADMIN_PASSWORD": "it-" + os.urandom(12).hex(),
    }
    if os.getuid() != 0:
        # Not root: the containers run as this user, who owns the fixture root.
        env["LUMEN_UID"], env["LUMEN_GID"] = str(os.getuid()), str(os.getgid())
    else:
        env["LUMEN_UID"] = env["LUMEN_GID"] = str(IMAGE_UID)

    # Images: what the user set wins; else the compose default if it is here; else the
    # air-gapped image if it is here; else compose pulls the default.
    airgap = _airgap_images()
    for var, default in _compose_defaults().items():
        if os.environ.get(var) or _image_present(default):
            continue
        if airgap.get(var) and _image_present(airgap[var]):
            env[var] = airgap[var]

    return env


@pytest.fixture(scope="session")
def grafana_image(compose_env: dict[str, str]) -> tuple[str | None, str]:
    """(image, "") when a Grafana image is here or can be pulled, else (None, why not)."""
    image = os.environ.get("LUMEN_GRAFANA_IMAGE") or _compose_defaults()["LUMEN_GRAFANA_IMAGE"]
    if _image_present(image):
        return image, ""
    pulled = _run("docker", "pull", image, timeout=900)
    if pulled.returncode == 0:
        return image, ""
    why = (pulled.stderr or pulled.stdout).strip().splitlines()[-1:] or ["no output"]
    reason = grafana_not_checked(
        f"no Grafana image {image} on this machine and `docker pull` failed: {why[0]}"
    )
    if os.environ.get("LUMEN_REQUIRE_GRAFANA"):
        pytest.fail(f"LUMEN_REQUIRE_GRAFANA is set: {reason}")
    _grafana_skipped.append(reason)
    # Also among the warnings, where a run's reader looks for what went wrong.
    warnings.warn(pytest.PytestWarning(reason), stacklevel=1)
    return None, reason


def pytest_terminal_summary(terminalreporter) -> None:
    if _grafana_skipped:
        terminalreporter.section("integration: Grafana NOT checked", sep="!", red=True, bold=True)
        for reason in _grafana_skipped:
            terminalreporter.write_line(reason, red=True, bold=True)
    reports = terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", [])
    failed = [r for r in reports if "tests/integration/" in getattr(r, "nodeid", "")]
    if failed and _service_logs:
        terminalreporter.section("integration: the stack's logs (last lines per service)")
        terminalreporter.write_line(_service_logs[-1])


@pytest.fixture(scope="session")
def fixture_root(compose_env: dict[str, str]) -> Iterator[FixtureRoot]:
    """A data root with 2 minutes of history and one earlier rule change, fed live."""
    root = Path(compose_env["LUMEN_DATA_DIR"])
    now_s = int(time.time())
    start_ms = (now_s - 120) * 1000
    gateway = Gateway(root, start_ms, (0.30, 0.50, 0.22, 0.10))
    # An earlier change showing the guide's warning pattern (phase_diff, entropy_rate and
    # risk_band up), complete from the start: its windows lie inside the history.
    history_change = Change(
        now_s - 60, "Lubit", "creative_min", 0.22, 0.24, (0.34, 0.56, 0.21, 0.12)
    )
    gateway.record(history_change)
    gateway.write_until(now_s * 1000)
    if os.getuid() == 0:
        for path in [root, *root.rglob("*")]:
            os.chown(path, IMAGE_UID, IMAGE_UID)
    gateway.start(time.time)
    try:
        yield FixtureRoot(root, gateway, history_change)
    finally:
        gateway.stop()


# pytest-docker's fixtures, pointed at the project's compose.yaml.
@pytest.fixture(scope="session")
def docker_compose_command(compose_env: dict[str, str]) -> str:
    assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(compose_env.items()))
    return f"env {assignments} {_compose_command()}"


@pytest.fixture(scope="session")
def docker_compose_file() -> list[str]:
    return [str(COMPOSE_FILE)]


@pytest.fixture(scope="session")
def docker_compose_project_name(compose_env, fixture_root) -> str:
    # Depending on fixture_root makes `down` run while the fixture gateway still writes
    # (fixtures are torn down in reverse order).
    return f"lumenit{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # Started by the `stack` fixture instead, so a failed start is also cleaned up.
    return []


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down -v --remove-orphans --timeout 5"]


def _health(compose: DockerComposeExecutor) -> dict[str, str]:
    ids = compose.execute("ps -q").decode().split()
    states = {}
    for cid in ids:
        out = _run(
            "docker",
            "inspect",
            "-f",
            "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}"
            "{{else}}none{{end}}",
            cid,
        ).stdout.split()
        if len(out) == 3:
            states[out[0].lstrip("/")] = out[2] if out[1] == "running" else out[1]
    return states


def wait_healthy(
    compose: DockerComposeExecutor, services: list[str], timeout: float, what: str,
    tolerate_unhealthy: bool = False,
) -> dict[str, str]:
    """Wait until every service's container runs and is healthy; their states."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            states = _health(compose)
        except Exception:  # the engine may still be starting (after a restart)
            states = {}
        if len(states) == len(services) and all(s == "healthy" for s in states.values()):
            return states
        broken = ("exited", "dead") if tolerate_unhealthy else ("unhealthy", "exited", "dead")
        if any(s in broken for s in states.values()):
            pytest.fail(f"{what}: {states}\n" + _dump_logs(compose))
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not healthy after {timeout} s: {states}\n" + _dump_logs(compose))
        time.sleep(2)


def _dump_logs(compose: DockerComposeExecutor) -> str:
    try:
        return compose.execute("logs --no-color --tail 60").decode(errors="replace")
    except Exception as e:  # the logs only help explain another failure
        return f"(no logs: {e})"


@pytest.fixture(scope="session")
def stack(
    docker_services: Services,
    docker_compose_command: str,
    docker_compose_file: list[str],
    docker_compose_project_name: str,
    compose_env: dict[str, str],
    fixture_root: FixtureRoot,
    docker_ip: str,
    grafana_image: tuple[str | None, str],
) -> Iterator[Stack]:
    """The running stack, every service healthy."""
    compose = DockerComposeExecutor(
        docker_compose_command, docker_compose_file, docker_compose_project_name
    )
    image, skip_reason = grafana_image
    services = CORE_SERVICES + (["grafana"] if image else [])
    started_at = time.time()
    compose.execute("up --build -d " + " ".join(services))

    wait_healthy(compose, services, START_TIMEOUT_S, "stack failed to start")

    def url(service: str, port: int) -> str:
        return f"http://{docker_ip}:{docker_services.port_for(service, port)}"

    yield Stack(
        root=fixture_root.root,
        gateway=fixture_root.gateway,
        prometheus_url=url("prometheus", 9090),
        exporter_url=url("exporter", 9108),
        alertmanager_url=url("alertmanager", 9093),
        grafana_url=url("grafana", 3000) if image else None,
        grafana_skip_reason=skip_reason,
        grafana_auth=("admin", compose_env["LUMEN_GRAFANA_ADMIN_PASSWORD"]),
        started_at=started_at,
        history_change=fixture_root.history_change,
        compose=compose,
        services=services,
    )
    # Kept for the end of the run, where they explain a failed test.
    _service_logs.append(_dump_logs(compose))


def http_json(
    url: str, data: dict | None = None, auth: tuple[str, str] | None = None, timeout: float = 10
) -> tuple[int, object]:
    """GET (or POST JSON) and decode the answer; (status, body) also for HTTP errors."""
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    req.add_header("Accept", "application/json")
    if body:
        req.add_header("Content-Type", "application/json")
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def prom_query(
    stack: Stack, expr: str, start: float | None = None, end: float | None = None, step: float = 2
) -> list[dict]:
    """Instant query (no start) or range query; the result list."""
    if start is None:
        params = {"query": expr}
        path = "/api/v1/query"
    else:
        params = {
            "query": expr,
            "start": f"{start:.3f}",
            "end": f"{(end or time.time()):.3f}",
            "step": str(step),
        }
        path = "/api/v1/query_range"
    status, body = http_json(stack.prometheus_url + path + "?" + urllib.parse.urlencode(params))
    assert status == 200 and body["status"] == "success", f"{expr!r}: {status} {body}"
    return body["data"]["result"]


def wait_for(check, timeout: float, pause: float = 1.0, what: str = "condition"):
    """Poll check() until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(pause)
