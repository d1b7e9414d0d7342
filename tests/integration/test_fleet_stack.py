"""A fleet of gateways through the whole stack, with the long-term store on (issue 13).

Its own compose project on a fleet data root: three gateway directories fed at 5 Hz by
threads of this process, each with its own levels, so each gateway's Δs are known and
differ (a mix-up between gateways shows). The stack runs as README says for the long-term
store: the `longterm` profile and prometheus-longterm.yml. Checked: each gateway's effects
rows, its series in Prometheus, every dashboard query per gateway against Prometheus and
against the long-term store (VictoriaMetrics, fed by remote_write), and a gateway directory
added while the stack runs.
"""

from __future__ import annotations

import csv
import os
import shlex
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from grafana.common import LONGTERM_DATASOURCE_UID

from . import dashboards
from .conftest import (
    COMPOSE_FILE,
    CORE_SERVICES,
    IMAGE_UID,
    _compose_command,
    _free_port,
    http_json,
    wait_for,
)
from .feed import Change, Gateway
from .test_demo_stack import _fresh_user_env

pytestmark = pytest.mark.integration

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
STORE = "victoriametrics"
# Levels (phase_diff, entropy_rate, creative_band, risk_band) before and after each
# gateway's changes: every gateway moves each signal by a different amount.
LEVELS = {
    "alpha": ((0.30, 0.50, 0.22, 0.10), (0.34, 0.56, 0.21, 0.12), (0.31, 0.52, 0.25, 0.09)),
    "beta": ((0.20, 0.40, 0.30, 0.20), (0.17, 0.38, 0.35, 0.18), (0.25, 0.45, 0.28, 0.26)),
    "gamma": ((0.50, 0.60, 0.10, 0.30), (0.55, 0.61, 0.12, 0.36), (0.48, 0.59, 0.16, 0.29)),
}
ADDED = "delta"
ADDED_LEVELS = ((0.40, 0.45, 0.20, 0.15), (0.44, 0.47, 0.18, 0.19))


@dataclass
class Fleet:
    root: Path
    compose: list[str]
    prometheus_url: str
    longterm_url: str
    grafana_url: str | None  # None: no Grafana image here
    grafana_skip_reason: str
    started_at: float
    feeds: dict[str, Gateway] = field(default_factory=dict)
    changes: dict[str, list[Change]] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*self.compose, *args], capture_output=True, text=True,
                              timeout=timeout, check=False)

    def logs(self) -> str:
        out = self.run("logs", "--no-color", "--tail", "40", timeout=60)
        return out.stdout + out.stderr


def _own(root: Path) -> None:
    """As root here: the files belong to the image's user, who the containers run as."""
    if os.getuid() == 0:
        for path in [root, *root.rglob("*")]:
            os.chown(path, IMAGE_UID, IMAGE_UID)


def _feed(fleet: Fleet, name: str, levels: tuple, history_at: int) -> Gateway:
    """A gateway directory with 2 minutes of samples and one finished change, fed live."""
    now_s = int(time.time())
    gateway = Gateway(fleet.root / name, (now_s - 120) * 1000, levels[0])
    change = Change(history_at, "Lubit", "creative_min", 0.22, 0.24, levels[1])
    gateway.record(change)
    gateway.write_until(now_s * 1000)
    _own(fleet.root / name)
    gateway.start(time.time)
    fleet.feeds[name], fleet.changes[name] = gateway, [change]
    return gateway


