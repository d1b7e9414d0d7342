"""The exporter notices a replaced input file even when nothing about it but its content
changed in number: identity and size tell, not counts."""

from __future__ import annotations

import os
import re

from prometheus_client import generate_latest

from exporter.cli import build
from tests.rootdata import event, write_history


def test_a_history_replaced_by_one_with_as_many_events_is_noticed(tmp_path):
    write_history(tmp_path, [event(0, rule="creative_min")])
    registry = build(str(tmp_path))
    assert 'rule="creative_min"' in generate_latest(registry).decode("utf-8")

    replacement = tmp_path / "new.jsonl"
    write_history(tmp_path, [event(5, rule="risk_max", old=0.5, new=0.4)])
    os.replace(tmp_path / "controls" / "rules_history.jsonl", replacement)
    os.replace(replacement, tmp_path / "controls" / "rules_history.jsonl")

    text = generate_latest(registry).decode("utf-8")
    assert 'rule="risk_max"' in text
    assert 'rule="creative_min"' not in text
    assert re.search(r'^lumen_rule_events_total\{gateway="[^"]+"\} 1\.0$', text, re.M)
