"""The compose stack end to end: gateway files -> tracker/exporter -> Prometheus -> Grafana."""

from __future__ import annotations

import csv
import math
import time
import urllib.parse
import urllib.request

import pytest

from . import dashboards
from .conftest import GUARD_S, POST_S, PRE_S, REPO, Stack, http_json, prom_query, wait_for
from .feed import SIGNALS, Change

pytestmark = pytest.mark.integration

DATASOURCE_UID = "lumen-prometheus"
DASHBOARD_DIR = REPO / "grafana" / "dashboards"
# Samples in a window [a, b] of whole seconds, both ends inclusive, at 5 Hz.
WINDOW_SAMPLES = {"pre": (PRE_S - GUARD_S) * 5 + 1, "post": (POST_S - GUARD_S) * 5 + 1}
SHORT = {
    "phase_diff": "phase",
    "entropy_rate": "entropy",
    "creative_band": "creative",
    "risk_band": "risk",
}


def effects_rows(stack: Stack) -> list[dict[str, str]]:
    path = stack.root / "logs" / "rules_effects.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def rule_change(stack: Stack) -> dict:
    """A rule change appended while the stack runs, and what became of it."""
    # A little ahead, so that no sample at or after t0 is written yet, and the event stays
    # pending long enough (about 11 s) for a few scrapes and rule evaluations to see it.
    t0 = int(time.time()) + 5
    change = Change(t0, "Sena", "risk_max", 0.3, 0.25, (0.25, 0.52, 0.27, 0.08))
    appended_at = time.time()
    stack.gateway.record(change)

    def written() -> dict[str, str] | None:
        return next((r for r in effects_rows(stack) if r["rule_ts"] == change.ts), None)

    row = wait_for(written, timeout=POST_S + 90, pause=0.5, what="the effects row")
    seen_at = time.time()
    expected = {
        s: new - old
        for s, new, old in zip(SIGNALS, change.levels, stack.history_change.levels, strict=True)
    }
    return {
        "change": change,
        "row": row,
        "appended_at": appended_at,
        "seen_at": seen_at,
        "expected": expected,
    }


def test_prometheus_scrapes_the_exporter(stack: Stack) -> None:
    def exporter_target() -> dict | None:
        status, body = http_json(stack.prometheus_url + "/api/v1/targets")
        assert status == 200
        for target in body["data"]["activeTargets"]:
            if target["labels"].get("job") == "lumen-exporter" and target["health"] == "up":
                return target
        return None

    target = wait_for(exporter_target, timeout=60, what="the exporter target to be up")
    assert target["scrapeUrl"] == "http://exporter:9108/metrics"
    assert prom_query(stack, 'up{job="lumen-exporter"} == 1')

    with urllib.request.urlopen(stack.exporter_url + "/healthz", timeout=10) as resp:
        assert resp.status == 200 and resp.read().strip() == b"ok"


def test_rule_change_becomes_an_effect_row(stack: Stack, rule_change: dict) -> None:
    change, row = rule_change["change"], rule_change["row"]
    # Final only once the metrics reach t0 + POST_S, and the samples are written in real time.
    assert rule_change["seen_at"] >= change.unix_s + POST_S
    assert (row["actor"], row["rule"]) == ("Sena", "risk_max")
    assert float(row["old"]) == 0.3 and float(row["new"]) == 0.25
    assert float(row["pre_s"]) == PRE_S and float(row["post_s"]) == POST_S
    assert row["confounded"] == "0"
    for signal, short in SHORT.items():
        assert math.isclose(
            float(row[f"d_{short}"]), rule_change["expected"][signal], abs_tol=1e-9
        ), signal
        assert int(row[f"n_pre_{short}"]) == WINDOW_SAMPLES["pre"], signal
        assert int(row[f"n_post_{short}"]) == WINDOW_SAMPLES["post"], signal
    # Exactly one row for the event, whatever the tracker's polling did meanwhile.
    assert [r["rule_ts"] for r in effects_rows(stack)].count(change.ts) == 1


def test_rule_change_reaches_prometheus(stack: Stack, rule_change: dict) -> None:
    expected = rule_change["expected"]

    def last_deltas() -> dict[str, float] | None:
        values = {}
        for signal in SIGNALS:
            result = prom_query(stack, f'lumen_rule_last_{signal}_delta{{rule="risk_max"}}')
            if not result:
                return None
            values[signal] = float(result[0]["value"][1])
        return values

    deltas = wait_for(last_deltas, timeout=30, what="lumen_rule_last_*_delta{rule=risk_max}")
    for signal in SIGNALS:
        assert math.isclose(deltas[signal], expected[signal], abs_tol=1e-9), signal
        per_rule = prom_query(
            stack, f'lumen_rule_effect_delta{{rule="risk_max",metric="{signal}"}}'
        )
        assert math.isclose(float(per_rule[0]["value"][1]), expected[signal], abs_tol=1e-9)

    # The annotation series: one per change, valued at the change time in seconds, its Δs
    # as labels ("pending" until the effect is written).
    def annotation() -> dict | None:
        result = prom_query(
            stack, 'lumen_rule_change_timestamp_seconds{rule="risk_max",actor="Sena"}'
        )
        done = [r for r in result if r["metric"].get("d_phase") != "pending"]
        return done[0] if done else None

    series = wait_for(annotation, timeout=30, what="the annotation series with its Δ labels")
    assert float(series["value"][1]) == rule_change["change"].unix_s
    for signal, short in SHORT.items():
        label = float(series["metric"][f"d_{short}"])  # 4 significant digits
        assert math.isclose(label, expected[signal], rel_tol=1e-3), signal

    pending = prom_query(
        stack,
        'lumen_rule_change_timestamp_seconds{rule="risk_max",d_phase="pending"}',
        start=rule_change["appended_at"],
        end=time.time(),
        step=1,
    )
    assert pending, "the change never showed as pending before its effect was written"

    earlier = prom_query(stack, 'lumen_rule_change_timestamp_seconds{rule="creative_min"}')
    assert [float(r["value"][1]) for r in earlier] == [stack.history_change.unix_s]


