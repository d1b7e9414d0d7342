"""Exporter edge cases: UTC offsets mixed in one file, awkward label values on every family."""

from __future__ import annotations

import csv
import json
from datetime import datetime

import pytest
from prometheus_client import generate_latest

from exporter.cli import build
from tests.rootdata import HEADER as METRICS_HEADER
from tests.test_exporter import one, promtool_check, scrape
from tracker.contract import SHORT
from tracker.contract import SIGNALS as METRICS
from tracker.store import HEADER

# Families with a rule label, each checked below for every awkward name.
LAST_FAMILIES = {f"lumen_rule_last_{name}_delta" for name in METRICS}
PER_RULE_FAMILIES = {  # family -> the effects column (by metric short name) it exposes
    "lumen_rule_effect_delta": "d_{}",
    "lumen_rule_effect_pre_mean": "pre_{}",
    "lumen_rule_effect_post_mean": "post_{}",
    "lumen_rule_effect_pre_samples": "n_pre_{}",
    "lumen_rule_effect_post_samples": "n_post_{}",
}
RULE_FAMILIES = {"lumen_rule_effect_confounded", "lumen_rule_effect_timestamp_seconds",
                 "lumen_rule_change_timestamp_seconds"}


def seconds(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


def write_root(root, written: list[dict], pending: list[dict] = (), metrics: list[str] = ()):
    """History of every event, effects rows for `written` (in the order given)."""
    (root / "controls").mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    events = [{k: e[k] for k in ("ts", "actor", "rule", "old", "new")} for e in
              [*written, *pending]]
    (root / "controls" / "rules_history.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in sorted(events, key=lambda e: seconds(e["ts"]))),
        encoding="utf-8")
    with open(root / "logs" / "rules_effects.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, HEADER, lineterminator="\n")
        w.writeheader()
        for e in written:
            w.writerow({c: e.get(c, "") for c in HEADER})
    if metrics:
        (root / "logs" / "metrics.csv").write_text(
            METRICS_HEADER + "\n" + "".join(r + "\n" for r in metrics), encoding="utf-8")


def effect(ts: str, rule: str, d: float, actor: str = "Lubit", old="1", new="2") -> dict:
    row = {"rule_ts": ts, "ts": ts, "actor": actor, "rule": rule, "old": old, "new": new,
           "pre_s": "30", "post_s": "30", "guard_s": "1", "confounded": "0"}
    for k, short in enumerate(SHORT):
        pre, post = 10.0 * k + d, 10.0 * k + 2 * d
        row.update({f"pre_{short}": repr(pre), f"post_{short}": repr(post),
                    f"d_{short}": repr(post - pre),
                    f"n_pre_{short}": str(146 + k), f"n_post_{short}": str(150 - k)})
    return row


# --- mixed UTC offsets ------------------------------------------------------------------------
# The order of these instants differs from the order of their text, and from the file order.
E_KST = "2025-10-23T13:10:00+09:00"  # 04:10Z
E_UTC = "2025-10-23T04:20:00+00:00"  # 04:20Z: the newest written, lexically the smallest
E_EST = "2025-10-22T23:15:00-05:00"  # 04:15Z
P_KST = "2025-10-23T13:40:00+09:00"  # 04:40Z: oldest pending, lexically the largest
P_UTC = "2025-10-23T04:50:00Z"  # 04:50Z: newest change


def test_newest_and_oldest_are_by_instant_not_by_text_or_file_order(tmp_path):
    written = [effect(E_UTC, "r", 2.0), effect(E_EST, "s", 3.0), effect(E_KST, "r", 1.0)]
    pending = [{"ts": P_UTC, "actor": "Sena", "rule": "q", "old": 1, "new": 2},
               {"ts": P_KST, "actor": "Sena", "rule": "p", "old": 1, "new": 2}]
    write_root(tmp_path, written, pending)
    m = scrape(build(str(tmp_path), recent=2))
    # the most recent written effect is E_UTC's (rule r, Δ 2), not E_KST's
    assert one(m, "lumen_rule_last_phase_diff_delta", rule="r") == 2.0
    assert len(m["lumen_rule_last_phase_diff_delta"]) == 1
    # each rule's latest effect, by instant
    assert one(m, "lumen_rule_effect_delta", rule="r", metric="phase_diff") == 2.0
    assert one(m, "lumen_rule_effect_timestamp_seconds", rule="r") == seconds(E_UTC)
    assert one(m, "lumen_rule_effect_timestamp_seconds", rule="s") == seconds(E_EST)
    assert one(m, "lumen_rule_events_pending") == 2
    assert one(m, "lumen_rule_oldest_pending_timestamp_seconds") == seconds(P_KST)
    assert one(m, "lumen_rule_last_change_timestamp_seconds") == seconds(P_UTC)
    # the 2 most recent changes, by instant
    recent = {lab["rule"]: v for lab, v in m["lumen_rule_change_timestamp_seconds"]}
    assert recent == {"p": seconds(P_KST), "q": seconds(P_UTC)}


def test_latest_sample_with_mixed_offsets(tmp_path):
    rows = ["2025-10-23T13:10:00.000+09:00,1,1,1,1",
            "2025-10-23T04:10:00.200Z,2,2,2,2",
            "2025-10-22T23:10:00.400-05:00,3,3,3,3",
            "2025-10-23T04:10:00.600+00:00,4,,4,4",
            "2025-10-23T09:40:00.800+05:30,5,5,,5"]
    write_root(tmp_path, [], metrics=rows)
    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_metrics_last_sample_timestamp_seconds") == pytest.approx(
        seconds("2025-10-23T04:10:00.800+00:00"), abs=1e-6)
    assert one(m, "lumen_phase_diff") == 5
    assert one(m, "lumen_entropy_rate") == 5
    assert one(m, "lumen_creative_band") == 4  # newest finite value
    assert one(m, "lumen_risk_band") == 5


# --- awkward label values ---------------------------------------------------------------------
AWKWARD = [
    'risk "max"',
    "back\\slash",
    "trailing\\",
    "new\nline",
    "\\n not a newline",
    "Δ→규칙 ü",
    'all: "a\\b"\nΔ',  # the newest: the one the lumen_rule_last_* families show
]


def test_awkward_rule_names_on_every_family_with_a_rule_label(tmp_path, promtool):
    written = [effect(f"2025-10-23T13:{10 + k}:00+09:00", rule, d=k + 1.0,
                      actor='A "b"\\', old="x\ny", new="ü\\")
               for k, rule in enumerate(AWKWARD)]
    written[0]["confounded"] = "1"
    write_root(tmp_path, written)
    registry = build(str(tmp_path), recent=len(AWKWARD))
    m = scrape(registry)

    with_rule = {name for name, samples in m.items() if any("rule" in lab for lab, _ in samples)}
    assert with_rule == LAST_FAMILIES | set(PER_RULE_FAMILIES) | RULE_FAMILIES
    newest = written[-1]
    for family in LAST_FAMILIES:
        short = SHORT[METRICS.index(family.removeprefix("lumen_rule_last_").removesuffix("_delta"))]
        assert m[family] == [({"gateway": tmp_path.name, "rule": AWKWARD[-1]},
                              float(newest[f"d_{short}"]))]
    for row in written:
        rule = row["rule"]
        for family, column in PER_RULE_FAMILIES.items():
            for name, short in zip(METRICS, SHORT):
                assert one(m, family, rule=rule, metric=name) == float(row[column.format(short)])
        assert one(m, "lumen_rule_effect_confounded", rule=rule) == int(row["confounded"])
        assert one(m, "lumen_rule_effect_timestamp_seconds", rule=rule) == seconds(row["ts"])
        lab, v = next((lab, v) for lab, v in m["lumen_rule_change_timestamp_seconds"]
                      if lab["rule"] == rule)
        assert v == seconds(row["ts"])
        assert (lab["actor"], lab["old"], lab["new"]) == ('A "b"\\', "x\ny", "ü\\")
        assert lab["d_phase"] == f"{float(row['d_phase']):.4g}"
    for family in set(PER_RULE_FAMILIES) | RULE_FAMILIES:
        assert {lab["rule"] for lab, _ in m[family]} == set(AWKWARD), family
    promtool_check(promtool, generate_latest(registry))


# --- a row with one end of an interval --------------------------------------------------------
@pytest.mark.parametrize("blank", ["lo", "hi"])
def test_an_interval_with_one_end_blank_is_na_and_the_other_end_still_served(tmp_path, blank):
    # The tracker writes both ends or neither; a hand-edited file may hold one. Neither the
    # scrape nor the other end may be lost over it.
    kept = "hi" if blank == "lo" else "lo"
    row = effect("2025-10-23T13:10:00+09:00", "creative_min", d=1.0)
    row.update({f"d_{short}_{end}": "0.5" for short in SHORT for end in ("lo", "hi")})
    row[f"d_phase_{blank}"] = ""
    write_root(tmp_path, [row])
    m = scrape(build(str(tmp_path)))
    assert one(m, f"lumen_rule_last_phase_diff_delta_{kept}", rule="creative_min") == 0.5
    assert f"lumen_rule_last_phase_diff_delta_{blank}" not in m
    assert one(m, f"lumen_rule_last_entropy_rate_delta_{blank}", rule="creative_min") == 0.5
    (lab, _), = m["lumen_rule_change_timestamp_seconds"]
    assert lab["d_phase_interval"] == "n/a" and lab["d_entropy_interval"] == "[0.5, 0.5]"
