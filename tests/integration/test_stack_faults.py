"""Faults the stack must survive, each on the real stack of conftest.stack.

These run after test_stack.py (file order) and leave the stack healthy for the next one;
the Docker engine restart comes last.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from . import dashboards
from .conftest import (
    POST_S,
    REPO,
    Stack,
    _run,
    http_json,
    prom_query,
    wait_for,
    wait_healthy,
)
from .feed import Change

pytestmark = pytest.mark.integration

EFFECTS = ("logs", "rules_effects.csv")
KEY = ("rule_ts", "actor", "rule", "old", "new")
# Run inside the tracker's container: the tracker's python (not PID 1, the init).
FIND_TRACKER = """
import os
for pid in os.listdir('/proc'):
    if not pid.isdigit() or int(pid) in (1, os.getpid()):
        continue
    try:
        args = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')
    except OSError:
        continue
    if args[1:3] == [b'-m', b'tracker']:
        print(pid)
"""


def _container(stack: Stack, service: str) -> str:
    ids = stack.compose.execute(f"ps -q {service}").decode().split()
    assert len(ids) == 1, f"{service}: containers {ids}"
    return ids[0]


def _inspect(cid: str, template: str) -> str:
    return _run("docker", "inspect", "-f", template, cid).stdout.strip()


def _health(stack: Stack, service: str) -> str:
    return _inspect(_container(stack, service), "{{.State.Health.Status}}")


def _effects(stack: Stack) -> tuple[bytes, list[list[str]]]:
    raw = stack.root.joinpath(*EFFECTS).read_bytes()
    return raw, list(csv.reader(raw.decode("utf-8").splitlines()))


def _rows_by_key(stack: Stack) -> dict[tuple[str, ...], int]:
    raw, rows = _effects(stack)
    assert raw.endswith(b"\n"), "the effects file ends in a half row"
    header = rows[0]
    assert all(len(r) == len(header) for r in rows[1:]), "a row with missing fields"
    counts: dict[tuple[str, ...], int] = {}
    for r in rows[1:]:
        key = tuple(dict(zip(header, r))[k] for k in KEY)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _written(counts: dict[tuple[str, ...], int], change: Change) -> int:
    """Rows for the change (rule_ts, actor and rule are enough to tell them apart here)."""
    return sum(n for key, n in counts.items() if key[:3] == (change.ts, change.actor, change.rule))


def _changes(stack: Stack, n: int, gap_s: int, actor: str, rule: str, on_each=None):
    """n rule changes gap_s apart, at whole seconds ahead of the samples; on_each(i) after
    the i-th is appended."""
    made: list[Change] = []
    for i in range(n):
        # gap_s after the previous one, and never at an instant the samples have reached
        # (a slow docker exec in on_each may have taken the planned one).
        t = int(time.time()) + 2
        if made:
            t = max(t, made[-1].unix_s + gap_s)
        change = Change(t, actor, rule, i, i + 1, (0.3, 0.5, 0.22 + i / 100, 0.1))
        while time.time() < change.unix_s - 1:  # appended shortly before it happens
            time.sleep(0.1)
        stack.gateway.record(change)
        made.append(change)
        if on_each:
            on_each(i)
    return made


def _wait_rows(stack: Stack, changes: list[Change], timeout: float) -> dict:
    def all_written():
        counts = _rows_by_key(stack)
        return counts if all(_written(counts, c) for c in changes) else None

    return wait_for(all_written, timeout=timeout, pause=1, what="every change's effects row")


def test_tracker_killed_while_changes_come_loses_and_doubles_nothing(stack: Stack) -> None:
    cid = _container(stack, "tracker")
    restarts = int(_inspect(cid, "{{.RestartCount}}"))
    killed = []

    def kill_after_third(i: int) -> None:
        if i == 2:
            found = _run("docker", "exec", cid, "/usr/bin/python3", "-c", FIND_TRACKER)
            assert found.returncode == 0, found.stderr
            killed.extend(found.stdout.split())
            # Detached: the container ends with its tracker, taking this kill's exec along.
            out = _run("docker", "exec", "-d", cid, "/bin/sh", "-c", f"kill -KILL {killed[0]}")
            assert out.returncode == 0, out.stderr

    changes = _changes(stack, 8, 2, "Mira", "phase_tolerance", kill_after_third)
    assert len(killed) == 1, f"killed {killed}"

    # The restart policy brought the same container back (no `docker start` by anyone).
    wait_for(lambda: int(_inspect(cid, "{{.RestartCount}}")) > restarts, timeout=30,
             what="the tracker's container to be restarted")
    wait_healthy(stack.compose, stack.services, 90, "after the tracker was killed")

    counts = _wait_rows(stack, changes, timeout=POST_S + 60)
    doubled = {k: n for k, n in counts.items() if n != 1}
    assert not doubled, f"rows written more than once: {doubled}"
    assert [_written(counts, c) for c in changes] == [1] * len(changes)
    assert not list(stack.root.joinpath("logs").glob(".rules_effects.csv.*.tmp"))


def test_tracker_that_cannot_write_says_why_turns_unhealthy_and_catches_up(
    stack: Stack,
) -> None:
    logs = stack.root / "logs"
    before = _rows_by_key(stack)
    mode = logs.stat().st_mode & 0o7777
    # The data directory read-only for the containers' user (the gateway, this process,
    # still appends to metrics.csv): the tracker cannot create its temp copy.
    os.chmod(logs, 0o555)
    try:
        (change,) = _changes(stack, 1, 0, "Orin", "loop_rate_hz")
        expected = f"cannot write /data/{'/'.join(EFFECTS)}: Permission denied (EACCES)"

        def said() -> bool:
            return expected in stack.compose.execute("logs --no-color tracker").decode()

        wait_for(said, timeout=POST_S + 30, what=f"the tracker to log {expected!r}")
        wait_for(lambda: _health(stack, "tracker") == "unhealthy", timeout=90,
                 what="the tracker to be unhealthy")
        # The file as it was: whole rows, the new one not written, no temp copy.
        assert _rows_by_key(stack) == before
        assert not list(logs.glob(".rules_effects.csv.*.tmp"))
    finally:
        os.chmod(logs, mode)

    counts = _wait_rows(stack, [change], timeout=30)
    assert _written(counts, change) == 1
    wait_for(lambda: _health(stack, "tracker") == "healthy", timeout=60,
             what="the tracker to be healthy again")
    assert "is writable again" in stack.compose.execute("logs --no-color tracker").decode()


def test_prometheus_restart_keeps_its_history(stack: Stack) -> None:
    def history() -> tuple[float, list[dict]] | None:
        end = time.time() - 5
        found = prom_query(stack, "lumen_phase_diff", start=stack.started_at, end=end, step=2)
        return (end, found) if sum(len(s["values"]) for s in found) > 20 else None

    end, before = wait_for(history, timeout=120, pause=2, what="history in Prometheus")

    def kept(what: str) -> None:
        # Healthy means ready: it answers queries over what it had before.
        wait_healthy(stack.compose, stack.services, 120, f"after Prometheus {what}")
        after = prom_query(stack, "lumen_phase_diff", start=stack.started_at, end=end, step=2)
        assert after == before, f"history lost after Prometheus {what}"

    stack.compose.execute("restart prometheus")
    kept("restarted")

    # Even a new container (as after `down` and `up`): its anonymous volumes go with the old
    # one (-v), so only the named volume can carry the history over.
    old = _container(stack, "prometheus")
    stack.compose.execute("rm --stop --force -v prometheus")
    stack.compose.execute("up -d prometheus")
    assert _container(stack, "prometheus") != old
    kept("was recreated")


def _am_alerts(stack: Stack, name: str) -> list[dict]:
    """Alerts Alertmanager holds now (API v2; resolved ones are not listed)."""
    query = urllib.parse.urlencode({"filter": f'alertname="{name}"'})
    status, body = http_json(f"{stack.alertmanager_url}/api/v2/alerts?{query}")
    assert status == 200, body
    return [a for a in body if a["labels"].get("alertname") == name]


def _firing_panel(stack: Stack, at: float | None = None) -> list[tuple[str, float]]:
    """(alertname, value) rows of the Pipeline health dashboard's "Firing Lumen alerts"."""
    (expr,) = [
        # As the dashboard opens: every variable at its default (All gateways).
        dashboards.substitute(q.expr, {}, builtins=True)
        for path in dashboards.dashboard_files(REPO / "grafana" / "dashboards")
        for q in dashboards.queries(dashboards.load(path))
        if q.where.startswith('panel "Firing Lumen alerts"')
    ]
    params = {"query": expr} | ({"time": f"{at:.3f}"} if at else {})
    query = urllib.parse.urlencode(params)
    status, body = http_json(f"{stack.prometheus_url}/api/v1/query?{query}")
    assert status == 200, body
    return [(r["metric"].get("alertname", ""), float(r["value"][1]))
            for r in body["data"]["result"]]


