"""Benchmark: the tracker side by side with the naive method and pandas.

    python3 bench/run.py [--data DIR] [--skip-naive]

Prints batch times on a day (432,000 rows at 5 Hz, 1,000 rule changes), clean and as a real
gateway writes it (blank fields, nan/inf/ERR, a column blank for 40 s), for (a) the naive
method of the original script, (b) pandas, (c) this tracker; then, on a month
(13,000,000 rows, ~1 GB), the tracker's one-shot pass and, in --follow mode, the time and
peak RSS to finalize one new event at the end of the file. Data is generated once into
--data (default bench/data) and reused.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines import naive, pandas_masks, pandas_way  # noqa: E402
from bench.gen import START, make_day, make_dirty_day, write_history, write_metrics  # noqa: E402

MONTH_ROWS = 13_000_000


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def tracker_once(root: Path) -> None:
    from tracker.report import Reporter
    from tracker.run import run_once
    from tracker.settings import resolve

    (root / "logs" / "rules_effects.csv").unlink(missing_ok=True)
    summary = run_once(resolve(str(root), env={}), Reporter(io.StringIO()))
    assert summary.written > 0, summary


def check_same(root: Path, ref: list[dict]) -> float:
    """Largest |Δ| difference between the tracker's rows and a baseline's."""
    import csv

    with open(root / "logs" / "rules_effects.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(ref), (len(rows), len(ref))
    worst = 0.0
    for row, r in zip(rows, ref):
        for short, m in zip(("phase", "entropy", "creative", "risk"),
                            ("phase_diff", "entropy_rate", "creative_band", "risk_band")):
            mine, theirs = row[f"d_{short}"], r[m]
            if mine == "" or theirs is None or theirs != theirs:  # a side with no sample
                assert mine == "" and (theirs is None or theirs != theirs), (row, r)
                continue
            worst = max(worst, abs(float(mine) - float(theirs)))
    return worst


def make_month(root: Path) -> None:
    """13M rows; one rule change an hour, the last in the final hour."""
    if (root / "logs" / "metrics.csv").exists():
        return
    write_metrics(root / "logs" / "metrics.csv", MONTH_ROWS)
    hours = int(MONTH_ROWS / 5 // 3600)
    write_history(root / "controls" / "rules_history.jsonl",
                  [h * 3600 + 1800 for h in range(hours)])


# Peak RSS is VmHWM: ru_maxrss would carry over the parent's peak across fork and exec.
PEAK_RSS = "int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"

FOLLOW_CHILD = r"""
import io, json, sys, time
from tracker.report import Reporter
from tracker.run import Tracker
from tracker.settings import resolve
root, new_event, rows = sys.argv[1], sys.argv[2], sys.argv[3]
t = Tracker(resolve(root, env={}), Reporter(io.StringIO()), keep_warm=True)
t0 = time.perf_counter(); t.step(); start = time.perf_counter() - t0
rss_start = PEAK_RSS
with open(root + "/controls/rules_history.jsonl", "a") as f:
    f.write(new_event)
t0 = time.perf_counter(); assert t.step() == 0; seen = time.perf_counter() - t0
with open(root + "/logs/metrics.csv", "a") as f:
    f.write(rows)
t0 = time.perf_counter(); n = t.step(); final = time.perf_counter() - t0
assert n == 1, n
print(json.dumps({"start": start, "seen": seen, "final": final, "rss_start_kb": rss_start,
                  "peak_rss_kb": PEAK_RSS,
                  "buffered_rows": sum(len(s) for s in t.buffer.segments)}))
