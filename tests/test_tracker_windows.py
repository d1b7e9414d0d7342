"""The window rules of SPEC, to the sample."""

from __future__ import annotations

import io
import math
from datetime import UTC

import pytest

from tests.rootdata import effects, event, sample_rows, ts, write_history, write_metrics
from tracker.report import Reporter
from tracker.run import run_once
from tracker.settings import resolve


def run(root, **kw):
    out = io.StringIO()
    s = resolve(str(root), env={}, **kw)
    summary = run_once(s, Reporter(out))
    return summary, out.getvalue()


def test_window_bounds_are_inclusive_to_the_sample(tmp_path):
    # One sample exactly on each bound, one just outside each; each carries its own value.
    at = {-30.0: 1, -1.0: 2, 1.0: 4, 30.0: 8, -30.001: 100, -0.999: 100, 0.999: 100,
          30.001: 100, 0.0: 100}
    rows = [f"{ts(t)},{v},0,0,0" for t, v in sorted(at.items())]
    rows.append(f"{ts(31)},100,0,0,0")
    write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)])
    summary, _ = run(tmp_path)
    (row,) = effects(tmp_path)
    assert summary.written == 1
    assert float(row["pre_phase"]) == 1.5 and row["n_pre_phase"] == "2"
    assert float(row["post_phase"]) == 6.0 and row["n_post_phase"] == "2"
    assert float(row["d_phase"]) == 4.5


@pytest.mark.parametrize("bad", ["", "nan", "NaN", "inf", "-inf", "abc", " "])
def test_non_finite_and_non_numeric_values_are_left_out_not_zero(tmp_path, bad):
    rows = [f"{ts(-10)},2,1,1,1", f"{ts(-5)},{bad},1,1,1", f"{ts(5)},4,1,1,1",
            f"{ts(6)},{bad},1,1,1", f"{ts(30)},4,1,1,1"]
    write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)])
    run(tmp_path)
    (row,) = effects(tmp_path)
    assert float(row["pre_phase"]) == 2.0 and row["n_pre_phase"] == "1"
    assert float(row["post_phase"]) == 4.0 and row["n_post_phase"] == "2"
    assert row["n_pre_risk"] == "2"


def test_empty_window_gives_empty_mean_and_delta(tmp_path):
    write_metrics(tmp_path, sample_rows(1, 30))  # nothing before the change
    write_history(tmp_path, [event(0)])
    run(tmp_path)
    (row,) = effects(tmp_path)
    assert row["pre_phase"] == "" and row["d_phase"] == "" and row["n_pre_phase"] == "0"
    assert row["post_phase"] != "" and row["n_post_phase"] == "146"


def test_means_match_a_direct_computation(tmp_path):
    write_metrics(tmp_path, sample_rows(-40, 40, value=lambda t: (t, t * t, -t, 1)))
    write_history(tmp_path, [event(0)])
    run(tmp_path)
    (row,) = effects(tmp_path)
    pre = [-30 + k / 5 for k in range(146)]
    post = [1 + k / 5 for k in range(146)]
    assert math.isclose(float(row["pre_entropy"]), math.fsum(t * t for t in pre) / 146)
    assert math.isclose(float(row["d_creative"]), -(sum(post) - sum(pre)) / 146)
    assert row["d_risk"] == "0.0"


def test_same_ts_two_rules_are_two_events_and_duplicate_line_is_one(tmp_path):
    write_metrics(tmp_path, sample_rows(-30, 31))
    a, b = event(0, rule="creative_min"), event(0, rule="risk_max", old=0.5, new=0.4)
    write_history(tmp_path, [a, b, a])
    summary, _ = run(tmp_path)
    rows = effects(tmp_path)
    assert [r["rule"] for r in rows] == ["creative_min", "risk_max"]
    assert summary.written == 2
    assert all(r["confounded"] == "1" for r in rows)  # changed together: can't be separated


def test_rerun_adds_no_row(tmp_path):
    write_metrics(tmp_path, sample_rows(-30, 31))
    write_history(tmp_path, [event(0), event(0, rule="risk_max")])
    run(tmp_path)
    first = (tmp_path / "logs" / "rules_effects.csv").read_bytes()
    summary, _ = run(tmp_path)
    assert summary.written == 0
    assert (tmp_path / "logs" / "rules_effects.csv").read_bytes() == first


