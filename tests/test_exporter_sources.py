"""The exporter's readers over time: files that appear, change, vanish, break and come back;
each reason said once on stderr, each bad line counted once, nothing rebuilt for nothing."""

from __future__ import annotations

import json
import os
from datetime import UTC

import pytest

from exporter import collector as collector_mod
from exporter import sources
from exporter.cli import build
from tests.rootdata import HEADER as HEADER_M
from tests.rootdata import append, event, sample_rows, ts, write_history, write_metrics
from tests.test_exporter import one, scrape, track
from tests.test_exporter_edges import effect, seconds, write_root
from tracker.store import HEADER
from tracker.timeparse import TimeParser

HIST = "rules_history.jsonl"


def errors(m, file: str) -> float:
    return one(m, "lumen_input_parse_errors_total", file=file)


def readable(m, file: str) -> float:
    return one(m, "lumen_input_readable", file=file)


# --- Health: said once per reason, counted every time --------------------------------------


def test_health_says_each_new_reason_once_and_counts_each_failure(tmp_path, capsys):
    h = sources.Health(readable=True)
    path = tmp_path / "f.csv"
    h.unreadable(path, OSError("disk on fire"))
    h.unreadable(path, OSError("disk on fire"))
    assert capsys.readouterr().err == (
        f"lumen-exporter: warning: {path}: cannot read: disk on fire\n")
    assert (h.readable, h.errors, h.last_error) == (False, 2, "disk on fire")
    h.unreadable(path, OSError("gone"), count=False)
    assert capsys.readouterr().err == f"lumen-exporter: warning: {path}: cannot read: gone\n"
    assert h.errors == 2


# --- gateway_activation.yaml ---------------------------------------------------------------


def test_activation_with_bytes_not_utf8_still_gives_its_state(tmp_path):
    (tmp_path / "gateway_activation.yaml").write_bytes(
        b"# \xff\xfe not UTF-8\ngateway:\n  status: locked\n")
    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_gateway_status") == 4
    assert errors(m, "gateway_activation.yaml") == 0


def test_activation_unknown_state_counted_once_per_change(tmp_path, capsys):
    p = tmp_path / "gateway_activation.yaml"
    p.write_text("gateway:\n  status: dancing\n")
    registry = build(str(tmp_path))
    for _ in range(3):
        m = scrape(registry)
    assert one(m, "lumen_gateway_status") == 0
    assert errors(m, "gateway_activation.yaml") == 1
    p.write_text("gateway:\n  status: jumping\n")
    os.utime(p, ns=(1, 1))  # a new stamp even within the clock's resolution
    m = scrape(registry)
    assert errors(m, "gateway_activation.yaml") == 2
    p.write_text("gateway: [unclosed\n")
    m = scrape(registry)
    assert "lumen_gateway_status" not in m and readable(m, "gateway_activation.yaml") == 0
    err = capsys.readouterr().err
    assert f"{p}: cannot read: while parsing a flow sequence" in err
    p.unlink()
    m = scrape(registry)
    assert "lumen_gateway_status" not in m and readable(m, "gateway_activation.yaml") == 0


# --- the metrics tail ----------------------------------------------------------------------


def test_unreadable_metrics_header_leaves_the_latest_gauges_out(tmp_path, capsys):
    p = write_metrics(tmp_path, sample_rows(0, 1))
    registry = build(str(tmp_path))
    assert one(scrape(registry), "lumen_phase_diff") == 1
    p.write_text("time,foo\n1,2\n")
    m = scrape(registry)
    assert "lumen_phase_diff" not in m and "lumen_metrics_last_sample_timestamp_seconds" not in m
    assert readable(m, "metrics.csv") == 0
    assert f"lumen-exporter: warning: {p}: cannot read: {p}:1: header lacks column(s) ts" in (
        capsys.readouterr().err)


