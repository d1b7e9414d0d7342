"""A history with many distinct rule names costs Prometheus a bounded number of series."""

from __future__ import annotations

import json

import pytest

from exporter import cli
from exporter.cli import build, max_rules_setting
from tests.rootdata import append, event, sample_rows, write_history, write_metrics
from tests.test_exporter import one, scrape, track

N_RULES = 12


def rule(k: int) -> str:
    # Names in the opposite order to their changes (rule_11 changed first, rule_00 last),
    # so that keeping the last names or the first would not pass for keeping the newest.
    return f"rule_{N_RULES - 1 - k:02d}"


def many_rules(root) -> None:
    # One change every 2 s: rule(0) the oldest, rule(N_RULES - 1) the newest.
    write_metrics(root, sample_rows(-40, 2 * N_RULES + 40))
    write_history(root, [event(2 * k, rule=rule(k)) for k in range(N_RULES)])
    track(root)


def rules_in(m, name: str) -> set[str]:
    return {labels["rule"] for labels, _ in m.get(name, [])}


def test_only_the_most_recently_changed_rules_are_published(tmp_path, capsys):
    many_rules(tmp_path)
    capsys.readouterr()
    registry = build(str(tmp_path), max_rules=5)
    m = scrape(registry)
    newest = {rule(k) for k in range(N_RULES - 5, N_RULES)}
    for name in ("lumen_rule_effect_delta", "lumen_rule_effect_pre_samples",
                 "lumen_rule_effect_confounded", "lumen_rule_effect_timestamp_seconds"):
        assert rules_in(m, name) == newest, name
    assert one(m, "lumen_rule_labels_dropped") == N_RULES - 5
    # A new change makes the exporter read the files again: still said only once.
    append(tmp_path / "controls" / "rules_history.jsonl",
           json.dumps(event(2 * N_RULES, rule=rule(N_RULES - 1), old=0.24, new=0.26)) + "\n")
    assert one(scrape(registry), "lumen_rule_events_total") == N_RULES + 1
    logged = [line for line in capsys.readouterr().err.splitlines() if "--max-rules" in line]
    assert len(logged) == 1, logged  # said once, not at every scrape
    assert str(tmp_path / "logs" / "rules_effects.csv") in logged[0]
    assert f"{N_RULES} distinct rule names" in logged[0]
    assert "counted in lumen_rule_labels_dropped" in logged[0]


def test_under_the_cap_every_rule_is_published(tmp_path, capsys):
    many_rules(tmp_path)
    m = scrape(build(str(tmp_path)))  # the default cap
    assert len(rules_in(m, "lumen_rule_effect_delta")) == N_RULES
    assert one(m, "lumen_rule_labels_dropped") == 0
    assert "--max-rules" not in capsys.readouterr().err


def test_the_cap_setting(monkeypatch):
    monkeypatch.delenv("LUMEN_MAX_RULE_LABELS", raising=False)
    assert max_rules_setting(None) == 300
    monkeypatch.setenv("LUMEN_MAX_RULE_LABELS", "40")
    assert max_rules_setting(None) == 40 and max_rules_setting(7) == 7
    assert max_rules_setting(1) == 1  # the least there is
    monkeypatch.setenv("LUMEN_MAX_RULE_LABELS", "lots")
    with pytest.raises(ValueError, match="LUMEN_MAX_RULE_LABELS='lots'"):
        max_rules_setting(None)
    with pytest.raises(ValueError, match="1 or more"):
        max_rules_setting(0)
    monkeypatch.delenv("LUMEN_MAX_RULE_LABELS")
    assert cli.main(["--max-rules", "0", "--port", "0"]) == 2


def test_the_command_passes_its_cap_to_the_exporter(tmp_path, servers):
    many_rules(tmp_path)
    assert cli.main(["--root", str(tmp_path), "--max-rules", "3", "--port", "0"]) == 130
    (srv,) = servers
    assert rules_in(scrape(srv.registry), "lumen_rule_effect_delta") == {
        rule(k) for k in range(N_RULES - 3, N_RULES)}
