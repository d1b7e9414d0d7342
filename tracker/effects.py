"""The effect of one rule change: means of each signal just before and just after it."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import numpy as np

from tracker import SHORT
from tracker.history import RuleEvent
from tracker.metrics import SampleBuffer
from tracker.settings import Settings
from tracker.stats import Shift, shifts, verdict

UNRELIABLE_BELOW = 50  # samples on a side: 10 s at 5 Hz (SPEC)
# The intervals also read this many pre-window lengths of samples before the pre window:
# only to learn how much the signal wanders, which 30 s alone says too roughly.
HISTORY_WINDOWS = 2


def us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def seconds_text(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else repr(float(s))


def _mean(values: Sequence[float]) -> float | None:
    if not values:
        return None
    try:
        return math.fsum(values) / len(values)
    except OverflowError:  # finite values whose sum is not
        return sum(values) / len(values)


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
    return ev.t_us - us(s.pre_s * (1 + HISTORY_WINDOWS))


# Signals whose windows hold at least this share of the longest one's samples are batched.
BATCH_SHARE = 0.9


def _intervals(pre: list[Sequence[float]], post: list[Sequence[float]],
               history: list[Sequence[float]], plain: list[float | None]) -> list[Shift]:
    """Each signal's Shift, the four in one batch where their windows allow.

    A blank field leaves a signal's window a sample short of the others'. Batched signals
    are cut to the shortest window of the batch (the samples furthest from the change go:
    the start of pre and history, the end of post), which leaves a few samples of a window
    out of its interval, never out of Δ, and keeps the cost of one batch. A signal with
    far fewer samples (a long blank stretch) goes on its own.
    """
    out: list[Shift] = [Shift(None, None, None, 0)] * len(pre)
    have = [i for i in range(len(pre)) if pre[i] and post[i]]
    if not have:
        return out
    top = [max(len(x[i]) for i in have) for x in (pre, post, history)]
    batch = [i for i in have if all(len(x[i]) >= BATCH_SHARE * t
                                    for x, t in zip((pre, post, history), top))]
    groups = [batch] + [[i] for i in have if i not in batch]
    for idx in groups:
        if not idx:
            continue
        n0, n1, nh = (min(len(x[i]) for i in idx) for x in (pre, post, history))
        res = shifts(np.array([pre[i][len(pre[i]) - n0:] for i in idx], dtype=float),
                     np.array([post[i][:n1] for i in idx], dtype=float),
                     [plain[i] for i in idx],  # type: ignore[misc]  # set when both sides are
                     np.array([history[i][len(history[i]) - nh:] for i in idx], dtype=float)
                     if nh else None)
        for i, sh in zip(idx, res):
            out[i] = sh
    return out


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
    history = buffer.window(a - us(s.pre_s * HISTORY_WINDOWS), a - 1)
    rec = {
        "rule_ts": ev.ts, "actor": ev.actor, "rule": ev.rule, "old": ev.old, "new": ev.new,
        "pre_s": seconds_text(s.pre_s), "post_s": seconds_text(s.post_s),
        "guard_s": seconds_text(s.guard_s), "confounded": "1" if confounded else "0",
    }
    plain: list[float | None] = []
    for short, before, after in zip(SHORT, pre, post):
        m0, m1 = _mean(before), _mean(after)
        plain.append(None if m0 is None or m1 is None else m1 - m0)
        rec[f"pre_{short}"] = _text(m0)
        rec[f"post_{short}"] = _text(m1)
        rec[f"d_{short}"] = _text(plain[-1])
        rec[f"n_pre_{short}"] = str(len(before))
        rec[f"n_post_{short}"] = str(len(after))
    found = _intervals(pre, post, history, plain)
    for short, sh in zip(SHORT, found):
        rec[f"d_{short}_lo"] = _text(sh.lo)
        rec[f"d_{short}_hi"] = _text(sh.hi)
    counts = [min(len(x), len(y)) for x, y in zip(pre, post) if x and y]
    rec["verdict"] = verdict(*found, fewest=min(counts) if counts else None,
                             min_samples=UNRELIABLE_BELOW)
    rec["n_glitches"] = str(sum(sh.glitches for sh in found))
    return rec


def unreliable(rec: dict[str, str]) -> bool:
    return any(int(rec[f"n_{side}_{m}"] or 0) < UNRELIABLE_BELOW
               for side in ("pre", "post") for m in SHORT)