def test_event_is_pending_until_post_window_is_complete(tmp_path):
    m = write_metrics(tmp_path, sample_rows(-30, 29.8))
    write_history(tmp_path, [event(0)])
    summary, _ = run(tmp_path)
    assert summary.written == 0 and summary.pending == 1
    assert effects(tmp_path) == []
    with open(m, "a") as f:
        f.write(f"{ts(30)},1,1,1,1\n")
    summary, _ = run(tmp_path)
    assert summary.written == 1 and summary.pending == 0
    (row,) = effects(tmp_path)
    assert row["n_post_phase"] == "146"


def test_counts_guard_and_unreliable_columns(tmp_path):
    write_metrics(tmp_path, sample_rows(-5, 30))  # 5 s before: 21 samples with guard 1
    write_history(tmp_path, [event(0)])
    summary, _ = run(tmp_path, guard=1.0)
    (row,) = effects(tmp_path)
    assert row["guard_s"] == "1" and row["pre_s"] == "30" and row["post_s"] == "30"
    assert row["n_pre_phase"] == "21"
    assert summary.unreliable == 1


def test_confounded_only_when_windows_overlap(tmp_path):
    write_metrics(tmp_path, sample_rows(-40, 400))
    # 50's pre window holds 0's still-settling post window: 50 is confounded, 0 is not
    # (50 comes after 0's post window ended). 200 is alone. 320 falls in 300's post window
    # and 300 in 320's pre window: both.
    write_history(tmp_path, [event(t, rule=f"r{t}") for t in (0, 50, 200, 300, 320)])
    run(tmp_path)
    got = {r["rule"]: r["confounded"] for r in effects(tmp_path)}
    assert got == {"r0": "0", "r50": "1", "r200": "0", "r300": "1", "r320": "1"}


def test_offsets_compare_as_instants(tmp_path):

    write_metrics(tmp_path, sample_rows(-30, 31, value=lambda t: (1 if t < 0 else 3, 0, 0, 0)))
    utc_event = event(0)
    utc_event["ts"] = ts(0, tz=UTC, ms=False)  # 04:10:00+00:00 == 13:10:00+09:00
    write_history(tmp_path, [utc_event])
    run(tmp_path)
    (row,) = effects(tmp_path)
    assert row["rule_ts"] == utc_event["ts"]
    assert row["d_phase"] == "2.0"


def test_naive_ts_read_in_configured_zone_and_logged_once(tmp_path):
    write_metrics(tmp_path, sample_rows(-30, 31, value=lambda t: (1 if t < 0 else 3, 0, 0, 0)))
    naive = event(0)
    naive["ts"] = "2025-10-23T13:10:00"  # KST wall time without an offset
    write_history(tmp_path, [naive, dict(naive, rule="other")])
    _, log = run(tmp_path)
    rows = effects(tmp_path)
    assert [r["d_phase"] for r in rows] == ["2.0", "2.0"]
    assert log.count("without an offset are read as +09:00") == 1

    other = tmp_path / "utc"
    write_metrics(other, sample_rows(-30, 31))
    write_history(other, [naive])
    run(other, naive_zone="UTC")  # 13:10 UTC is 22:10 KST: far past the metrics
    assert effects(other) == []


def test_column_order_free_and_extra_columns(tmp_path):
    rows = [f"x{k},{r.split(',')[2]},{r.split(',')[1]},{r.split(',')[4]},{r.split(',')[0]},"
            f"{r.split(',')[3]}" for k, r in enumerate(sample_rows(-30, 31))]
    write_metrics(tmp_path, rows, header="extra,entropy_rate,phase_diff,risk_band,ts,creative_band")
    write_history(tmp_path, [event(0)])
    run(tmp_path)
    same = tmp_path / "plain"
    write_metrics(same, sample_rows(-30, 31))
    write_history(same, [event(0)])
    run(same)
    assert effects(tmp_path) == effects(same)