def test_stale_metrics_alert_reaches_alertmanager_and_resolves(stack: Stack) -> None:
    assert not _am_alerts(stack, "LumenMetricsStale")
    # Before Prometheus evaluated any rule nothing fired: the panel's one "none firing" row.
    assert _firing_panel(stack, at=stack.started_at) == [("", 0.0)]
    stopped = time.time()
    stack.gateway.stop()
    try:
        # The rule as shipped: over 30 s without a sample, for 30 s.
        alerts = wait_for(lambda: _am_alerts(stack, "LumenMetricsStale"), timeout=150,
                          pause=2, what="LumenMetricsStale in Alertmanager")
        fired_after = time.time() - stopped
        # Grafana's panel lists it now (the gateway still silent), without "none firing".
        rows = _firing_panel(stack)
    finally:
        stack.gateway.resume(time.time)
    (alert,) = alerts
    assert alert["status"]["state"] == "active"
    assert [r["name"] for r in alert["receivers"]] == ["lumen"]
    assert alert["labels"]["severity"] == "critical"
    # 30 s without a sample, then 30 s pending (less the last sample's 0.2 s and rounding).
    assert fired_after >= 55, f"fired after {fired_after:.0f} s, before the rule allows"
    assert ("LumenMetricsStale", 1.0) in rows and ("", 0.0) not in rows, rows

    wait_for(lambda: not _am_alerts(stack, "LumenMetricsStale"), timeout=60, pause=2,
             what="LumenMetricsStale to resolve")
    assert not prom_query(stack, 'ALERTS{alertname="LumenMetricsStale"}')


