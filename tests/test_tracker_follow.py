"""--follow: new events and samples as both files grow, rotation, bounded memory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

from tests.rootdata import append, effects, event, sample_rows, write_history, write_metrics
from tracker import metrics_reader as metrics_mod
from tracker import run as run_mod
from tracker.report import Reporter
from tracker.run import Tracker
from tracker.settings import resolve


def tracker(root, **kw):
    return Tracker(resolve(str(root), env={}, **kw), Reporter(io.StringIO()), keep_warm=True)


def rows_text(a, b, **kw):
    return "".join(r + "\n" for r in sample_rows(a, b, **kw))


def test_writes_each_event_as_soon_as_its_post_window_is_complete(tmp_path):
    m = write_metrics(tmp_path, sample_rows(-60, 0))
    h = write_history(tmp_path, [])
    t = tracker(tmp_path)
    assert t.step() == 0
    append(h, json.dumps(event(-10)) + "\n")
    assert t.step() == 0  # post window needs metrics up to +20 s
    append(m, rows_text(0.2, 19.8))
    assert t.step() == 0 and t.summary.pending == 1
    append(m, rows_text(20, 20))
    assert t.step() == 1
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "146" and row["n_post_phase"] == "146"
    append(h, json.dumps(event(25, rule="risk_max")) + "\n")
    append(m, rows_text(20.2, 55))
    assert t.step() == 1
    assert [r["rule"] for r in effects(tmp_path)] == ["creative_min", "risk_max"]


def test_a_poll_reads_only_what_was_appended(tmp_path, monkeypatch):
    m = write_metrics(tmp_path, sample_rows(-60, 0))
    write_history(tmp_path, [event(10)])
    t = tracker(tmp_path)
    t.step()
    parsed = []
    real = metrics_mod.MetricsReader._segment
    monkeypatch.setattr(metrics_mod.MetricsReader, "_segment",
                        lambda self, data, off: parsed.append(len(data)) or real(self, data, off))
    t.step()
    assert parsed == []
    append(m, rows_text(0.2, 1))
    t.step()
    assert parsed == [len(rows_text(0.2, 1))]


def test_memory_stays_bounded_over_a_long_stream(tmp_path):
    m = write_metrics(tmp_path, [])
    h = write_history(tmp_path, [])
    t = tracker(tmp_path)
    sizes = []
    for hour in range(6):
        base = hour * 3600
        append(m, rows_text(base + 0.2, base + 3600))
        append(h, json.dumps(event(base + 1800, rule=f"r{hour}")) + "\n")
        t.step()
        sizes.append(sum(len(s) for s in t.buffer.segments))
    assert len(effects(tmp_path)) == 6
    # lookback (300 s) + pre/guard + disorder margin (60 s) at 5 Hz, whatever the length read
    assert max(sizes) <= (300 + 31 + 60) * 5 + 10, sizes


def test_rotation_truncated_or_replaced_is_picked_up(tmp_path):
    m = write_metrics(tmp_path, sample_rows(-30, 0))
    write_history(tmp_path, [event(0)])
    t = tracker(tmp_path)
    t.step()
    write_metrics(tmp_path, sample_rows(0.2, 10))  # truncated and rewritten in place
    t.step()
    assert effects(tmp_path) == []
    new = tmp_path / "logs" / "metrics.new"
    new.write_text("ts,phase_diff,entropy_rate,creative_band,risk_band\n" + rows_text(10.2, 31))
    os.replace(new, m)  # replaced by rename: a new inode
    assert t.step() == 1
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "146" and row["n_post_phase"] == "146"


def test_late_event_older_than_the_buffer_is_read_back_from_the_file(tmp_path):
    m = write_metrics(tmp_path, sample_rows(0, 3000))
    h = write_history(tmp_path, [])
    t = tracker(tmp_path)
    t.step()
    assert min(s.first_us for s in t.buffer.segments) > t.buffer.max_us - 400 * 10**6
    append(h, json.dumps(event(100)) + "\n")  # logged 48 minutes late
    assert t.step() == 1
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "146" and row["n_post_phase"] == "146"
    append(m, rows_text(3000.2, 3001))
    append(h, json.dumps(event(2990, rule="now")) + "\n")
    assert t.step() == 0 and t.summary.pending == 1


def test_long_file_is_entered_by_bisect_with_the_same_results(tmp_path, monkeypatch):
    rows = sample_rows(0, 4000, value=lambda t: (t % 7, t % 3, 1, 2))
    events = [event(s, rule=f"r{s}") for s in (500, 2000, 3900)]
    for name in ("whole", "skip"):
        write_metrics(tmp_path / name, rows)
        write_history(tmp_path / name, events)
    Tracker(resolve(str(tmp_path / "whole"), env={}), Reporter(io.StringIO())).step()
    monkeypatch.setattr(run_mod, "SKIP_THRESHOLD_BYTES", 1000)
    t = Tracker(resolve(str(tmp_path / "skip"), env={}), Reporter(io.StringIO()))
    t.step()
    assert effects(tmp_path / "skip") == effects(tmp_path / "whole")
    assert len(effects(tmp_path / "whole")) == 3
    assert t.metrics.numbers.known[0] > 0  # it did not read from the first line


def test_long_file_without_events_is_entered_near_its_end(tmp_path, monkeypatch):
    # No event yet: what a late-logged event can still need is the newest lookback of the
    # file, so reading starts there; an event logged then gets the same effects as from a
    # reading of the whole file.
    rows = sample_rows(0, 4000, value=lambda t: (t % 7, t % 3, 1, 2))
    for name in ("whole", "skip"):
        write_metrics(tmp_path / name, rows)
        write_history(tmp_path / name, [])
    whole = tracker(tmp_path / "whole")
    whole.step()
    monkeypatch.setattr(run_mod, "SKIP_THRESHOLD_BYTES", 1000)
    offsets = []
    real = metrics_mod.MetricsReader._segment
    monkeypatch.setattr(metrics_mod.MetricsReader, "_segment",
                        lambda self, data, off: offsets.append(off) or real(self, data, off))
    skip = tracker(tmp_path / "skip")
    skip.step()
    size = (tmp_path / "skip" / "logs" / "metrics.csv").stat().st_size
    # lookback: pre 30 s + guard 1 s + 300 s, and a margin of 60 s: 391 s of 4000 s.
    assert size * 0.85 < offsets[0] < size * 0.95
    for name, t in (("whole", whole), ("skip", skip)):
        append(tmp_path / name / "controls" / "rules_history.jsonl",
               json.dumps(event(3900)) + "\n")
        assert t.step() == 1
    assert effects(tmp_path / "skip") == effects(tmp_path / "whole")


def test_long_file_whose_tail_holds_no_row_is_read_from_its_start(tmp_path, monkeypatch):
    write_metrics(tmp_path, sample_rows(0, 200), tail="junk\n" * 20_000)
    h = write_history(tmp_path, [])
    monkeypatch.setattr(run_mod, "SKIP_THRESHOLD_BYTES", 1000)
    t = tracker(tmp_path)
    assert t.step() == 0
    append(h, json.dumps(event(100)) + "\n")
    assert t.step() == 1
    assert effects(tmp_path)[0]["n_pre_phase"] == "146"


def test_follow_cli_runs_writes_and_touches_heartbeat(tmp_path):
    m = write_metrics(tmp_path, sample_rows(-30, 0))
    write_history(tmp_path, [event(0)])
    beat = tmp_path / "beat"
    p = subprocess.Popen([sys.executable, "-m", "tracker", "--root", str(tmp_path), "--follow",
                          "--poll", "0.05", "--heartbeat", str(beat)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not beat.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert beat.exists()
        append(m, rows_text(0.2, 31))
        while not effects(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(effects(tmp_path)) == 1
        assert p.poll() is None
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert "written 1, pending 0" in err
