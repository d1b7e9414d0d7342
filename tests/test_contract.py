"""The contract module against reality: what a live exporter serves, and what the dashboards
and Prometheus rules query."""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.request
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from demo import sim
from exporter import sources
from exporter.cli import build
from exporter.server import make_server
from grafana import overview
from grafana.queries import expressions, series_names
from tests.rootdata import append, event, sample_rows, write_history, write_metrics
from tracker import contract
from tracker.report import Reporter
from tracker.run import run_once
from tracker.settings import resolve

REPO = Path(__file__).resolve().parents[1]


def _busy_root(root: Path) -> None:
    """A root where every family has something to say: effects written with two different
    windows, one event still pending, a status, samples and a bad line."""
    write_metrics(root, sample_rows(-100, 45))
    write_history(root, [event(-60, rule="risk_max", old=0.5, new=0.4),
                         event(0, rule="creative_min")])
    run_once(resolve(str(root), env={}), Reporter(open(os.devnull, "w")))
    append(root / "controls" / "rules_history.jsonl",
           json.dumps(event(-30, rule="loop_rate_hz", old=5, new=6)) + "\n")
    run_once(resolve(str(root), pre=10, env={}), Reporter(open(os.devnull, "w")))
    append(root / "controls" / "rules_history.jsonl",
           json.dumps(event(44, rule="risk_max", old=0.4, new=0.3)) + "\nnot json\n")
    (root / "gateway_activation.yaml").write_text("gateway:\n  status: binding\n")


def _served_names(root: Path) -> set[str]:
    server = make_server(build(str(root)), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
            text = r.read().decode("utf-8")
    finally:
        server.shutdown()
        server.server_close()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def _queried_names() -> set[str]:
    rules = []
    for path in sorted((REPO / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    records = {r["record"] for r in rules if "record" in r}
    exprs = [r["expr"] for r in rules]
    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        exprs.extend(expressions(json.loads(path.read_text(encoding="utf-8"))))
    assert len(exprs) > 30
    names: set[str] = set()
    for expr in exprs:
        names |= series_names(expr, contract.EXPORTER_METRICS)
    return names - records


def test_every_queried_name_is_in_a_live_scrape(tmp_path):
    _busy_root(tmp_path)
    served = _served_names(tmp_path)
    queried = _queried_names()
    assert queried, "no query read a lumen series"
    assert queried - served == set()


def test_the_contract_names_exactly_what_a_live_exporter_serves(tmp_path):
    _busy_root(tmp_path)
    assert _served_names(tmp_path) == contract.EXPORTER_METRICS


def test_windows_come_from_the_rows_and_disagreement_is_said(tmp_path):
    _busy_root(tmp_path)
    registry = build(str(tmp_path), pre=45.0)  # the exporter's own setting must not win
    text = generate_latest(registry).decode("utf-8")
    windows = {
        s.labels["window"]: (s.labels["source"], s.value)
        for fam in text_string_to_metric_families(text) for s in fam.samples
        if s.name == contract.EFFECT_WINDOW
    }
    # The row written last is loop_rate_hz's, measured with pre=10.
    assert windows == {"pre": ("effects", 10.0), "post": ("effects", 30.0),
                       "guard": ("effects", 1.0)}
    assert re.search(rf"^{contract.EFFECT_WINDOW_VARIANTS}{{gateway=\"[^\"]+\"}} 2\.0$", text,
                     re.M)


def test_settings_stand_in_for_windows_before_any_effect(tmp_path):
    write_history(tmp_path, [event(0)])
    text = generate_latest(build(str(tmp_path), pre=20.0)).decode("utf-8")
    assert re.search(rf'^{contract.EFFECT_WINDOW}{{gateway="[^"]+",source="settings",'
                     rf'window="pre"}} 20\.0$', text, re.M), text
    assert contract.EFFECT_WINDOW_VARIANTS not in text


def test_every_part_uses_the_contract_states_and_signals():
    assert sim.METRICS is contract.SIGNALS
    assert sim.STATES is contract.STATES
    assert sources.STATES is contract.STATES
    mapping = json.loads(json.dumps(overview.GATEWAY_STATES.options, default=vars))
    assert [mapping[str(i)]["text"] for i in range(len(contract.STATES))] == list(
        contract.STATES)


def test_a_damaged_row_is_recorded_for_tracker_and_exporter_alike(tmp_path):
    write_metrics(tmp_path, sample_rows(-100, 45))
    write_history(tmp_path, [event(-60, rule="risk_max", old=0.5, new=0.4),
                             event(0, rule="creative_min")])
    run_once(resolve(str(tmp_path), env={}), Reporter(open(os.devnull, "w")))
    path = tmp_path / "logs" / "rules_effects.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = ",".join(lines[1].split(",")[:-3])  # edited by hand: fields lost
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    text = generate_latest(build(str(tmp_path))).decode("utf-8")
    assert re.search(rf'^{contract.EVENTS_PENDING}{{gateway="[^"]+"}} 0\.0$', text, re.M), text
    assert contract.OLDEST_PENDING_TIME not in text
    again = run_once(resolve(str(tmp_path), env={}), Reporter(open(os.devnull, "w")))
    assert (again.written, again.pending) == (0, 0)
    assert path.read_text(encoding="utf-8").splitlines() == lines
