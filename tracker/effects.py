"""The effect of one rule change: means of each signal just before and just after it."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from tracker import SHORT
from tracker.history import RuleEvent
from tracker.metrics import SampleBuffer
from tracker.settings import Settings

UNRELIABLE_BELOW = 50  # samples on a side: 10 s at 5 Hz (SPEC)


def us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def seconds_text(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else repr(float(s))


def _mean(values: Sequence[float]) -> float | None:
    if not values:
        return None
    try:
        return math.fsum(values) / len(values)
    except OverflowError:  # finite values whose sum is not: their mean still is
        n = len(values)
        return math.fsum(v / n for v in values)


def _text(x: float | None) -> str:
    return "" if x is None else repr(x)


def windows(t0_us: int, s: Settings) -> tuple[tuple[int, int], tuple[int, int]]:
    """(pre, post) as inclusive [lo, hi] microsecond bounds (SPEC)."""
    return ((t0_us - us(s.pre_s), t0_us - us(s.guard_s)),
            (t0_us + us(s.guard_s), t0_us + us(s.post_s)))


def final_at(ev: RuleEvent, s: Settings) -> int:
    """The metrics time from which the event's post window is complete."""
    return ev.t_us + us(s.post_s)


def needs_from(ev: RuleEvent, s: Settings) -> int:
    return ev.t_us - us(s.pre_s)


class EventTimes:
    """Times of every distinct event known, to tell which effects are confounded.

    An event is confounded when another change falls in its own span [t0 - PRE, t0 + POST]
    or early enough before it (t0 - PRE - POST) that the other's post window overlaps this
    pre window: its effect is then still settling in this baseline.
    """

    def __init__(self) -> None:
        self.times: list[int] = []

    def add(self, t_us: int) -> None:
        self.times.insert(bisect_right(self.times, t_us), t_us)

    def confounded(self, t0_us: int, s: Settings) -> bool:
        lo = t0_us - us(s.pre_s) - us(s.post_s)
        hi = t0_us + us(s.post_s)
        return bisect_right(self.times, hi) - bisect_left(self.times, lo) > 1


def effect_record(ev: RuleEvent, buffer: SampleBuffer, s: Settings,
                  confounded: bool) -> dict[str, str]:
    """One rules_effects.csv row (as a dict of column name to text)."""
    (a, b), (c, d) = windows(ev.t_us, s)
    pre, post = buffer.window(a, b), buffer.window(c, d)
    rec = {
        "rule_ts": ev.ts, "actor": ev.actor, "rule": ev.rule, "old": ev.old, "new": ev.new,
        "pre_s": seconds_text(s.pre_s), "post_s": seconds_text(s.post_s),
        "guard_s": seconds_text(s.guard_s), "confounded": "1" if confounded else "0",
    }
    for short, before, after in zip(SHORT, pre, post):
        m0, m1 = _mean(before), _mean(after)
        rec[f"pre_{short}"] = _text(m0)
        rec[f"post_{short}"] = _text(m1)
        rec[f"d_{short}"] = _text(None if m0 is None or m1 is None else m1 - m0)
        rec[f"n_pre_{short}"] = str(len(before))
        rec[f"n_post_{short}"] = str(len(after))
    return rec


def unreliable(rec: dict[str, str]) -> bool:
    return any(int(rec[f"n_{side}_{m}"] or 0) < UNRELIABLE_BELOW
               for side in ("pre", "post") for m in SHORT)