def test_bad_tail_rows_counted_once_across_appends_and_anew_in_a_new_file(tmp_path, monkeypatch):
    p = write_metrics(tmp_path, sample_rows(0, 2) + ["bad one"])
    registry = build(str(tmp_path))
    calls = []
    real_tail = sources.read_tail
    monkeypatch.setattr(sources, "read_tail",
                        lambda *a, **k: calls.append(1) or real_tail(*a, **k))
    for _ in range(3):
        m = scrape(registry)
    assert errors(m, "metrics.csv") == 1 and len(calls) == 1  # unchanged: not read again
    # The tail is read back to the newest good row: every bad row after it is seen again.
    append(p, "bad two\n")
    assert errors(scrape(registry), "metrics.csv") == 2
    append(p, "bad three\n")
    assert errors(scrape(registry), "metrics.csv") == 3
    # A new file (rotation) with bad rows at the same offsets as before: new bad rows.
    new = p.with_name("metrics.new")
    new.write_bytes(p.read_bytes())
    os.replace(new, p)
    assert errors(scrape(registry), "metrics.csv") == 6
    append(p, f"{ts(2.2)},1,1,1,1\n")
    m = scrape(registry)
    assert errors(m, "metrics.csv") == 6 and one(m, "lumen_phase_diff") == 1


def test_bad_tail_rows_counted_once_while_a_long_file_grows(tmp_path):
    # Past 64 KiB only the tail is read, from an offset that moves as the file grows: a bad
    # row is known by its place in the file, not in the tail.
    p = write_metrics(tmp_path, sample_rows(0, 400) + ["bad one"])
    assert p.stat().st_size > 65536
    registry = build(str(tmp_path))
    assert errors(scrape(registry), "metrics.csv") == 1
    append(p, "bad two\n")
    assert errors(scrape(registry), "metrics.csv") == 2
    append(p, "bad three\n")
    assert errors(scrape(registry), "metrics.csv") == 3


def test_one_row_under_the_header_is_the_latest_sample(tmp_path):
    write_metrics(tmp_path, [f"{ts(0)},0.5,1.5,2.5,3.5"])
    m = scrape(build(str(tmp_path)))
    assert [one(m, f"lumen_{s}") for s in ("phase_diff", "entropy_rate", "creative_band",
                                             "risk_band")] == [0.5, 1.5, 2.5, 3.5]
    assert errors(m, "metrics.csv") == 0


def test_bytes_not_utf8_in_the_header_and_rows_still_give_the_latest_sample(tmp_path):
    p = tmp_path / "logs" / "metrics.csv"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"ts,phase_diff,entropy_rate,creative_band,risk_band,note\xff\n"
                  + f"{ts(0)},0.5,1.5,2.5,3.5,".encode() + b"caf\xe9\n")
    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_risk_band") == 3.5 and errors(m, "metrics.csv") == 0


def test_no_sample_from_a_file_without_a_good_row(tmp_path):
    p = write_metrics(tmp_path, [])
    assert sources.read_tail(p, TimeParser(UTC)) is None
    p = write_metrics(tmp_path, ["bad one", "1,2,3,4,5"])
    bad: list[int] = []
    assert sources.read_tail(p, TimeParser(UTC), bad=bad) is None
    assert len(bad) == 2


def test_a_header_longer_than_a_line_may_be_gives_no_sample(tmp_path):
    p = write_metrics(tmp_path, sample_rows(0, 1), header=HEADER_M + ",note" + "x" * (1 << 20))
    assert sources.read_tail(p, TimeParser(UTC)) is None


def test_as_many_bad_tail_rows_as_the_memo_holds_are_each_counted_once(tmp_path):
    p = write_metrics(tmp_path, sample_rows(0, 1) + ["x"] * 10_000)
    registry = build(str(tmp_path))
    assert errors(scrape(registry), "metrics.csv") == 10_000
    append(p, "y\n")
    assert errors(scrape(registry), "metrics.csv") == 10_001


def test_more_bad_tail_rows_than_the_memo_holds(tmp_path):
    p = write_metrics(tmp_path, sample_rows(0, 1) + ["x"] * 10_001)
    registry = build(str(tmp_path))
    assert errors(scrape(registry), "metrics.csv") == 10_001
    append(p, "y\n")
    m = scrape(registry)  # the memo was cut to its newest offsets: still counting, no crash
    assert readable(m, "metrics.csv") == 1 and errors(m, "metrics.csv") > 10_001


# --- history and effects over time --------------------------------------------------------


