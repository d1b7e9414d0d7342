"""One exporter for a fleet: every series carries its gateway; new gateways appear."""

from __future__ import annotations

import os
import subprocess

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import build
from tests.rootdata import event, sample_rows, write_history, write_metrics
from tracker.report import Reporter
from tracker.run import run_once
from tracker.settings import resolve


def _gateway(root, name, rule, status="resonating"):
    gw = root / name
    write_metrics(gw, sample_rows(-40, 40))
    write_history(gw, [event(0, rule=rule)])
    (gw / "gateway_activation.yaml").write_text(f"gateway:\n  status: {status}\n")
    run_once(resolve(str(gw), env={}), Reporter(open(os.devnull, "w")))


def _samples(registry):
    text = generate_latest(registry).decode("utf-8")
    return text, [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def test_every_series_carries_its_gateway_and_new_gateways_appear(tmp_path, promtool):
    _gateway(tmp_path, "prod", "creative_min", "locked")
    _gateway(tmp_path, "staging", "risk_max", "binding")
    registry = build(str(tmp_path))
    text, samples = _samples(registry)
    assert all(s.labels.get("gateway") in ("prod", "staging") for s in samples)
    status = {s.labels["gateway"]: s.value for s in samples if s.name == "lumen_gateway_status"}
    assert status == {"prod": 4.0, "staging": 2.0}
    rules = {(s.labels["gateway"], s.labels["rule"]) for s in samples
             if s.name == "lumen_rule_last_phase_diff_delta"}
    assert rules == {("prod", "creative_min"), ("staging", "risk_max")}
    # The exposition keeps each name once however many gateways there are.
    assert text.count("# TYPE lumen_gateway_status ") == 1
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    _gateway(tmp_path, "site-3", "loop_rate_hz")
    _, samples = _samples(registry)
    assert {s.labels["gateway"] for s in samples if s.name == "lumen_gateway_status"} == {
        "prod", "staging", "site-3"}


def test_a_single_root_is_named_by_lumen_gateway(tmp_path, monkeypatch):
    write_history(tmp_path, [event(0)])
    monkeypatch.setenv("LUMEN_GATEWAY", "lab")
    _, samples = _samples(build(str(tmp_path)))
    assert {s.labels["gateway"] for s in samples} == {"lab"}


def _without_durations(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if not line.startswith("lumen_exporter_collect_duration_seconds{")]


def test_the_cached_exposition_is_the_plain_one_and_follows_changes(tmp_path):
    _gateway(tmp_path, "prod", "creative_min", "locked")
    _gateway(tmp_path, "staging", "risk_max", "binding")
    registry = build(str(tmp_path))
    for _ in range(2):  # the second time from the cache
        assert _without_durations(registry.exposition().decode("utf-8")) == _without_durations(
            generate_latest(registry).decode("utf-8"))
    # A new rule change in one gateway (its history changed): the cache follows it.
    with open(tmp_path / "staging" / "controls" / "rules_history.jsonl", "a") as f:
        f.write('{"ts":"2025-10-23T13:10:20+09:00","actor":"Mira","rule":"loop_rate_hz",'
                '"old":5,"new":6}\n')
    text = registry.exposition().decode("utf-8")
    assert 'lumen_rule_events_pending{gateway="staging"} 1.0' in text
    assert 'rule="loop_rate_hz"' in text
    assert _without_durations(text) == _without_durations(
        generate_latest(registry).decode("utf-8"))


def test_the_cached_exposition_formats_a_gateways_effects_once_per_change(tmp_path,
                                                                          monkeypatch):
    from exporter import fleet as fleet_mod

    _gateway(tmp_path, "prod", "creative_min", "locked")
    _gateway(tmp_path, "staging", "risk_max", "binding")
    registry = build(str(tmp_path))
    formatted = []
    real = fleet_mod._texts
    monkeypatch.setattr(fleet_mod, "_texts", lambda fams: formatted.append(
        {f.name for f in fams}) or real(fams))
    registry.exposition()
    per_rule = [names for names in formatted if "lumen_rule_effect_delta" in names]
    assert len(per_rule) == 2  # each gateway's effect families, formatted once
    for _ in range(3):
        registry.exposition()
    assert [names for names in formatted if "lumen_rule_effect_delta" in names] == per_rule
    with open(tmp_path / "staging" / "controls" / "rules_history.jsonl", "a") as f:
        f.write('{"ts":"2025-10-23T13:10:20+09:00","actor":"Mira","rule":"loop_rate_hz",'
                '"old":5,"new":6}\n')
    registry.exposition()
    assert len([names for names in formatted if "lumen_rule_effect_delta" in names]) == 3


def test_a_gateway_that_goes_away_leaves_the_exposition_and_nothing_kept(tmp_path):
    import shutil

    _gateway(tmp_path, "prod", "creative_min", "locked")
    _gateway(tmp_path, "test", "loop_rate_hz", "binding")
    registry = build(str(tmp_path))
    registry.exposition()
    _gateway(tmp_path, "staging", "risk_max", "binding")
    generate_latest(registry)  # staging is collected, never formatted by exposition()
    shutil.rmtree(tmp_path / "staging")
    shutil.rmtree(tmp_path / "test")
    text = registry.exposition().decode("utf-8")
    assert 'gateway="prod"' in text and 'gateway="staging"' not in text
    assert 'gateway="test"' not in text
    assert set(registry.fleet.collectors) == set(registry.fleet._derived_text) == {"prod"}
