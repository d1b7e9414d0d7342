"""tracker.effects against its definition: each row's intervals are stats.shifts of the
samples in the pre and post windows (SPEC, inclusive bounds), sharpened by the samples of
HISTORY_WINDOWS pre windows just before; batching events and signals together changes
nothing but speed, and a signal with a long blank stretch is measured on its own."""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pytest

from tests.rootdata import T0, sample_rows, write_metrics
from tracker import effects
from tracker.contract import SHORT
from tracker.effects import HISTORY_WINDOWS, effect_records, windows
from tracker.history import RuleEvent
from tracker.metrics_reader import MetricsReader
from tracker.report import Reporter
from tracker.segments import SampleBuffer
from tracker.settings import resolve
from tracker.stats import shifts
from tracker.timeparse import TimeParser, parse_zone

EVENTS_S = [0, 200, 400, 600, 800]  # far enough apart for a whole history each


def noisy_root(root, seed: int) -> list[tuple[int, list[float]]]:
    """AR(1) noise at 5 Hz with a step at each event; the last signal is blank for 56 s
    before the third event (a signal with far fewer samples than the others there), the
    third has a blank sample in each window of the fourth (one sample short); before and
    after the fifth, the first lacks most of its post window and the second a tenth of its
    history (exactly BATCH_SHARE of it)."""
    rnd = random.Random(seed)
    x = [0.0] * 4
    samples = []

    def value(t: float) -> tuple:
        for k in range(4):
            x[k] = 0.9 * x[k] + rnd.gauss(0, 0.3)
        step = sum(0.5 for e in EVENTS_S if t >= e)
        vals = [round(v + step * (k + 1), 6) for k, v in enumerate(x)]
        t = round(t, 3)
        if 340 <= t < 396:
            vals[3] = ""
        if t in (571.0, 620.0):  # one blank each in pre and post of the fourth event
            vals[2] = ""
        if 805 <= t < 825:  # the fifth event's post window a third full: alone
            vals[0] = ""
        if 720 <= t < 726:  # its history exactly BATCH_SHARE full (270 of 300): batched
            vals[1] = ""
        samples.append((t, vals))
        return tuple(vals)

    write_metrics(root, sample_rows(-200, 1000, value=value))
    return samples


def buffer_of(root) -> tuple[SampleBuffer, TimeParser]:
    tp = TimeParser(parse_zone("+09:00"))
    reader = MetricsReader(root / "logs" / "metrics.csv", tp, Reporter(io.StringIO()))
    buf = SampleBuffer()
    for seg in reader.chunks():
        buf.add(seg)
    return buf, tp


def expected(samples, t0_us: int, s) -> list[tuple[float, float, int, int]]:
    """Each signal's (lo, hi, n_pre, n_post) from stats.shifts on the samples the definition
    picks. Signals whose windows all hold at least BATCH_SHARE of the longest go through
    together, cut to the shortest of them (the samples furthest from the change go: the
    start of pre and history, the end of post); any other signal goes alone, whole."""
    (a, b), (c, d) = windows(t0_us, s)
    h0 = a - round(s.pre_s * HISTORY_WINDOWS * 1e6)
    base = int(T0.timestamp() * 1e6)

    def side(k: int, lo: int, hi: int) -> list[float]:
        return [v[k] for t, v in samples if lo <= base + round(t * 1e6) <= hi and v[k] != ""]

    wins = [(side(k, a, b), side(k, c, d), side(k, h0, a - 1)) for k in range(4)]
    longest = [max(len(w[j]) for w in wins) for j in range(3)]
    batch = [k for k, w in enumerate(wins)
             if all(len(w[j]) >= effects.BATCH_SHARE * longest[j] for j in range(3))]
    cut = [min(len(wins[k][j]) for k in batch) for j in range(3)]
    out = []
    for k, (pre, post, hist) in enumerate(wins):
        plain = sum(post) / len(post) - sum(pre) / len(pre)
        n0, n1, nh = cut if k in batch else (len(pre), len(post), len(hist))
        sh = shifts(np.array([pre[len(pre) - n0:]]), np.array([post[:n1]]), [plain],
                    np.array([hist[len(hist) - nh:]]) if nh else None)[0]
        out.append((sh.lo, sh.hi, len(pre), len(post)))
    return out


@pytest.mark.parametrize("batch_events", [effects.BATCH_EVENTS, 2])
@pytest.mark.parametrize("seed", [1, 2])
def test_each_rows_intervals_are_its_windows_through_stats(tmp_path, monkeypatch, seed,
                                                          batch_events):
    monkeypatch.setattr(effects, "BATCH_EVENTS", batch_events)
    samples = noisy_root(tmp_path, seed)
    buf, tp = buffer_of(tmp_path)
    s = resolve(str(tmp_path), env={})
    base = int(T0.timestamp() * 1e6)
    evs = [RuleEvent(f"t{e}", base + e * 1_000_000, "a", f"rule{e}", "1", "2", "", k + 1)
           for k, e in enumerate(EVENTS_S)]
    rows = effect_records(evs, buf, s, [False] * len(evs))
    assert [r["rule"] for r in rows] == [f"rule{e}" for e in EVENTS_S]
    for ev, row in zip(evs, rows):
        for short, (lo, hi, n0, n1) in zip(SHORT, expected(samples, ev.t_us, s)):
            assert (int(row[f"n_pre_{short}"]), int(row[f"n_post_{short}"])) == (n0, n1)
            if short == "risk" and ev.rule == "rule400":
                assert n0 < effects.BATCH_SHARE * 146  # so it went alone
            if short == "creative" and ev.rule == "rule600":
                assert (n0, n1) == (145, 145)  # so the others were cut by one
            if short == "phase" and ev.rule == "rule800":
                assert n1 == 46
            got = float(row[f"d_{short}_lo"]), float(row[f"d_{short}_hi"])
            assert got == pytest.approx((lo, hi), rel=1e-9), (ev.rule, short)
            assert math.isfinite(got[0])