@pytest.fixture(scope="module")
def fleet(compose_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
          grafana_image: tuple[str | None, str]) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("lumen-fleet")
    env = _fresh_user_env(compose_env)
    env |= {
        "LUMEN_DATA_DIR": str(root),
        "LUMEN_UID": compose_env["LUMEN_UID"],
        "LUMEN_GID": compose_env["LUMEN_GID"],
        **{k: compose_env[k] for k in compose_env if k.startswith("LUMEN_EFFECT_")},
        "LUMEN_GRAFANA_ADMIN_USER": compose_env["LUMEN_GRAFANA_ADMIN_USER"],
        "LUMEN_GRAFANA_ADMIN_PASSWORD": compose_env["LUMEN_GRAFANA_ADMIN_PASSWORD"],
        "LUMEN_RUNBOOK_PORT": str(_free_port()),
        "LUMEN_LONGTERM_PORT": str(_free_port()),
        # README's two lines for the long-term store.
        "COMPOSE_PROFILES": "longterm",
        "LUMEN_PROMETHEUS_CONFIG": "./prometheus/prometheus-longterm.yml",
    }
    project = f"lumenfleet{time.time_ns() % 10**9}"
    compose = ["env", *(f"{k}={v}" for k, v in sorted(env.items())),
               *shlex.split(_compose_command()), "-f", str(COMPOSE_FILE), "-p", project]
    fleet = Fleet(
        root=root, compose=compose,
        prometheus_url=f"http://127.0.0.1:{env['LUMEN_PROMETHEUS_PORT']}",
        longterm_url=f"http://127.0.0.1:{env['LUMEN_LONGTERM_PORT']}",
        grafana_url=f"http://127.0.0.1:{env['LUMEN_GRAFANA_PORT']}" if grafana_image[0] else None,
        grafana_skip_reason=grafana_image[1],
        started_at=time.time(),
    )
    history_at = int(time.time()) - 60
    for name, levels in LEVELS.items():
        _feed(fleet, name, levels, history_at)
    _own(root)
    image, _ = grafana_image
    services = [*CORE_SERVICES, STORE] + (["grafana"] if image else [])
    try:
        up = fleet.run("up", "-d", "--build", "--wait", *services, timeout=600)
        assert up.returncode == 0, f"`up` failed:\n{up.stdout}{up.stderr}\n{fleet.logs()}"
        # A change on every gateway while the stack watches: pending first, then its effect.
        at = int(time.time()) + 3
        for name, levels in LEVELS.items():
            change = Change(at, "Cael", "phase_max", 0.40, 0.36, levels[2])
            fleet.feeds[name].record(change)
            fleet.changes[name].append(change)
        yield fleet
    finally:
        for gateway in fleet.feeds.values():
            gateway.stop()
        fleet.run("down", "-v", "--remove-orphans", "--timeout", "5", timeout=180)


def _query(base_url: str, expr: str, start: float | None = None) -> list[dict]:
    """An instant query (no start) or a range query up to now, 2 s steps; its result."""
    params = {"query": expr}
    path = "/api/v1/query"
    if start is not None:
        params |= {"start": f"{start:.3f}", "end": f"{time.time():.3f}", "step": "2"}
        path = "/api/v1/query_range"
    status, body = http_json(base_url + path + "?" + urllib.parse.urlencode(params), timeout=30)
    assert status == 200 and body["status"] == "success", f"{expr!r}: {status} {body}"
    return body["data"]["result"]


def _effects(fleet: Fleet, name: str) -> list[dict[str, str]]:
    path = fleet.root / name / "logs" / "rules_effects.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _expected_d_phase(levels: tuple, index: int) -> float:
    return levels[index + 1][0] - levels[index][0]


def _has_rows(fleet: Fleet, name: str, levels: tuple) -> list[dict[str, str]] | None:
    rows = _effects(fleet, name)
    found = []
    for index, change in enumerate(fleet.changes[name]):
        row = next((r for r in rows if r["rule"] == change.rule), None)
        if row is None:
            return None
        assert float(row["d_phase"]) == pytest.approx(_expected_d_phase(levels, index),
                                                      abs=1e-9), (name, row)
        found.append(row)
    return found


def test_each_gateway_writes_its_own_effects(fleet: Fleet) -> None:
    for name, levels in LEVELS.items():
        rows = wait_for(lambda n=name, lv=levels: _has_rows(fleet, n, lv), timeout=90,
                        what=f"{name}'s effects rows\n{fleet.logs()}")
        assert len(rows) == 2
    # And only its own: one row per change, nothing of another gateway's.
    for name in LEVELS:
        assert sorted(r["rule"] for r in _effects(fleet, name)) == ["creative_min", "phase_max"]


def _annotated(base_url: str) -> dict[str, set[str]]:
    """Per gateway, the rules whose change shows with its effect (not pending)."""
    found: dict[str, set[str]] = {}
    for series in _query(base_url, 'lumen_rule_change_timestamp_seconds{d_phase!="pending"}'):
        found.setdefault(series["metric"]["gateway"], set()).add(series["metric"]["rule"])
    return found


def test_prometheus_has_each_gateway_series(fleet: Fleet) -> None:
    every = {name: {"creative_min", "phase_max"} for name in LEVELS}
    wait_for(lambda: all(_annotated(fleet.prometheus_url).get(g) == r for g, r in every.items()),
             timeout=90, what="every gateway's two annotated changes in Prometheus")
    for name, levels in LEVELS.items():
        (series,) = _query(fleet.prometheus_url,
                           f'lumen_rule_change_timestamp_seconds{{gateway="{name}", '
                           f'rule="phase_max", d_phase!="pending"}}')
        assert float(series["value"][1]) == fleet.changes[name][1].unix_s
        assert float(series["metric"]["d_phase"]) == pytest.approx(
            _expected_d_phase(levels, 1), abs=1e-3)
    # Every series the exporter serves carries the gateway label (up and scrape_* are
    # Prometheus's own), and only these gateways.
    unlabelled = _query(fleet.prometheus_url, 'count({job="lumen-exporter", gateway="", '
                                              '__name__!~"up|scrape_.+"})')
    assert not unlabelled, unlabelled
    status = _query(fleet.prometheus_url, "lumen_gateway_status")
    assert {s["metric"]["gateway"] for s in status} == set(LEVELS)


