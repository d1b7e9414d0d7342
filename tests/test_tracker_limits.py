"""Values exactly on a limit: settings on their bounds, exactly 50 samples on a side, an event
whose pre window starts just before what a following tracker still holds."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from tests.rootdata import (
    HEADER,
    append,
    effects,
    event,
    sample_rows,
    ts,
    write_history,
    write_metrics,
)
from tracker import cli
from tracker import run as run_mod
from tracker.effects import UNRELIABLE_BELOW
from tracker.report import Reporter
from tracker.run import Tracker, run_once
from tracker.settings import resolve

# --- settings on their limits: 0 <= guard < min(pre, post), pre > 0, post > 0 -------------


@pytest.mark.parametrize("pre, post, guard", [
    (30, 30, 0),  # guard 0: the sample at t0 is on both sides
    (30, 30, 29.999),
    (10, 30, 9.999),  # below the shorter window, pre
    (30, 10, 9.999),  # below the shorter window, post
    (0.001, 0.001, 0),
])
def test_settings_just_inside_their_limits_are_accepted(tmp_path, pre, post, guard):
    s = resolve(str(tmp_path), pre, post, guard, env={})
    assert (s.pre_s, s.post_s, s.guard_s) == (pre, post, guard)


# Words the message must hold: each limit has its own reason.
POSITIVE = "positive"
GUARD = "guard"


@pytest.mark.parametrize("pre, post, guard, reason", [
    (0, 30, 0, POSITIVE),
    (30, 0, 0, POSITIVE),
    (-1, 30, 0, POSITIVE),
    (30, -1, 0, POSITIVE),
    (math.nan, 30, 0, POSITIVE),
    (30, 30, 30, GUARD),  # guard equal to both windows
    (10, 30, 10, GUARD),  # guard equal to the shorter window, pre
    (30, 10, 10, GUARD),  # guard equal to the shorter window, post
    (30, 30, -0.001, GUARD),
    (30, 30, math.nan, GUARD),
])
def test_settings_on_or_past_their_limits_are_rejected(tmp_path, pre, post, guard, reason):
    with pytest.raises(ValueError) as e:
        resolve(str(tmp_path), pre, post, guard, env={})
    assert reason in str(e.value) and ({POSITIVE, GUARD} - {reason}).pop() not in str(e.value)


def test_cli_exit_2_for_a_guard_as_long_as_a_window(tmp_path, capsys):
    assert cli.main(["--root", str(tmp_path), "--pre", "10", "--guard", "10"]) == 2
    assert "guard" in capsys.readouterr().err
    assert cli.main(["--root", str(tmp_path), "--pre", "10", "--guard", "9.5"]) == 0


def test_environment_limits_and_flags_over_environment(tmp_path):
    env = {"LUMEN_EFFECT_PRE_S": "20", "LUMEN_EFFECT_POST_S": "25", "LUMEN_EFFECT_GUARD_S": "2",
           "LUMEN_ROOT": str(tmp_path), "LUMEN_NAIVE_TZ": "+00:00"}
    s = resolve(env=env)
    assert (s.root, s.pre_s, s.post_s, s.guard_s, s.naive_zone_name) == (
        tmp_path, 20, 25, 2, "+00:00")
    s = resolve(str(tmp_path / "f"), 5, 6, 0, "+01:00", env=env)
    assert (s.root, s.pre_s, s.post_s, s.guard_s, s.naive_zone_name) == (
        tmp_path / "f", 5, 6, 0, "+01:00")
    s = resolve(env={"LUMEN_EFFECT_PRE_S": " ", "LUMEN_EFFECT_GUARD_S": ""})
    assert (str(s.root), s.pre_s, s.post_s, s.guard_s, s.naive_zone_name) == (
        ".", 30, 30, 1, "+09:00")
    with pytest.raises(ValueError, match="guard"):
        resolve(env={**env, "LUMEN_EFFECT_GUARD_S": "20"})  # = pre from the environment
    with pytest.raises(ValueError, match=r"LUMEN_EFFECT_POST_S='abc' is not a number"):
        resolve(env={"LUMEN_EFFECT_POST_S": "abc"})


# --- exactly 50 samples on a side -----------------------------------------------------------


@pytest.mark.parametrize("side", ["pre", "post"])
@pytest.mark.parametrize("valid, unreliable", [(UNRELIABLE_BELOW, 0), (UNRELIABLE_BELOW - 1, 1)])
def test_unreliable_below_exactly_50_samples_on_a_side(tmp_path, side, valid, unreliable):
    # 146 samples a side; risk_band blank on all but `valid` of one side.
    def value(t):
        blank = (t < 0) == (side == "pre") and abs(t) > 1 + (valid - 1) / 5 + 0.1
        return (1.0, 2.0, 3.0, "" if blank else 4.0)

    write_metrics(tmp_path, sample_rows(-30, 30, value=value))
    write_history(tmp_path, [event(0)])
    summary = run_once(resolve(str(tmp_path), env={}), Reporter(io.StringIO()))
    (row,) = effects(tmp_path)
    assert row[f"n_{side}_risk"] == str(valid)
    assert row[f"n_{'post' if side == 'pre' else 'pre'}_risk"] == "146"
    assert summary.written == 1 and summary.unreliable == unreliable
    # README's verdicts: a side below 50 samples cannot tell; else equal means are no change.
    verdict = "inconclusive" if unreliable else "no_change"
    assert row["verdict"] == verdict
    assert summary.line().endswith(f"(unreliable {unreliable}, confounded 0); verdicts: "
                                   f"{verdict} 1")


# --- the first sample a late event needs is just older than what is kept ----------------------


def test_late_event_needing_rows_just_older_than_the_buffer(tmp_path):
    write_metrics(tmp_path, sample_rows(0, 3000))
    h = write_history(tmp_path, [])
    t = Tracker(resolve(str(tmp_path), env={}), Reporter(io.StringIO()), keep_warm=True)
    t.step()
    oldest_s = min(seg.first_us for seg in t.buffer.segments) / 1e6 - t.buffer.max_us / 1e6 + 3000
    t0 = math.ceil(oldest_s) + 10  # its pre window starts 20 s before the oldest row kept
    append(h, json.dumps(event(t0)) + "\n")
    assert t.step() == 1
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "146" and row["n_post_phase"] == "146"


def test_long_file_entered_by_bisect_with_a_pre_window_longer_than_the_margin(
        tmp_path, monkeypatch):
    # The bisect lands DISORDER_MARGIN (60 s) before the first sample the oldest pending
    # event needs; with a 45 s pre window, landing relative to t0 instead would lose rows.
    rows = sample_rows(0, 1000, value=lambda t: (t % 7, t % 3, 1, 2))
    events = [event(s, rule=f"r{s}") for s in (500, 900)]
    for name in ("whole", "skip"):
        write_metrics(tmp_path / name, rows)
        write_history(tmp_path / name, events)
    run_once(resolve(str(tmp_path / "whole"), pre=45, env={}), Reporter(io.StringIO()))
    monkeypatch.setattr(run_mod, "SKIP_THRESHOLD_BYTES", 1000)
    t = Tracker(resolve(str(tmp_path / "skip"), pre=45, env={}), Reporter(io.StringIO()))
    t.step()
    assert effects(tmp_path / "skip") == effects(tmp_path / "whole")
    assert [r["n_pre_phase"] for r in effects(tmp_path / "whole")] == ["221", "221"]
    assert t.metrics.numbers.known[0] > 0  # it did not read from the first line


# --- values at the ends of the float range -------------------------------------------------


def test_mean_of_finite_values_whose_sum_overflows_is_finite(tmp_path):
    def value(t):
        return (1.5e308 if t < 0 else 1e308, -1.5e308 if t < 0 else 1.0, 1.0, 1.0)

    write_metrics(tmp_path, sample_rows(-30, 30, value=value))
    write_history(tmp_path, [event(0)])
    run_once(resolve(str(tmp_path), env={}), Reporter(io.StringIO()))
    (row,) = effects(tmp_path)
    assert float(row["pre_phase"]) == pytest.approx(1.5e308)
    assert float(row["post_phase"]) == pytest.approx(1e308)
    assert float(row["d_phase"]) == pytest.approx(-0.5e308)
    assert float(row["pre_entropy"]) == pytest.approx(-1.5e308)


@pytest.mark.parametrize("pre, post, guard, text", [
    (10.5, 20.25, 0.5, ("10.5", "20.25", "0.5")),
    (30.0, 30, 1.0, ("30", "30", "1")),
])
def test_window_seconds_as_written(tmp_path, pre, post, guard, text):
    write_metrics(tmp_path, sample_rows(-30, 30))
    write_history(tmp_path, [event(0)])
    run_once(resolve(str(tmp_path), pre, post, guard, env={}), Reporter(io.StringIO()))
    (row,) = effects(tmp_path)
    assert (row["pre_s"], row["post_s"], row["guard_s"]) == text


# --- files longer than what is read of them -------------------------------------------------


def test_latest_sample_of_a_file_longer_than_the_tail_read(tmp_path):
    from exporter.cli import build
    from tests.test_exporter import one, scrape

    # ~140 KB, more than the 64 KB read; risk_band blank throughout, so every row read is
    # looked at, down to the first, which the 64 KB cut leaves partial
    write_metrics(tmp_path, sample_rows(0, 600, value=lambda t: (t, 1.0, 2.0, "")))
    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_phase_diff") == 600 and "lumen_risk_band" not in m
    # the cut row is not a bad row
    assert one(m, "lumen_input_parse_errors_total", file="metrics.csv") == 0
    assert one(m, "lumen_input_readable", file="metrics.csv") == 1



def _bisect_reads_like_a_whole_read(tmp_path, monkeypatch, write) -> list[dict[str, str]]:
    """The same root written twice: read once from its first line, once entered by bisect
    (a low skip threshold). Both give the same effects (returned)."""
    for name in ("whole", "skip"):
        write(tmp_path / name)
    run_once(resolve(str(tmp_path / "whole"), env={}), Reporter(io.StringIO()))
    monkeypatch.setattr(run_mod, "SKIP_THRESHOLD_BYTES", 1000)
    t = Tracker(resolve(str(tmp_path / "skip"), env={}), Reporter(io.StringIO()))
    t.step()
    assert effects(tmp_path / "skip") == effects(tmp_path / "whole")
    assert t.metrics.numbers.known[0] > 0  # it did not read from the first line
    return effects(tmp_path / "whole")


def test_long_file_entered_by_bisect_over_crlf_bad_and_non_utf8_lines(tmp_path, monkeypatch):
    # ts in the last column (so the line end must come off before it is read), CRLF line
    # ends, and runs of bad lines where the bisect lands: it must still skip ahead, and
    # find every row the effects need.
    def row(t):
        return f"{t % 7},{t % 3},1,2,{ts(t)}"

    lines = []
    for k in range(4000 * 5 + 1):
        lines.append(row(round(k / 5, 1)))
        if k % 97 == 0:
            lines += ["garbage", "1,2,3,4,not a time", "1,2,3,4,\xff\xfe"]
    history = [event(s, rule=f"r{s}") for s in (500, 2000, 3900)]

    def write(root: Path) -> None:
        write_metrics(root, lines, header="phase_diff,entropy_rate,creative_band,risk_band,ts",
                      newline="\r\n")
        write_history(root, history)

    rows = _bisect_reads_like_a_whole_read(tmp_path, monkeypatch, write)
    assert [r["n_pre_phase"] for r in rows] == ["146"] * 3


def test_long_file_entered_by_bisect_where_its_middle_is_all_bad_bytes(tmp_path, monkeypatch):
    # A bisect probe that meets only bad lines (here not even UTF-8) learns no time there:
    # it must look earlier, not fail, and still find every row the effects need.
    rows = sample_rows(0, 4000, value=lambda t: (t % 7, t % 3, 1, 2))
    half = len(rows) // 2
    junk = b"1,2,3,4,\xff\xfe\n" * 8000
    head = (HEADER + "\n" + "".join(r + "\n" for r in rows[:half])).encode()
    tail = "".join(r + "\n" for r in rows[half:]).encode()
    history = [event(s, rule=f"r{s}") for s in (500, 3900)]

    def write(root: Path) -> None:
        (root / "logs").mkdir(parents=True)
        (root / "logs" / "metrics.csv").write_bytes(head + junk + tail)
        write_history(root, history)

    rows = _bisect_reads_like_a_whole_read(tmp_path, monkeypatch, write)
    assert [r["n_pre_phase"] for r in rows] == ["146"] * 2


def test_a_bad_row_after_a_bisect_is_named_by_its_true_line_number(tmp_path, monkeypatch):
    monkeypatch.setattr(run_mod, "SKIP_THRESHOLD_BYTES", 1000)
    lines = sample_rows(0, 4000)
    lines[19_000] = lines[19_000].rsplit(",", 1)[0] + ",\xff"  # 3800 s, in r3800's pre window
    write_metrics(tmp_path, lines)
    write_history(tmp_path, [event(3830, rule="r3800")])
    out = io.StringIO()
    t = Tracker(resolve(str(tmp_path), env={}), Reporter(out))
    t.step()
    assert t.metrics.numbers.known[0] > 0  # it did not read from the first line
    # line 1 is the header: row k of the list is line k + 2
    assert out.getvalue() == (
        f"{tmp_path / 'logs' / 'metrics.csv'}:19002: risk_band 'ÿ' is not a number; "
        "left out of the means\n")


def test_the_exporter_reads_a_tail_with_bytes_not_utf8(tmp_path):
    from exporter.cli import build
    from tests.test_exporter import one, scrape

    p = write_metrics(tmp_path, sample_rows(0, 10))
    with open(p, "ab") as f:
        f.write(ts(10.2).encode() + b",1,2,\xff\xfe,4\n")
    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_phase_diff") == 1 and one(m, "lumen_risk_band") == 4
    assert one(m, "lumen_creative_band") == 2  # the newest finite one, from the row before
    assert one(m, "lumen_input_parse_errors_total", file="metrics.csv") == 0


def test_line_numbers_are_counted_from_the_nearest_known_place(tmp_path):
    from tracker.metrics_reader import LineNumbers

    p = tmp_path / "m.csv"
    p.write_bytes(b"head\n" + b"row\n" * 10)
    ln = LineNumbers(p)
    assert ln.at(9) == 2  # just after the second newline
    assert ln.at(5 + 4 * 7) == 8
    assert ln.at(13) == 3 and ln.known == (13, 3)  # behind the last place: from the start
    assert ln.at(0) == 0
