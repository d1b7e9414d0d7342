"""tracker.stats against a plain transcription of its method, one sample and one signal at a
time, on inputs chosen to reach every branch: short windows, windows just under and at the
length the correlation is learnt from, history of every length, glitches at the ends and
inside, constant stretches, several signals at once.

The vectorised code must give the same numbers to rounding; the statistical tests in
test_stats.py show the method is right, these show the code is the method.
"""

from __future__ import annotations

import math
import random
import statistics
import warnings

import numpy as np
import pytest

from tracker import stats
from tracker.stats import HAMPEL_K, RHO_MAX, RHO_MIN_N, RHO_PRIOR, Shift


def ref_screen(x: list[float]) -> tuple[list[float], list[bool]]:
    n = len(x)
    if n < 5:
        return list(x), [False] * n
    steps = [abs(b - a) for a, b in zip(x, x[1:])]
    scale = 1.4826 * sorted(steps)[len(steps) // 2]  # the upper median
    if scale <= 0:
        scale = 1.2533 * statistics.fmean(steps)
    limit = HAMPEL_K * scale
    bad = []
    for i in range(n):
        if i in (0, n - 1):
            bad.append(abs(x[i] - statistics.median(x[:3] if i == 0 else x[-3:])) > limit)
        else:
            into, out = x[i] - x[i - 1], x[i + 1] - x[i]
            bad.append(into * out < 0 and min(abs(into), abs(out)) > limit)
    clean = [statistics.median(x[:3] if i == 0 else x[-3:] if i == n - 1 else x[i - 1:i + 2])
             if b else v for i, (v, b) in enumerate(zip(x, bad))]
    return clean, bad


def ref_factor(rho: float, n: int) -> float:
    """n Var(mean) / Var(sample) for AR(1), summed over the lags (not the closed form)."""
    rho = min(rho, RHO_MAX)
    return 1 + 2 * sum((1 - h / n) * rho ** h for h in range(1, n))


def ref_shift(pre: list[float], post: list[float], plain: float,
              history: list[float] | None) -> Shift:
    n0, n1 = len(pre), len(post)
    if n0 == 0 or n1 == 0:
        return Shift(None, None, None, 0)
    m = len(history) // n0 if history is not None and n0 >= RHO_MIN_N else 0
    older = history[len(history) - m * n0:] if m else []
    clean, bad = ref_screen(older + pre + post)
    glitches = sum(bad[m * n0:])
    before = [clean[j * n0:(j + 1) * n0] for j in range(m + 1)]  # history windows, then pre
    after = clean[(m + 1) * n0:]

    def ss_lag(w: list[float]) -> tuple[float, float]:
        mu = sum(w) / len(w)
        d = [v - mu for v in w]
        return sum(v * v for v in d), sum(a * b for a, b in zip(d, d[1:]))

    centre = sum(after) / n1 - sum(before[-1]) / n0
    parts0 = [ss_lag(w) for w in before]
    ss1, lag1 = ss_lag(after)
    ss = sum(s for s, _ in parts0) + ss1
    use0, use1 = n0 >= RHO_MIN_N, n1 >= RHO_MIN_N
    learn = use0 or use1
    if learn:
        lag = (sum(lg for _, lg in parts0) if use0 else 0) + (lag1 if use1 else 0)
        total = (sum(s for s, _ in parts0) if use0 else 0) + (ss1 if use1 else 0)
        windows = (m + 1) * use0 + use1
        big_n = (m + 1) * n0 * use0 + n1 * use1
        r = lag / total if total > 0 else 0.0
        rho = min(max((big_n * r + windows) / (big_n - 3 * windows - 1), 0.0), RHO_MAX)
    else:
        rho = RHO_PRIOR
    f0, f1 = ref_factor(rho, n0), ref_factor(rho, n1)
    room = (m + 1) * (n0 - f0) + (n1 - f1)
    if not (room > 1e-9 and (ss > 0 or learn)):
        return Shift(None, None, None, glitches)
    var = ss / room
    df = (m + 1) * (n0 - f0) / f0 + (n1 - f1) / f1
    half = stats.t_quantile(df) * math.sqrt(var * (f0 / n0 + f1 / n1))
    lo, hi = min(centre - half, plain), max(centre + half, plain)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return Shift(None, None, None, glitches)
    return Shift(lo, hi, math.sqrt(var), glitches)


def ar1(rnd: random.Random, n: int, rho: float, level: float = 0.0) -> list[float]:
    x, out = rnd.gauss(0, 1), []
    for _ in range(n):
        x = rho * x + math.sqrt(1 - rho * rho) * rnd.gauss(0, 1)
        out.append(level + x)
    return out


def spiked(rnd: random.Random, x: list[float], where: list[int]) -> list[float]:
    x = list(x)
    for i in where:
        x[i] += rnd.choice([-1, 1]) * 40
    return x


def same(got: Shift, want: Shift) -> None:
    assert got.glitches == want.glitches and type(got.glitches) is int
    for field in ("lo", "hi", "sd"):
        a, b = getattr(got, field), getattr(want, field)
        assert (a is None) == (b is None), (field, got, want)
        if a is not None:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (field, got, want)


# (n0, n1, history length or None): a side empty, short, just under and at RHO_MIN_N, one
# side learnt only, whole and partial windows of history, history too short for one window.
SHAPES = [(0, 6, None), (0, 30, None), (6, 0, 12), (30, 0, None), (6, 1, None), (1, 1, None),
          (1, 4, None), (2, 3, 10), (4, 5, None), (5, 5, None), (6, 9, 30),
          (RHO_MIN_N - 1, RHO_MIN_N - 1, 100), (RHO_MIN_N - 1, RHO_MIN_N, None),
          (RHO_MIN_N, RHO_MIN_N - 1, 3 * RHO_MIN_N), (RHO_MIN_N, RHO_MIN_N, RHO_MIN_N - 1),
          (RHO_MIN_N, 2 * RHO_MIN_N, 2 * RHO_MIN_N + 7), (146, 146, 0), (146, 146, 146 * 3),
          (146, 60, 146 * 5 + 145), (30, 146, None)]


@pytest.mark.parametrize("n0, n1, nh", SHAPES)
@pytest.mark.parametrize("seed", [1, 2])
def test_shifts_are_the_method_on_every_shape(n0, n1, nh, seed):
    rnd = random.Random(seed * 1000 + n0 * 7 + n1)
    rows = []
    for k in range(3):  # three signals at once, each its own noise and glitches
        rho = (0.0, 0.8, 0.97)[k]
        hist = ar1(rnd, nh, rho) if nh is not None else None
        pre, post = ar1(rnd, n0, rho), ar1(rnd, n1, rho, level=0.5 * k)
        if k == 1 and n0 + n1 >= 5:
            both = spiked(rnd, pre + post, [0, n0 + n1 - 1, (n0 + n1) // 2])
            pre, post = both[:n0], both[n0:]
        rows.append((pre, post, hist))
    plain = [statistics.fmean(b) - statistics.fmean(a) + 0.01 * k if a and b else 0.0
             for k, (a, b, _) in enumerate(rows)]
    history = np.array([h for _, _, h in rows]) if nh is not None else None
    got = stats.shifts(np.array([a for a, _, _ in rows]), np.array([b for _, b, _ in rows]),
                       plain, history)
    for g, (a, b, h), p in zip(got, rows, plain):
        same(g, ref_shift(a, b, p, h))


@pytest.mark.parametrize("pre, post", [
    ([2.0] * 30, [2.0] * 25),  # constant: the point interval
    ([2.0] * 3, [2.0] * 4),  # a few equal samples say nothing of the spread
    ([0.0] * 30 + [1.0], [1.0] * 30),  # mostly constant, one step
    ([0.0] * 12 + [9.0] + [0.0] * 12, [0.0] * 25),  # a spike on flat data
    ([1e308, -1e308] * 15, [1e308] * 30),  # beyond the float range: no interval
    ([0.0, 1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0]),  # alternating: no glitch at all
    ([0.0, 1.0] * 15, [1.0, 0.0] * 15),  # anti-correlated: the correlation taken as 0
    (list(range(30)), list(range(40, 70))),  # ramps: the correlation capped at RHO_MAX
    ([3.0] * 25, [0.0, 1.0, 3.0, 2.0, 4.0, 3.0, 1.0, 2.0, 0.0, 1.0]),  # learnt from pre alone,
    # which is constant: a correlation of 0, the spread from post
])
def test_shifts_are_the_method_at_the_edges(pre, post):
    plain = sum(post) / len(post) - sum(pre) / len(pre)  # inf for the huge values
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overflow is handled, never warned about
        got = stats.shifts(np.array([pre]), np.array([post]), [plain])
    same(got[0], ref_shift(pre, post, plain, None))


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 30, 31])
@pytest.mark.parametrize("seed", range(4))
def test_the_screen_is_the_method(n, seed):
    rnd = random.Random(seed * 100 + n)
    rows = [spiked(rnd, ar1(rnd, n, 0.9), [0, n - 1, n // 2]), ar1(rnd, n, 0.5),
            [1.0] * (n - 1) + [30.0], spiked(rnd, [0.0] * n, [0, 2])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # flat stretches divide nothing by zero
        clean, bad = stats._screen(np.array(rows))
    assert bad.dtype == np.bool_
    for row, c, b in zip(rows, clean.tolist(), bad.tolist()):
        want_c, want_b = ref_screen(row)
        assert b == want_b and c == want_c
    cleaned, counts = stats.screen(np.array(rows))
    assert counts.tolist() == [sum(ref_screen(r)[1]) for r in rows]
    assert cleaned.tolist() == [ref_screen(r)[0] for r in rows]


def test_the_screen_on_its_limits():
    """A spike exactly at the limit is kept, a hair above it is a glitch; the same at the
    ends; and a change into a sample of exactly zero (a tie, not a turn) is no peak."""
    base = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]  # every step 1: scale 1.4826
    limit = HAMPEL_K * 1.4826
    for where in (0, 4, 8):
        for height, glitch in ((limit, False), (limit * (1 + 1e-9), True)):
            x = list(base)
            x[where] = base[where] + (height + 1 if where == 4 else -height)
            want_c, want_b = ref_screen(x)
            clean, bad = stats._screen(np.array([x]))
            assert bad[0].tolist() == want_b and clean[0].tolist() == want_c
            assert want_b[where] is glitch, (where, height)
    flat_then_up = [0.0, 0.0, 0.0, 50.0, 50.0, 50.0]  # a step, with no turn in it
    assert not stats._screen(np.array([flat_then_up]))[1].any()
    assert ref_screen(flat_then_up)[1] == [False] * 6
    # On flat data the scale is the mean change: a lone spike is a glitch from 17 samples.
    for n, glitch in ((16, False), (17, True)):
        x = [0.0] * n
        x[n // 2] = 5.0
        assert stats._screen(np.array([x]))[1][0].tolist() == ref_screen(x)[1]
        assert ref_screen(x)[1][n // 2] is glitch
    # A step taken in two strides on a slow drift turns nowhere: no glitch in it.
    drift = [0.01 * i for i in range(12)] + [0.6 + 0.01 * i for i in range(12)]
    drift[12:12] = [0.35]
    assert not stats._screen(np.array([drift]))[1].any() and not any(ref_screen(drift)[1])
    four = [0.0, 0.0, 99.0, 0.0]  # too few to screen
    assert stats._screen(np.array([four]))[1].tolist() == [[False] * 4]


@pytest.mark.parametrize("n", [1, 2, 3, 10, 146])
def test_the_variance_factor_is_the_sum_over_lags(n):
    rho = np.array([0.0, 0.3, 0.9, 0.97, RHO_MAX, 0.9999])
    assert stats.mean_factor(rho, n) == pytest.approx([ref_factor(r, n) for r in rho],
                                                      rel=1e-9)


def test_hills_approximation_is_as_close_as_published():
    """t_quantiles (Hill, CACM 396) against the t distribution inverted by bisection: the
    approximation is worst near 2 degrees of freedom and close to exact from a few on. A
    wrong coefficient moves it well outside these bounds."""
    bounds = [(2.0, 3.0, 5e-4), (3.0, 5.0, 2e-5), (5.0, 20.0, 2e-7), (20.0, 2000.0, 1e-9)]
    for lo, hi, tol in bounds:
        df = np.round(np.geomspace(lo, hi, 40, endpoint=False), 2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # both branches are computed: never warned about
            got = stats.t_quantiles(df)
        exact = np.array([stats._t_quantile_exact(int(round(x * 100))) for x in df])
        worst = np.max(np.abs(got / exact - 1))
        assert worst < tol, (lo, hi, worst)
    # Under 2 the t distribution itself is inverted, with no warning from the unused
    # branch; NaN degrees of freedom (a window without spread) give the widest: one.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        below = stats.t_quantiles(np.array([1.0, 1.37, 1.99, math.nan]))
        # Without end, the normal quantile (a huge df divides by zero on the way).
        endless = stats.t_quantiles(np.array([1e300, math.inf]))
    assert below.tolist() == [stats._t_quantile_exact(k) for k in (100, 137, 199, 100)]
    assert endless.tolist() == pytest.approx([-statistics.NormalDist().inv_cdf(0.025)] * 2,
                                             rel=1e-12)


def ref_hill(n: float, p: float = 0.05) -> float:
    """Hill's algorithm 396 (CACM 13(10), 1970) for the two-sided p critical value of t with
    n degrees of freedom, one value at a time as published."""
    a = 1 / (n - 0.5)
    b = 48 / (a * a)
    c = ((20700 * a / b - 98) * a - 16) * a + 96.36
    d = ((94.5 / (b + c) - 3) / b + 1) * math.sqrt(a * math.pi / 2) * n
    y = (d * p) ** (2 / n)
    if y > 0.05 + a:
        x = statistics.NormalDist().inv_cdf(p / 2)
        y = x * x
        if n < 5:
            c += 0.3 * (n - 4.5) * (x + 0.6)
        c = (((0.05 * d * x - 5) * x - 7) * x - 2) * x + b + c
        y = (((((0.4 * y + 6.3) * y + 36) * y + 94.5) / c - y - 3) / b + 1) * x
        y = math.expm1(a * y * y)
    else:
        y = (((1 / (((n + 6) / (n * y) - 0.089 * d - 0.822) * (n + 2) * 3) + 0.5 / (n + 4))
              * y - 1) * (n + 1) / (n + 2) + 1 / y)
    return math.sqrt(n * y)


def test_t_quantiles_are_hills_algorithm():
    df = np.concatenate([np.round(np.geomspace(2.0, 5000.0, 120), 2),
                         [4.0, 4.5, 4.99, 5.0, 5.01]])  # the small-df correction's edge
    got = stats.t_quantiles(df)
    assert got.tolist() == pytest.approx([ref_hill(x) for x in df], rel=1e-12)