def test_history_appended_events_are_each_counted(tmp_path):
    h = write_history(tmp_path, [event(0)])
    registry = build(str(tmp_path))
    assert one(scrape(registry), "lumen_rule_events_total") == 1
    append(h, json.dumps(event(10, rule="b")) + "\n" + json.dumps(event(20, rule="c")) + "\n")
    m = scrape(registry)
    assert one(m, "lumen_rule_events_total") == 3 and one(m, "lumen_rule_events_pending") == 3


def test_history_that_cannot_be_read_is_said_not_counted(tmp_path, capsys):
    (tmp_path / "controls" / HIST).mkdir(parents=True)
    m = scrape(build(str(tmp_path)))
    assert readable(m, HIST) == 0 and errors(m, HIST) == 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'controls' / HIST}: cannot read: [Errno 21] Is a directory" in err


def test_naive_history_times_are_read_in_the_configured_zone(tmp_path):
    write_history(tmp_path, [], raw_lines=[json.dumps(
        {"ts": "2025-10-23T04:10:00", "actor": "a", "rule": "r", "old": 1, "new": 2})])
    m = scrape(build(str(tmp_path), naive_tz="+00:00"))
    assert one(m, "lumen_rule_last_change_timestamp_seconds") == seconds("2025-10-23T04:10:00Z")


def test_effects_replaced_broken_and_removed(tmp_path, capsys, monkeypatch):
    write_root(tmp_path, [effect("2025-10-23T13:10:00+09:00", "r", 1.0)])
    registry = build(str(tmp_path))
    derived = []
    real = collector_mod.LumenCollector._derive
    monkeypatch.setattr(collector_mod.LumenCollector, "_derive",
                        lambda self: derived.append(1) or real(self))
    for _ in range(3):
        m = scrape(registry)
    assert one(m, "lumen_rule_effect_delta", rule="r", metric="phase_diff") == 1.0
    assert len(derived) == 1  # nothing changed: nothing rebuilt
    p = tmp_path / "logs" / "rules_effects.csv"
    p.write_text("not,the,header\n")
    m = scrape(registry)
    assert "lumen_rule_effect_delta" not in m and readable(m, "rules_effects.csv") == 0
    assert f"lumen-exporter: warning: {p}: cannot read: {p}:1: header" in (
        capsys.readouterr().err)
    assert one(m, "lumen_rule_events_pending") == 1
    write_root(tmp_path, [effect("2025-10-23T13:10:00+09:00", "r", 2.0)])
    m = scrape(registry)
    assert one(m, "lumen_rule_effect_delta", rule="r", metric="phase_diff") == 2.0
    assert readable(m, "rules_effects.csv") == 1
    p.unlink()
    m = scrape(registry)
    assert "lumen_rule_effect_delta" not in m and readable(m, "rules_effects.csv") == 0
    assert one(m, "lumen_rule_events_pending") == 1


# --- what the collector makes of odd rows --------------------------------------------------


def test_odd_effect_rows(tmp_path):
    bad_ts = effect("2025-10-23T13:00:00+09:00", "bad", 9.0)
    bad_ts["rule_ts"] = "not a time"
    no_delta = effect("2025-10-23T13:05:00+09:00", "blank", 1.0)
    no_delta["d_phase"] = ""  # a side without data
    no_delta["d_entropy"] = "nan"  # edited by hand
    first = effect("2025-10-23T13:10:00+09:00", "tie", 1.0)
    second = effect("2025-10-23T04:10:00+00:00", "tie", 2.0, new="3")  # the same instant
    write_root(tmp_path, [bad_ts, no_delta, first, second])
    m = scrape(build(str(tmp_path)))
    # a row whose time cannot be read is left out; the rows after it are not
    assert {lab["rule"] for lab, _ in m["lumen_rule_effect_timestamp_seconds"]} == {"blank", "tie"}
    assert ("metric", "phase_diff") not in {
        (k, v) for lab, _ in m["lumen_rule_effect_delta"] if lab["rule"] == "blank"
        for k, v in lab.items()}
    assert "entropy_rate" not in {lab["metric"] for lab, _ in m["lumen_rule_effect_delta"]
                                  if lab["rule"] == "blank"}
    # at one instant, the row written later is the later change
    assert one(m, "lumen_rule_effect_delta", rule="tie", metric="phase_diff") == 2.0
    assert one(m, "lumen_rule_last_phase_diff_delta", rule="tie") == 2.0
    labels = {lab["rule"]: lab for lab, _ in m["lumen_rule_change_timestamp_seconds"]}
    assert (labels["blank"]["d_phase"], labels["blank"]["d_entropy"]) == ("n/a", "n/a")


