"""Synthetic data roots for the benchmarks: a 5 Hz metrics.csv and a rules history."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

KST = timezone(timedelta(hours=9))
START = datetime(2025, 10, 23, 0, 0, 0, tzinfo=KST)
HEADER = "ts,phase_diff,entropy_rate,creative_band,risk_band\n"


def _ts(start: datetime, ms: int) -> str:
    return (start + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")


def write_metrics(path: Path, rows: int, start: datetime = START, seed: int = 1) -> None:
    """Write `rows` samples at 5 Hz; the ts string is built per second to keep generation quick."""
    rnd = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        buf: list[str] = []
        base_s = None
        for i in range(rows):
            sec, frac = divmod(i, 5)
            if frac == 0:
                base_s = (start + timedelta(seconds=sec)).isoformat()  # ...T13:10:00+09:00
                head, off = base_s[:19], base_s[19:]
            p = 0.5 + 0.2 * math.sin(i / 3000.0) + rnd.random() * 0.05
            buf.append(
                f"{head}.{frac * 200:03d}{off},{p:.5f},{rnd.random():.5f},"
                f"{0.3 + rnd.random() * 0.1:.5f},{0.2 + rnd.random() * 0.1:.5f}\n"
            )
            if len(buf) >= 50_000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))
    del base_s


def write_history(path: Path, times_s: list[float], start: datetime = START, seed: int = 2) -> None:
    rnd = random.Random(seed)
    rules = ["creative_min", "risk_max", "loop_rate_hz", "entropy_cap"]
    actors = ["Lubit", "Sena", "Lumen"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for k, s in enumerate(times_s):
            old = round(rnd.random(), 2)
            ev = {
                "ts": (start + timedelta(seconds=s)).isoformat(),
                "actor": actors[k % len(actors)],
                "rule": rules[k % len(rules)],
                "old": old,
                "new": round(old + 0.02, 2),
                "note": "bench",
            }
            f.write(json.dumps(ev) + "\n")


def make_day(root: Path, events: int = 1000, rows: int = 432_000) -> None:
    """A day at 5 Hz (432,000 rows) with `events` rule changes spread evenly over it."""
    write_metrics(root / "logs" / "metrics.csv", rows)
    span = rows / 5
    step = (span - 120) / events
    write_history(root / "controls" / "rules_history.jsonl", [60 + k * step for k in range(events)])


def soil_metrics(path: Path, blank_share: float = 0.003, junk: int = 30,
                 blank_column_s: tuple[float, float] = (20_000.0, 20_040.0),
                 seed: int = 3) -> None:
    """A real gateway's day: blank fields where a sensor hiccuped (`blank_share` of the
    values), `junk` values of nan, inf, -inf or ERR, and one column blank for 40 s."""
    rnd = random.Random(seed)
    lines = path.read_text(encoding="utf-8").split("\n")
    rows = range(1, len(lines) - 1)  # not the header, not the empty string after the end
    lo, hi = (round(s * 5) + 1 for s in blank_column_s)
    for i in rows:
        fields = lines[i].split(",")
        changed = False
        for c in range(1, len(fields)):
            if rnd.random() < blank_share:
                fields[c] = ""
                changed = True
        if lo <= i < hi:
            fields[2] = ""  # entropy_rate: a sensor down for 40 s
            changed = True
        if changed:
            lines[i] = ",".join(fields)
    for i in rnd.sample(rows, junk):
        fields = lines[i].split(",")
        fields[rnd.randrange(1, len(fields))] = rnd.choice(["nan", "inf", "-inf", "ERR", "NaN"])
        lines[i] = ",".join(fields)
    path.write_text("\n".join(lines), encoding="utf-8")


def make_dirty_day(root: Path) -> None:
    """The day of `make_day`, soiled as a real log is (see `soil_metrics`)."""
    make_day(root)
    soil_metrics(root / "logs" / "metrics.csv")