def _label_values(base_url: str):
    def label_values(match: str | None, label: str) -> list[str]:
        query = urllib.parse.urlencode({"match[]": match} if match else {})
        status, body = http_json(f"{base_url}/api/v1/label/{label}/values?{query}")
        assert status == 200, body
        return body["data"]

    return label_values


def _empty_queries(fleet: Fleet, base_url: str, gateway: str) -> list[str]:
    """The dashboard queries that return nothing for this gateway over the run."""
    empty = []
    for path in dashboards.dashboard_files(DASHBOARD_DIR):
        dashboard = dashboards.load(path)
        values = dashboards.variable_values(dashboard, _label_values(base_url))
        values["gateway"] = gateway
        for query in dashboards.queries(dashboard):
            expr = dashboards.substitute(query.expr, values, builtins=True)
            if not _query(base_url, expr, start=fleet.started_at):
                empty.append(f"{gateway}: {query.dashboard_uid}: {query.where}: {expr}")
    return empty


def _every_query_has_data(fleet: Fleet, base_url: str, timeout: float) -> None:
    # The first try may come before the last series arrived (remote_write sends in
    # batches, the store shows the newest 30 s only once they settle): retried.
    deadline = time.monotonic() + timeout
    while True:
        empty = [e for name in LEVELS for e in _empty_queries(fleet, base_url, name)]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert not empty, f"queries without data from {base_url}:\n" + "\n".join(empty)


def test_every_dashboard_query_returns_data_for_each_gateway(fleet: Fleet) -> None:
    test_prometheus_has_each_gateway_series(fleet)  # the changes are in: the data is there
    _every_query_has_data(fleet, fleet.prometheus_url, timeout=30)


def test_every_dashboard_query_returns_data_from_the_long_term_store(fleet: Fleet) -> None:
    every = {name: {"creative_min", "phase_max"} for name in LEVELS}
    wait_for(lambda: all(_annotated(fleet.longterm_url).get(g) == r for g, r in every.items()),
             timeout=120, what="every gateway's annotated changes in the long-term store")
    _every_query_has_data(fleet, fleet.longterm_url, timeout=90)
    # Fed by Prometheus's remote_write (not by a scrape of its own): Prometheus says so.
    sent = _query(fleet.prometheus_url,
                  "prometheus_remote_storage_samples_total or "
                  "prometheus_remote_storage_succeeded_samples_total")
    assert sum(float(s["value"][1]) for s in sent) > 0, sent
    # The long-term alerts read series this Prometheus has, and stay quiet while it works.
    (up,) = _query(fleet.prometheus_url, f'up{{job="{STORE}"}}')
    assert up["value"][1] == "1"
    (behind,) = _query(fleet.prometheus_url,
                       "max(prometheus_remote_storage_highest_timestamp_in_seconds) - max("
                       'prometheus_remote_storage_queue_highest_sent_timestamp_seconds'
                       '{remote_name="longterm"})')
    assert float(behind["value"][1]) < 300, behind
    assert not _query(fleet.prometheus_url, 'ALERTS{alertname=~"LumenLongTerm.*"}')


def test_a_gateway_added_while_running_appears(fleet: Fleet) -> None:
    gateway = _feed(fleet, ADDED, ADDED_LEVELS, int(time.time()) - 30)
    assert gateway.root == fleet.root / ADDED
    wait_for(lambda: _has_rows(fleet, ADDED, ADDED_LEVELS), timeout=90,
             what=f"the added gateway's effects row\n{fleet.logs()}")
    wait_for(lambda: "creative_min" in _annotated(fleet.prometheus_url).get(ADDED, set()),
             timeout=60, what="the added gateway's change in Prometheus")
    status = {s["metric"]["gateway"] for s in _query(fleet.prometheus_url,
                                                     "lumen_gateway_status")}
    assert status == {*LEVELS, ADDED}
    # The others went on: no gateway lost its rows.
    for name in LEVELS:
        assert len(_effects(fleet, name)) == 2