def test_last_effect_with_one_blank_delta_still_shows_the_others(tmp_path):
    row = effect("2025-10-23T13:10:00+09:00", "r", 1.0)
    row["d_phase"] = ""
    write_root(tmp_path, [row])
    m = scrape(build(str(tmp_path)))
    assert "lumen_rule_last_phase_diff_delta" not in m
    for name in ("entropy_rate", "creative_band", "risk_band"):
        assert one(m, f"lumen_rule_last_{name}_delta", rule="r") == 1.0


def test_no_recent_changes_family_when_asked_for_none(tmp_path):
    write_root(tmp_path, [effect("2025-10-23T13:10:00+09:00", "r", 1.0)])
    assert "lumen_rule_change_timestamp_seconds" not in scrape(build(str(tmp_path), recent=0))


def test_collect_duration_is_a_duration(tmp_path):
    d = one(scrape(build(str(tmp_path))), "lumen_exporter_collect_duration_seconds")
    assert 0 < d < 60


@pytest.mark.parametrize("columns", [HEADER[:19], HEADER])
def test_effects_written_by_the_tracker_are_seen(tmp_path, columns):
    write_metrics(tmp_path, sample_rows(-30, 31))
    write_history(tmp_path, [event(0)])
    (tmp_path / "logs" / "rules_effects.csv").write_text(",".join(columns) + "\n")
    track(tmp_path)
    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_rule_effect_delta", rule="creative_min", metric="phase_diff") == 31


def test_activation_up_to_its_size_limit_and_not_a_byte_more(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sources, "MAX_YAML_BYTES", 4096)
    p = tmp_path / "gateway_activation.yaml"
    text = "gateway:\n  status: locked\n"
    p.write_text(text + "#" * (4096 - len(text) - 1) + "\n")
    assert p.stat().st_size == 4096
    a = sources.Activation(p)
    a.refresh()
    assert (a.status, a.health.readable, a.health.errors) == (4, True, 0)
    p.write_text(text + "#" * (4096 - len(text)) + "\n")
    a.refresh()
    assert (a.status, a.health.readable, a.health.errors) == (None, False, 1)
    assert capsys.readouterr().err == (f"lumen-exporter: warning: {p}: cannot read: larger "
                                       "than 4 KiB; not an activation file\n")


@pytest.mark.parametrize("status", ["", "null", "[locked]", "4", "{a: 1}"])
def test_activation_without_a_known_state_is_unknown_and_counted(tmp_path, status):
    p = tmp_path / "gateway_activation.yaml"
    p.write_text(f"gateway:\n  status: {status}\n")
    a = sources.Activation(p)
    a.refresh()
    assert (a.status, a.health.readable, a.health.errors) == (0, True, 1)


def test_a_reader_failing_in_an_unforeseen_way_costs_its_file_not_the_scrape(
        tmp_path, monkeypatch, capsys):
    write_root(tmp_path, [effect("2025-10-23T13:10:00+09:00", "r", 1.0)])
    registry = build(str(tmp_path))
    assert readable(scrape(registry), "gateway_activation.yaml") == 0  # missing: no reason
    derived = []
    real = collector_mod.LumenCollector._derive
    monkeypatch.setattr(collector_mod.LumenCollector, "_derive",
                        lambda self: derived.append(1) or real(self))

    def broken(self):
        raise RuntimeError("a bug in a reader")

    monkeypatch.setattr(sources.LatestSample, "refresh", broken)
    m = scrape(registry)
    assert readable(m, "metrics.csv") == 0 and errors(m, "metrics.csv") == 1
    assert one(m, "lumen_rule_effect_delta", rule="r", metric="phase_diff") == 1.0
    assert len(derived) == 1  # taken as a change: the rest is built again from the files
    p = tmp_path / "logs" / "metrics.csv"
    assert capsys.readouterr().err == (
        f"lumen-exporter: warning: {p}: cannot read: a bug in a reader\n")
