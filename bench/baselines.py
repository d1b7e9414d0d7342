"""The two methods the tracker is measured against (see bench/run.py)."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path

METRICS = ("phase_diff", "entropy_rate", "creative_band", "risk_band")


def _events(root: Path) -> list[dict]:
    with open(root / "controls" / "rules_history.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _mean(vals: list[float]) -> float | None:
    return sum(vals) / len(vals) if vals else None


def _valid(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def naive(root: Path, pre: float = 30, post: float = 30, guard: float = 1) -> list[dict]:
    """The original script's method: every row into memory as a dict, then for each event
    a scan over every row for each window."""
    with open(root / "logs" / "metrics.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["t"] = datetime.fromisoformat(r["ts"]).timestamp()
    out = []
    for ev in _events(root):
        t0 = datetime.fromisoformat(ev["ts"]).timestamp()
        before = [r for r in rows if t0 - pre <= r["t"] <= t0 - guard]
        after = [r for r in rows if t0 + guard <= r["t"] <= t0 + post]
        res = {"rule_ts": ev["ts"], "rule": ev["rule"]}
        for m in METRICS:
            m0 = _mean([float(r[m]) for r in before if _valid(r[m])])
            m1 = _mean([float(r[m]) for r in after if _valid(r[m])])
            res[m] = None if m0 is None or m1 is None else m1 - m0
        out.append(res)
    return out


def _micros(pd, ts):
    """Epoch microseconds, whatever unit this pandas version picks for parsed datetimes."""
    t = pd.to_datetime(ts, format="ISO8601", utc=True)
    return t.astype("datetime64[us, UTC]").astype("int64").to_numpy()


def _frame(root: Path):
    import pandas as pd

    df = pd.read_csv(root / "logs" / "metrics.csv", low_memory=False)  # mixed: ERR, blanks
    df["t"] = _micros(pd, df["ts"])
    for m in METRICS:
        df[m] = pd.to_numeric(df[m], errors="coerce")
    return df


def pandas_masks(root: Path, pre: float = 30, post: float = 30, guard: float = 1) -> list[dict]:
    """The usual pandas script: a vectorised parse, then a boolean mask per window."""
    import numpy as np
    import pandas as pd

    df = _frame(root)
    t = df["t"].to_numpy()
    vals = {m: df[m].to_numpy().copy() for m in METRICS}
    for v in vals.values():
        v[~np.isfinite(v)] = np.nan
    us = 1_000_000
    out = []
    for ev in _events(root):
        t0 = int(_micros(pd, pd.Series([ev["ts"]]))[0])
        before = (t >= t0 - int(pre * us)) & (t <= t0 - int(guard * us))
        after = (t >= t0 + int(guard * us)) & (t <= t0 + int(post * us))
        res = {"rule_ts": ev["ts"], "rule": ev["rule"]}
        for m in METRICS:
            res[m] = np.nanmean(vals[m][after]) - np.nanmean(vals[m][before])
        out.append(res)
    return out


def pandas_way(root: Path, pre: float = 30, post: float = 30, guard: float = 1) -> list[dict]:
    """pandas at its best: a sorted time index and searchsorted for each window."""
    import numpy as np
    import pandas as pd

    df = _frame(root)
    t = df["t"].to_numpy()
    order = np.argsort(t, kind="stable")
    t = t[order]
    vals = {m: df[m].to_numpy()[order] for m in METRICS}
    for v in vals.values():
        v[~np.isfinite(v)] = np.nan
    ev = pd.DataFrame(_events(root))
    t0 = _micros(pd, ev["ts"])
    ns = 1_000_000
    a = np.searchsorted(t, t0 - int(pre * ns), "left")
    b = np.searchsorted(t, t0 - int(guard * ns), "right")
    c = np.searchsorted(t, t0 + int(guard * ns), "left")
    d = np.searchsorted(t, t0 + int(post * ns), "right")
    out = []
    for k in range(len(ev)):
        res = {"rule_ts": ev["ts"].iloc[k], "rule": ev["rule"].iloc[k]}
        for m in METRICS:
            res[m] = np.nanmean(vals[m][c[k]:d[k]]) - np.nanmean(vals[m][a[k]:b[k]])
        out.append(res)
    return out