def _label_values(stack: Stack):
    def label_values(match: str | None, label: str) -> list[str]:
        query = urllib.parse.urlencode({"match[]": match} if match else {})
        url = f"{stack.prometheus_url}/api/v1/label/{label}/values?{query}"
        status, body = http_json(url)
        assert status == 200, body
        return body["data"]

    return label_values


def _dashboard_queries(stack: Stack) -> list[tuple[dict, dashboards.Query, dict[str, str]]]:
    files = dashboards.dashboard_files(DASHBOARD_DIR)
    assert files, f"no dashboard JSON under {DASHBOARD_DIR}"
    found = []
    for path in files:
        dashboard = dashboards.load(path)
        values = dashboards.variable_values(dashboard, _label_values(stack))
        found += [(dashboard, q, values) for q in dashboards.queries(dashboard)]
    assert found, "the dashboards hold no PromQL"
    return found


def test_every_dashboard_query_returns_data(stack: Stack, rule_change: dict) -> None:
    empty = []
    for _, query, values in _dashboard_queries(stack):
        expr = dashboards.substitute(query.expr, values, builtins=True)
        # Over the whole run: some series exist only for a while (a pending event).
        if not prom_query(stack, expr, start=stack.started_at, end=time.time(), step=2):
            empty.append(f"{query.dashboard_uid}: {query.where}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


# Grafana: only where its image exists (it has no Debian package; see README).
@pytest.fixture(scope="session")
def grafana(stack: Stack) -> Stack:
    if stack.grafana_url is None:
        pytest.skip(stack.grafana_skip_reason)
    return stack


def test_grafana_health_and_login(grafana: Stack) -> None:
    status, body = http_json(grafana.grafana_url + "/api/health")
    assert status == 200 and body["database"] == "ok"
    status, _ = http_json(grafana.grafana_url + "/api/user", auth=grafana.grafana_auth)
    assert status == 200
    # The password comes from the environment; Grafana's default is refused.
    status, _ = http_json(grafana.grafana_url + "/api/user", auth=("admin", "admin"))
    assert status == 401


def test_grafana_datasource_is_healthy(grafana: Stack) -> None:
    base = f"{grafana.grafana_url}/api/datasources/uid/{DATASOURCE_UID}"
    status, body = http_json(base, auth=grafana.grafana_auth)
    assert status == 200 and body["url"] == "http://prometheus:9090", body
    status, body = http_json(base + "/health", auth=grafana.grafana_auth)
    assert status == 200 and body["status"] == "OK", body


def test_grafana_serves_every_dashboard_and_panel_query(grafana: Stack, rule_change) -> None:
    uids = sorted({dashboards.load(p)["uid"] for p in dashboards.dashboard_files(DASHBOARD_DIR)})
    assert uids, f"no dashboard JSON under {DASHBOARD_DIR}"
    failures = []
    for uid in uids:
        url = f"{grafana.grafana_url}/api/dashboards/uid/{uid}"
        status, body = http_json(url, auth=grafana.grafana_auth)
        assert status == 200, (uid, body)
        # Anonymous visitors see the dashboards as Viewers.
        assert http_json(url)[0] == 200, f"anonymous access to {uid}"

        served = body["dashboard"]  # as provisioned, not as read from the file
        values = dashboards.variable_values(served, _label_values(grafana))
        for query in dashboards.queries(served):
            request = {
                "from": str(int(grafana.started_at * 1000)),
                "to": str(int(time.time() * 1000)),
                "queries": [
                    {
                        "refId": "A",
                        "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
                        # Grafana fills in its own variables ($__interval, ...); ours here.
                        "expr": dashboards.substitute(query.expr, values, builtins=False),
                        "range": True,
                        "instant": False,
                        "intervalMs": 2000,
                        "maxDataPoints": 500,
                    }
                ],
            }
            status, answer = http_json(
                grafana.grafana_url + "/api/ds/query",
                data=request,
                auth=grafana.grafana_auth,
                timeout=30,
            )
            result = answer.get("results", {}).get("A", {}) if status == 200 else {}
            frames = [f for f in result.get("frames", []) if any(f["data"].get("values") or [])]
            if status != 200 or result.get("error") or not frames:
                failures.append(f"{uid}: {query.where}: {status} {answer}")
    assert not failures, "\n".join(failures)