""".replace("PEAK_RSS", PEAK_RSS)


def follow_month(root: Path) -> dict:
    """Catch up on the month, then one new event at its end, finalized by new rows."""
    metrics = root / "logs" / "metrics.csv"
    history = root / "controls" / "rules_history.jsonl"
    # Start from the month as generated: all hourly effects written, no event pending.
    base_hist = [line for line in history.read_text().splitlines() if '"bench"' in line]
    history.write_text("".join(line + "\n" for line in base_hist))
    with open(metrics, "rb+") as f:
        f.truncate(_month_size(metrics))
    last_s = (MONTH_ROWS - 1) / 5
    new = {"ts": (START + timedelta(seconds=last_s - 10)).isoformat(), "actor": "Sena",
           "rule": "risk_max", "old": 0.4, "new": 0.35, "note": "new"}
    rows = []
    for k in range(1, 21 * 5):  # 21 s more at 5 Hz: past t0 + 30 s
        t = START + timedelta(seconds=last_s + k / 5)
        rows.append(f"{t.isoformat(timespec='milliseconds')},0.5,0.5,0.3,0.2\n")
    out = subprocess.run([sys.executable, "-c", FOLLOW_CHILD, str(root), json.dumps(new) + "\n",
                          "".join(rows)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout)


def _month_size(metrics: Path) -> int:
    """The generated size, so repeated runs undo the rows a follow run appended."""
    marker = metrics.with_suffix(".size")
    if not marker.exists():
        marker.write_text(str(metrics.stat().st_size))
    return int(marker.read_text())


ONCE_CHILD = r"""
import io, json, sys, time
from tracker.report import Reporter
from tracker.run import run_once
from tracker.settings import resolve
t0 = time.perf_counter()
s = run_once(resolve(sys.argv[1], env={}), Reporter(io.StringIO()))
print(json.dumps({"time": time.perf_counter() - t0, "written": s.written,
                  "peak_rss_kb": PEAK_RSS}))
""".replace("PEAK_RSS", PEAK_RSS)


def batch(label: str, day: Path, skip_naive: bool) -> None:
    print(f"== batch, one day ({label}): 432,000 rows, 1,000 rule changes ==")
    t_c = timed(lambda: tracker_once(day), repeat=5)
    print(f"(c) tracker            {t_c:8.3f} s")
    try:
        for name, fn in (("(b) pandas, masks     ", pandas_masks),
                         ("(b') pandas, sorted   ", pandas_way)):
            ref: list[dict] = []
            t_b = timed(lambda fn=fn, ref=ref: ref.__setitem__(slice(None), fn(day)), repeat=3)
            print(f"{name}{t_b:8.3f} s   tracker is {t_b / t_c:6.2f}x faster"
                  f"   (max |Δ| difference {check_same(day, ref):.1e})")
    except ImportError:
        print("(b) pandas            not installed (pip install pandas)")
    if not skip_naive:
        ref = []
        t_a = timed(lambda: ref.__setitem__(slice(None), naive(day)))
        print(f"(a) naive              {t_a:8.3f} s   tracker is {t_a / t_c:6.1f}x faster"
              f"   (max |Δ| difference {check_same(day, ref):.1e})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    ap.add_argument("--skip-naive", action="store_true", help="the naive method takes minutes")
    ap.add_argument("--skip-month", action="store_true")
    args = ap.parse_args()
    days = (("clean", args.data / "day", make_day),
            ("dirty: 0.3% blank fields, nan/inf/ERR, a column blank for 40 s",
             args.data / "dirty", make_dirty_day))
    for label, day, make in days:
        if not (day / "logs" / "metrics.csv").exists():
            make(day)
        batch(label, day, args.skip_naive)

    if args.skip_month:
        return
    month = args.data / "month"
    make_month(month)
    size = _month_size(month / "logs" / "metrics.csv")
    print(f"== month: {MONTH_ROWS:,} rows ({size / 2**30:.2f} GiB) ==")
    (month / "logs" / "rules_effects.csv").unlink(missing_ok=True)
    with open(month / "logs" / "metrics.csv", "rb+") as f:
        f.truncate(size)
    once = json.loads(subprocess.run(
        [sys.executable, "-c", ONCE_CHILD, str(month)], capture_output=True, text=True,
        check=True, cwd=Path(__file__).resolve().parent.parent).stdout)
    print(f"one-shot over the month: {once['written']} effects in {once['time']:.2f} s, "
          f"peak RSS {once['peak_rss_kb'] / 1024:.0f} MB")
    f = follow_month(month)
    print(f"--follow start-up on the month (bisect to the tail): {f['start'] * 1000:.1f} ms")
    print(f"--follow poll that sees the new event:               {f['seen'] * 1000:.1f} ms")
    print(f"--follow poll that finalizes it (new rows read):     {f['final'] * 1000:.1f} ms")
    print(f"--follow peak RSS: {f['peak_rss_kb'] / 1024:.0f} MB "
          f"(rows kept in memory: {f['buffered_rows']})")


if __name__ == "__main__":
    main()