def _engine_restart_allowed() -> str:
    """'' when this run may restart the Docker engine, else why not."""
    if not (os.environ.get("CI") or os.environ.get("LUMEN_IT_RESTART_ENGINE") == "1"):
        return "restarts the Docker engine: only under CI or with LUMEN_IT_RESTART_ENGINE=1"
    if os.geteuid() != 0:
        return "restarting the Docker engine needs root"
    return ""


def _dockerd_pid() -> int | None:
    try:
        pid = int(Path("/var/run/docker.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _restart_engine() -> None:
    """Stop dockerd and start it again: systemd's way if it runs it, else as
    .ci/setup-docker.sh starts it on machines without systemd."""
    if shutil.which("systemctl") and _run("systemctl", "is-active", "--quiet",
                                          "docker").returncode == 0:
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=180)
        return
    pid = _dockerd_pid()
    assert pid, "dockerd is not running from /var/run/docker.pid"
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: _dockerd_pid() is None, timeout=90, what="dockerd to stop")
    subprocess.run(["bash", str(REPO / ".ci" / "setup-docker.sh")], check=True, timeout=180,
                   stdin=subprocess.DEVNULL)


def test_stack_comes_back_by_itself_after_a_docker_engine_restart(stack: Stack) -> None:
    why_not = _engine_restart_allowed()
    if why_not:
        pytest.skip(why_not)
    try:
        _restart_engine()
    finally:
        # Whatever happened, leave an engine running for the rest of the machine.
        if _run("docker", "info").returncode != 0:
            subprocess.run(["bash", str(REPO / ".ci" / "setup-docker.sh")], timeout=180,
                           stdin=subprocess.DEVNULL, check=False)
    wait_healthy(stack.compose, stack.services, 180, "after the engine restarted")

    # And the pipeline works end to end again: a new change becomes a row and a series.
    (change,) = _changes(stack, 1, 0, "Lubit", "entropy_cap")
    assert _written(_wait_rows(stack, [change], timeout=POST_S + 60), change) == 1
    wait_for(lambda: prom_query(stack, f'lumen_rule_change_timestamp_seconds{{rule="entropy_cap",'
                                       f'd_phase!="pending"}} == {change.unix_s}'),
             timeout=60, what="the change in Prometheus after the restart")