def test_the_store_volume_is_nobodys_even_where_the_store_image_lacks_its_directory(
        compose_env: dict[str, str]) -> None:
    """The upstream store image has no /storage: a fresh volume mounted there would belong
    to root, and the store runs as nobody. longterm-init hands it to nobody first; seen
    here through an image without that directory either (the python base)."""
    project = f"lumeninit{time.time_ns() % 10**9}"
    env = {**_fresh_user_env(compose_env), "COMPOSE_PROFILES": "longterm"}
    compose = ["env", *(f"{k}={v}" for k, v in sorted(env.items())),
               *shlex.split(_compose_command()), "-f", str(COMPOSE_FILE), "-p", project]
    base = compose_env.get("LUMEN_PYTHON_IMAGE") or "debian:bookworm-slim"
    try:
        up = subprocess.run([*compose, "up", "--build", "longterm-init"], capture_output=True,
                            text=True, timeout=600, check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        probe = subprocess.run(
            ["docker", "run", "--rm", "--user", "65534:65534", "--network", "none",
             "-v", f"{project}_longterm-data:/elsewhere", base,
             "sh", "-c", "stat -c %u:%g /elsewhere && touch /elsewhere/written"],
            capture_output=True, text=True, timeout=120, check=False)
        assert probe.returncode == 0 and probe.stdout.split() == ["65534:65534"], probe
    finally:
        subprocess.run([*compose, "down", "-v", "--timeout", "5"], capture_output=True,
                       timeout=180, check=False)


def test_grafana_reads_the_long_term_store(fleet: Fleet, compose_env: dict[str, str]) -> None:
    if fleet.grafana_url is None:
        pytest.skip(fleet.grafana_skip_reason)
    auth = (compose_env["LUMEN_GRAFANA_ADMIN_USER"], compose_env["LUMEN_GRAFANA_ADMIN_PASSWORD"])
    base = f"{fleet.grafana_url}/api/datasources/uid/{LONGTERM_DATASOURCE_UID}"
    status, body = http_json(base, auth=auth)
    assert status == 200 and body["url"] == f"http://{STORE}:8428", body
    status, body = http_json(base + "/health", auth=auth)
    assert status == 200 and body["status"] == "OK", body
    request = {
        "from": str(int(fleet.started_at * 1000)),
        "to": str(int(time.time() * 1000)),
        "queries": [{
            "refId": "A",
            "datasource": {"type": "prometheus", "uid": LONGTERM_DATASOURCE_UID},
            "expr": 'lumen_rule_change_timestamp_seconds{d_phase!="pending"}',
            "range": True, "instant": False, "intervalMs": 2000, "maxDataPoints": 500,
        }],
    }
    status, answer = http_json(fleet.grafana_url + "/api/ds/query", data=request, auth=auth,
                               timeout=30)
    frames = answer.get("results", {}).get("A", {}).get("frames", []) if status == 200 else []
    gateways = {f["schema"]["fields"][-1].get("labels", {}).get("gateway") for f in frames}
    assert set(LEVELS) <= gateways, (status, answer)


def test_the_demo_fleet_on_a_fresh_volume_is_a_fleet(compose_env: dict[str, str]) -> None:
    """LUMEN_DEMO_GATEWAYS=3 on the default data root, a fresh named volume (which comes
    with the image's empty logs/ and controls/): three gateways all the way to Prometheus."""
    project = f"lumendemofleet{time.time_ns() % 10**9}"
    env = {**_fresh_user_env(compose_env), "LUMEN_DEMO_GATEWAYS": "3"}
    compose = ["env", *(f"{k}={v}" for k, v in sorted(env.items())),
               *shlex.split(_compose_command()), "-f", str(COMPOSE_FILE), "-p", project]
    prometheus = f"http://127.0.0.1:{env['LUMEN_PROMETHEUS_PORT']}"
    expected = {"steady", "jittery", "drifting"}

    def effects_per_gateway() -> bool:
        try:
            return set(_annotated(prometheus)) == expected
        except (OSError, AssertionError):  # Prometheus not answering yet
            return False

    try:
        up = subprocess.run([*compose, "up", "-d", "--build", "--wait", "demo", "tracker",
                             "exporter", "prometheus"], capture_output=True, text=True,
                            timeout=600, check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        logs = subprocess.run([*compose, "logs", "--tail", "20"], capture_output=True,
                              text=True, timeout=60, check=False)
        wait_for(effects_per_gateway, timeout=120,
                 what=f"an annotated effect of each demo gateway\n{logs.stdout}")
        status = {s["metric"]["gateway"] for s in _query(prometheus, "lumen_gateway_status")}
        assert status == expected
    finally:
        subprocess.run([*compose, "down", "-v", "--timeout", "5"], capture_output=True,
                       timeout=180, check=False)
