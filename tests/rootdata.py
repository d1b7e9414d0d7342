"""Writing small data roots for tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

KST = timezone(timedelta(hours=9))
T0 = datetime(2025, 10, 23, 13, 10, 0, tzinfo=KST)
HEADER = "ts,phase_diff,entropy_rate,creative_band,risk_band"


def ts(seconds: float, base: datetime = T0, tz=KST, ms: bool = True) -> str:
    dt = (base + timedelta(seconds=seconds)).astimezone(tz)
    return dt.isoformat(timespec="milliseconds" if ms else "seconds")


def sample_rows(start_s: float, end_s: float, hz: float = 5.0, value=None) -> list[str]:
    """Rows from start_s to end_s inclusive; values default to a function of time."""
    rows = []
    n = round((end_s - start_s) * hz)
    for k in range(n + 1):
        t = start_s + k / hz
        v = value(t) if value else (round(t, 3), 1.0, 2.0, 3.0)
        rows.append(",".join([ts(t), *map(str, v)]))
    return rows


def write_metrics(root: Path, rows: list[str], header: str = HEADER, newline: str = "\n",
                  tail: str = "") -> Path:
    p = root / "logs" / "metrics.csv"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes((newline.join([header, *rows]) + newline + tail).encode("utf-8"))
    return p


def event(seconds: float = 0.0, rule: str = "creative_min", actor: str = "Lubit",
          old=0.22, new=0.24, **extra) -> dict:
    e = {"ts": ts(seconds, ms=False) if float(seconds).is_integer() else ts(seconds),
         "actor": actor, "rule": rule, "old": old, "new": new}
    e.update(extra)
    return e


def write_history(root: Path, events: list, raw_lines: list[str] | None = None) -> Path:
    p = root / "controls" / "rules_history.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(e) for e in events] + list(raw_lines or [])
    p.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return p


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def effects(root: Path) -> list[dict[str, str]]:
    import csv

    p = root / "logs" / "rules_effects.csv"
    if not p.exists():
        return []
    with open(p, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
