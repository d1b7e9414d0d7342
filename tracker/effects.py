"""The effect of one rule change: means of each signal just before and just after it, and
how sure each difference is (tracker/stats.py)."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator

import numpy as np

from tracker.contract import SHORT, UNRELIABLE_BELOW
from tracker.history import RuleEvent
from tracker.segments import SampleBuffer
from tracker.settings import Settings
from tracker.stats import Shift, shifts, verdict

# The intervals also read this many pre-window lengths of samples before the pre window:
# only to learn how much the signal wanders, which 30 s alone says too roughly.
HISTORY_WINDOWS = 2


def us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def seconds_text(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else repr(float(s))


def _mean(values: np.ndarray) -> float | None:
    if not len(values):
        return None
    floats = values.tolist()  # fsum reads Python floats quickest
    try:
        return math.fsum(floats) / len(floats)
    except OverflowError:  # finite values whose sum is not: their mean still is
        n = len(floats)
        return math.fsum(v / n for v in floats)


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
# Events whose intervals are computed in one numpy batch (bounds the batch's memory).
BATCH_EVENTS = 512

Windows = tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]


def _cuts(pre: list[np.ndarray], post: list[np.ndarray],
          history: list[np.ndarray]) -> list[tuple[list[int], int, int, int]]:
    """The signals of one event that can share a batch, and the window lengths they share.

    A blank field leaves a signal's window a sample short of the others'. Batched signals
    are cut to the shortest window of the batch (the samples furthest from the change go:
    the start of pre and history, the end of post), which leaves a few samples of a window
    out of its interval, never out of Δ. A signal with far fewer samples (a long blank
    stretch) goes on its own.
    """
    lens = [(len(a), len(b), len(h)) for a, b, h in zip(pre, post, history)]
    have = [i for i, (a, b, _) in enumerate(lens) if a and b]
    if not have:
        return []
    top = [BATCH_SHARE * max(lens[i][k] for i in have) for k in range(3)]
    batch = [i for i in have if lens[i][0] >= top[0] and lens[i][1] >= top[1]
             and lens[i][2] >= top[2]]
    groups = ([batch] if batch else []) + [[i] for i in have if i not in batch]
    return [(idx, *(min(lens[i][k] for i in idx) for k in range(3))) for idx in groups]


def _array(rows: Iterator[np.ndarray], n: int) -> np.ndarray:
    """Rows of n floats as a 2-D array."""
    return np.stack(list(rows)).reshape(-1, n)


def _intervals(events: list[Windows], plains: list[list[float | None]]) -> list[list[Shift]]:
    """Each event's four Shifts. Rows of every event whose windows are as long go through
    the statistics together: numpy's cost per call is most of the cost of a few windows."""
    out = [[Shift(None, None, None, 0)] * len(pre) for pre, _, _ in events]
    jobs: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    for e, (pre, post, history) in enumerate(events):
        for idx, n0, n1, nh in _cuts(pre, post, history):
            jobs.setdefault((n0, n1, nh), []).extend((e, i) for i in idx)
    for (n0, n1, nh), rows in jobs.items():
        found = shifts(
            _array((events[e][0][i][len(events[e][0][i]) - n0:] for e, i in rows), n0),
            _array((events[e][1][i][:n1] for e, i in rows), n1),
            [plains[e][i] for e, i in rows],  # type: ignore[misc]  # set: both sides have data
            _array((events[e][2][i][len(events[e][2][i]) - nh:] for e, i in rows), nh)
            if nh else None)
        for (e, i), sh in zip(rows, found):
            out[e][i] = sh
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


def effect_records(evs: list[RuleEvent], buffer: SampleBuffer, s: Settings,
                   confounded: list[bool]) -> list[dict[str, str]]:
    """The rows of several events: their intervals are computed in batches."""
    out = []
    for start in range(0, len(evs), BATCH_EVENTS):
        part = range(start, min(start + BATCH_EVENTS, len(evs)))
        recs, wins, plains = [], [], []
        for k in part:
            rec, win, plain = _means(evs[k], buffer, s, confounded[k])
            recs.append(rec)
            wins.append(win)
            plains.append(plain)
        for rec, (pre, post, _), found in zip(recs, wins, _intervals(wins, plains)):
            for short, sh in zip(SHORT, found):
                rec[f"d_{short}_lo"] = _text(sh.lo)
                rec[f"d_{short}_hi"] = _text(sh.hi)
            counts = [min(len(x), len(y)) for x, y in zip(pre, post) if len(x) and len(y)]
            rec["verdict"] = verdict(*found, fewest=min(counts) if counts else None,
                                     min_samples=UNRELIABLE_BELOW)
            rec["n_glitches"] = str(sum(sh.glitches for sh in found))
        out.extend(recs)
    return out


def _means(ev: RuleEvent, buffer: SampleBuffer, s: Settings,
           confounded: bool) -> tuple[dict[str, str], Windows, list[float | None]]:
    """The row without its intervals, the event's windows, and its plain Δs."""
    (a, b), (c, d) = windows(ev.t_us, s)
    buffer.prepare(a - us(s.pre_s * HISTORY_WINDOWS), d)
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
    return rec, (pre, post, history), plain


def unreliable(rec: dict[str, str]) -> bool:
    return any(int(rec[f"n_{side}_{m}"] or 0) < UNRELIABLE_BELOW
               for side in ("pre", "post") for m in SHORT)
