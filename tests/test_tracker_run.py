"""tracker.run's bookkeeping: what --follow keeps, when it reads a file again, what it counts."""

from __future__ import annotations

import io
import json

import pytest

from tests.rootdata import T0, append, effects, event, sample_rows, write_history, write_metrics
from tracker import run as run_mod
from tracker.effects import HISTORY_WINDOWS
from tracker.report import Reporter
from tracker.run import Summary, Tracker, follow, run_once
from tracker.settings import resolve

T0_US = round(T0.timestamp() * 1_000_000)


def seconds(us: int) -> float:
    return (us - T0_US) / 1e6


def test_follow_keeps_exactly_the_lookback_of_rows(tmp_path):
    write_metrics(tmp_path, sample_rows(0, 3000))
    write_history(tmp_path, [])
    t = Tracker(resolve(str(tmp_path), env={}), Reporter(io.StringIO()), keep_warm=True)
    t.step()
    # PRE + GUARD + 300 s of lookback, then 60 s for rows a little out of order
    assert [seconds(s.first_us) for s in t.buffer.segments] == [3000 - 331 - 60]
    assert seconds(t.buffer.max_us) == 3000


def test_one_pass_without_events_reads_no_rows(tmp_path):
    write_metrics(tmp_path, sample_rows(0, 100))
    write_history(tmp_path, [])
    t = Tracker(resolve(str(tmp_path), env={}), Reporter(io.StringIO()))
    t.step()
    assert t.buffer.max_us is None


class Stop(Exception):
    pass


def test_follow_polls_says_what_it_wrote_and_touches_the_heartbeat(tmp_path, monkeypatch):
    write_metrics(tmp_path, sample_rows(-40, 40))
    h = write_history(tmp_path, [event(0)])
    heartbeat = tmp_path / "beat"
    out = io.StringIO()
    naps: list[float] = []
    made: list[Tracker] = []

    def sleep(s: float) -> None:
        naps.append(s)
        if len(naps) == 1:
            append(h, json.dumps(event(5, rule="b")) + "\n")
        if len(naps) == 3:
            raise Stop

    real = run_mod.Tracker
    monkeypatch.setattr(run_mod, "Tracker",
                        lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    monkeypatch.setattr(run_mod.time, "sleep", sleep)
    with pytest.raises(Stop):
        follow(resolve(str(tmp_path), env={}), Reporter(out), heartbeat=heartbeat)
    assert naps == [1.0, 1.0, 1.0] and heartbeat.exists()
    lines = out.getvalue().splitlines()
    assert lines == [
        "written 1, pending 0, skipped lines 0 (unreliable 0, confounded 0); "
        "verdicts: inconclusive 1",
        "written 2, pending 0, skipped lines 0 (unreliable 0, confounded 1); "
        "verdicts: inconclusive 2"]
    assert [r["rule"] for r in effects(tmp_path)] == ["creative_min", "b"]
    assert made[0].keep_warm is True and made[0].buffer.max_us is not None


def test_duplicates_do_not_hide_the_next_event_nor_confound(tmp_path):
    write_metrics(tmp_path, sample_rows(-100, 100))
    write_history(tmp_path, [event(-60), event(-60), event(-60, rule="same_ts"), event(60)])
    summary = run_once(resolve(str(tmp_path), env={}), Reporter(io.StringIO()))
    rows = {(r["rule_ts"][-14:-6], r["rule"]): r for r in effects(tmp_path)}
    assert summary.written == 3 == len(rows)
    # the two changes at -60 s confound each other; the one at +60 s is 120 s on: clean
    assert [r["confounded"] for r in effects(tmp_path)] == ["1", "1", "0"]
    assert summary.confounded == 2


def test_an_event_not_late_does_not_make_the_file_read_again(tmp_path, monkeypatch):
    m = write_metrics(tmp_path, sample_rows(0, 3000))
    h = write_history(tmp_path, [])
    t = Tracker(resolve(str(tmp_path), env={}), Reporter(io.StringIO()), keep_warm=True)
    t.step()
    starts = []
    real = Tracker._start_reading
    monkeypatch.setattr(Tracker, "_start_reading", lambda self: starts.append(1) or real(self))
    oldest = seconds(min(s.first_us for s in t.buffer.segments))
    # An event reads its pre window and HISTORY_WINDOWS more of history before it.
    reach = 30 * (1 + HISTORY_WINDOWS)
    # needs rows from exactly the oldest one kept: all there, nothing to read again
    append(h, json.dumps(event(oldest + reach)) + "\n")
    append(m, "".join(r + "\n" for r in sample_rows(3000.2, 3001)))
    assert t.step() == 1 and starts == []
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "146"
    late = event(oldest + reach - 0.2, rule="late")  # needs one row older than kept: late
    append(h, json.dumps(late) + "\n")
    assert t.step() == 1 and starts == [1]


def test_the_zone_for_naive_times_is_said_once(tmp_path):
    rows = [r.replace("+09:00", "") for r in sample_rows(-40, 40)]
    m = write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)])
    out = io.StringIO()
    t = Tracker(resolve(str(tmp_path), env={}), Reporter(out), keep_warm=True)
    t.step()
    append(m, "".join(r.replace("+09:00", "") + "\n" for r in sample_rows(40.2, 41)))
    t.step()
    assert out.getvalue() == ("timestamps without an offset are read as +09:00 "
                              "(set --naive-tz or LUMEN_NAIVE_TZ to change)\n")


def test_the_summary_line_counts_each_verdict_and_leaves_out_those_never_given():


    s = Summary(written=3, pending=1, bad_lines=2, unreliable=1, confounded=0,
                verdicts={"warning": 1, "good": 2, "no_data": 0})
    assert s.line() == ("written 3, pending 1, skipped lines 2 (unreliable 1, confounded 0); "
                        "verdicts: warning 1, good 2")  # in the order of VERDICTS
    assert Summary().line() == (
        "written 0, pending 0, skipped lines 0 (unreliable 0, confounded 0)")
