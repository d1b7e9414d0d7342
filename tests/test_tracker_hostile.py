"""Inputs real machines produce: the tracker says what is wrong and never dies of it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.rootdata import effects, event, sample_rows, write_history, write_metrics
from tracker import metrics_reader as metrics_mod
from tracker.report import Reporter
from tracker.run import Tracker, follow, run_once
from tracker.settings import resolve
from tracker.timeparse import TimeParser, parse_zone


def tracker_cli(root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracker", "--root", str(root)],
                          capture_output=True, text=True)


def good_root(root):
    write_metrics(root, sample_rows(-30, 31))
    write_history(root, [event(0)])
    return root


@pytest.mark.parametrize("make, words", [
    (lambda r: (r / "logs" / "metrics.csv").unlink() or (r / "logs" / "metrics.csv").mkdir(),
     "metrics.csv: cannot use: it is a directory"),
    (lambda r: (r / "controls" / "rules_history.jsonl").unlink()
     or (r / "controls" / "rules_history.jsonl").mkdir(),
     "rules_history.jsonl: cannot use: it is a directory"),
    (lambda r: (r / "logs" / "metrics.csv").unlink()
     or os.symlink(r / "logs" / "metrics.csv", r / "logs" / "metrics.csv"),
     "metrics.csv: cannot use: its symbolic links form a loop"),
    (lambda r: (r / "logs" / "rules_effects.csv").mkdir(),
     "rules_effects.csv: cannot use: it is a directory"),
])
def test_a_file_that_cannot_be_used_is_one_message_and_exit_1(tmp_path, make, words):
    make(good_root(tmp_path))
    p = tracker_cli(tmp_path)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert words in p.stderr and str(tmp_path) in p.stderr


def test_follow_keeps_running_and_retries_until_the_file_is_fixed(tmp_path):
    good_root(tmp_path)
    metrics = tmp_path / "logs" / "metrics.csv"
    saved = metrics.read_bytes()
    metrics.unlink()
    metrics.mkdir()
    log = io.StringIO()
    s = resolve(str(tmp_path), env={})
    stop = threading.Event()
    t = threading.Thread(target=follow, args=(s, Reporter(log), 0.05), kwargs={"stop": stop},
                         daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        assert t.is_alive() and effects(tmp_path) == []
        assert log.getvalue().count("cannot use: it is a directory") == 1  # said once
        metrics.rmdir()
        metrics.write_bytes(saved)
        for _ in range(100):
            if effects(tmp_path):
                break
            time.sleep(0.05)
        assert len(effects(tmp_path)) == 1
    finally:
        # A follow left running would sleep through later tests' patched clocks.
        stop.set()
        t.join(5)
    assert not t.is_alive()


def test_a_line_without_end_costs_bounded_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics_mod, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(metrics_mod, "CHUNK_BYTES", 256)
    rows = sample_rows(-30, 31)
    p = write_metrics(tmp_path, rows[:100], tail="7" * 5000)  # a writer gone wrong
    with open(p, "ab") as f:
        f.write(b"\n" + "\n".join(rows[100:]).encode() + b"\n")
    write_history(tmp_path, [event(0)])
    log = io.StringIO()
    run_once(resolve(str(tmp_path), env={}), Reporter(log))
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "146" and row["n_post_phase"] == "146"  # no row lost
    assert f"metrics.csv:{100 + 2}: line longer than" in log.getvalue()
    # What the reader holds at once: a chunk and at most one line's worth of carry.
    reader = metrics_mod.MetricsReader(p, TimeParser(parse_zone("+09:00")),
                                       Reporter(io.StringIO()))
    held = []
    real = reader._segment
    reader._segment = lambda data, off: held.append(len(data)) or real(data, off)
    list(reader.chunks())
    assert max(held) <= 1000 + 256


def test_dirty_values_stay_on_the_fast_path(tmp_path, monkeypatch):
    from tracker import segments

    rows = sample_rows(-30, 31)
    for k, junk in ((3, ""), (10, "nan"), (20, "inf"), (30, "ERR"), (40, " "), (50, "-Infinity")):
        fields = rows[k].split(",")
        fields[1 + k % 4] = junk
        rows[k] = ",".join(fields)
    rows[60] = rows[60].rsplit(",", 1)[0] + ","  # a blank last field
    write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)])

    def slow(*_):
        raise AssertionError("row by row")

    monkeypatch.setattr(segments.FixedSegment, "_values_slowly", slow)
    monkeypatch.setattr(segments, "parse_rows", slow)
    log = io.StringIO()
    run_once(resolve(str(tmp_path), env={}), Reporter(log))
    (row,) = effects(tmp_path)
    n = [int(row[f"n_pre_{m}"]) for m in ("phase", "entropy", "creative", "risk")]
    assert sum(n) == 4 * 146 - 7 and "'ERR' is not a number" in log.getvalue()


def test_a_bad_line_costs_the_slow_path_for_itself_only(tmp_path, monkeypatch):
    from tracker import segments

    rows = sample_rows(-30, 31)
    rows[100] = "\x00" * 30 + rows[100]  # a power loss left NULs before a row
    rows[200] = rows[150]  # a line out of order
    write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)])
    slow = []
    real = segments.parse_rows
    monkeypatch.setattr(segments, "parse_rows",
                        lambda lines, *a: slow.extend(lines) or real(lines, *a))
    run_once(resolve(str(tmp_path), env={}), Reporter(io.StringIO()))
    assert len(slow) == 1  # the NUL line; the repeat of an earlier row is dropped unparsed
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "145" and row["n_post_phase"] == "145"  # each lost one row


def test_a_dangling_link_and_no_permission_name_the_fix(tmp_path):
    import errno

    from tracker.fileerrors import unusable

    good_root(tmp_path)
    metrics = tmp_path / "logs" / "metrics.csv"
    metrics.unlink()
    os.symlink(tmp_path / "gone.csv", metrics)
    p = tracker_cli(tmp_path)
    assert p.returncode == 0  # like a missing file: the gateway may write it yet
    assert "which does not exist; fix the link" in p.stderr and "gone.csv" in p.stderr
    # Root reads anything, so the permission case is checked on the message alone.
    why = unusable(PermissionError(errno.EACCES, "Permission denied", str(metrics)))
    assert why.startswith(f"{metrics}: cannot use: permission denied; give this user read")


def test_window_values_come_in_time_order_around_bad_lines(tmp_path):
    from datetime import UTC

    from tests.rootdata import ts
    from tracker.segments import SampleBuffer

    rows = sample_rows(-30, 31, value=lambda t: (t, t, t, t))
    # Samples a writer logged late, counted at their own time: one in this layout, one in
    # another (UTC), both well after their place.
    rows.insert(60, ",".join([ts(-25.1), "-25.1", "-25.1", "-25.1", "-25.1"]))
    rows.insert(80, ",".join([ts(-20.1, tz=UTC), "-20.1", "-20.1", "-20.1", "-20.1"]))
    p = write_metrics(tmp_path, rows)
    reader = metrics_mod.MetricsReader(p, TimeParser(parse_zone("+09:00")),
                                       Reporter(io.StringIO()))
    buf = SampleBuffer()
    for seg in reader.chunks():
        buf.add(seg)
    assert len(buf.segments) > 1  # the bad lines were cut out of the fast runs
    t0 = reader.tp.parse(ts(0))
    values = buf.window(t0 - 30_000_000, t0 - 1_000_000)[0]
    values = values.tolist()
    assert values == sorted(values) and len(values) == 146 + 2


@pytest.mark.parametrize("at_block_start", [False, True])
def test_after_a_line_without_end_the_next_poll_reads_on_from_the_right_place(
        tmp_path, monkeypatch, at_block_start):
    monkeypatch.setattr(metrics_mod, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(metrics_mod, "CHUNK_BYTES", 256)
    rows = sample_rows(-30, 31)
    long = 5000
    if at_block_start:  # its newline the first byte of a block read
        long += -(sum(len(r) + 1 for r in rows[:100]) + long) % 256  # blocks follow the header
    p = write_metrics(tmp_path, rows[:100], tail="7" * long)
    with open(p, "ab") as f:
        f.write(b"\n" + "\n".join(rows[100:200]).encode() + b"\n")
    write_history(tmp_path, [event(0)])
    log = io.StringIO()
    t = Tracker(resolve(str(tmp_path), env={}), Reporter(log), keep_warm=True)
    t.step()
    with open(p, "ab") as f:
        f.write(("\n".join(rows[200:]) + "\nbad\n").encode())
    assert t.step() == 1
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "146" and row["n_post_phase"] == "146"
    said = [line for line in log.getvalue().splitlines() if "metrics.csv:" in line]
    assert len(said) == 2, said
    assert f"metrics.csv:{100 + 2}: line longer than" in said[0]
    assert f"metrics.csv:{len(rows) + 3}: " in said[1]


def test_a_line_longer_than_a_mebibyte_is_said_in_mebibytes(tmp_path):
    p = write_metrics(tmp_path, sample_rows(-30, 0))
    write_history(tmp_path, [])
    log = io.StringIO()
    t = Tracker(resolve(str(tmp_path), env={}), Reporter(log), keep_warm=True)
    t.step()
    with open(p, "ab") as f:
        f.write(b"7" * ((1 << 20) + 10))  # still being written, and already too long
    t.step()
    assert f"metrics.csv:{2 + 150 + 1}: line longer than 1 MiB; skipped" in log.getvalue()
