"""How sure an effect is: a 95% interval for each signal's shift, and the verdict read on them.

The samples of a 5 Hz control loop are strongly autocorrelated (each ~0.8-0.97 like the one
before), so a window of 145 samples carries the information of a handful of independent
ones. The interval treats each signal's noise as AR(1): its lag-1 correlation, corrected for
its small-sample bias, gives the variance of each window mean exactly for the window's length,
and a t critical value with the matching effective degrees of freedom gives the width.
Single-sample glitches are screened out first (Hampel filter around a local median), because
one ±8 sd spike inflates the variance and, worse, breaks the correlation estimate.
README "How sure is an effect" explains the method, what it assumes and when it breaks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from tracker.distributions import beta_inc

LEVEL = 0.95
HAMPEL_K = 6.0  # a sample this many robust sds from its local median is a glitch
RHO_MAX = 0.995  # beyond it a 30 s window cannot tell a mean from a random walk
RHO_PRIOR = 0.97  # assumed when a window is too short to estimate the correlation
RHO_MIN_N = 20  # samples per side below which RHO_PRIOR is used
DF_MIN = 1.0
TIGHT_SD = 1.0  # no_change: every interval within ±TIGHT_SD noise sds of 0


@dataclass(frozen=True)
class Shift:
    """One signal's interval for post − pre: lo/hi None when it cannot be given."""

    lo: float | None
    hi: float | None
    sd: float | None  # the noise sd of one sample, the scale "tight" is measured in
    glitches: int  # samples left out of the interval as single-sample glitches

    def up(self) -> bool:
        return self.lo is not None and self.lo > 0

    def down(self) -> bool:
        return self.hi is not None and self.hi < 0

    def tight(self) -> bool:
        if self.lo is None or self.hi is None or self.sd is None:
            return False
        return -TIGHT_SD * self.sd <= self.lo <= 0 <= self.hi <= TIGHT_SD * self.sd


def screen(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of x with single-sample glitches replaced by their local median, and the counts."""
    clean, bad = _screen(x)
    return clean, bad.sum(axis=1)


def _screen(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of x with glitches replaced, and where the glitches were.

    A Hampel filter over 3 samples: a glitch is further from the median of itself and its
    two neighbours (at the ends: of the first or last three) than HAMPEL_K robust sds of the
    sample-to-sample changes (1.4826 x their median absolute size), and is replaced by that
    median. A real step is followed by the local median, so it is never a glitch. Fewer
    than 5 samples: too few to tell a glitch from the signal; nothing is screened.
    """
    n = x.shape[1]
    if n < 5:
        return x, np.zeros(x.shape, dtype=bool)
    d = np.diff(x, axis=1)
    step = np.abs(d)
    half = step.shape[1] // 2  # the upper median: np.median costs more than all the rest
    scale = 1.4826 * np.partition(step, half, axis=1)[:, half:half + 1]
    # Mostly constant data has a median change of 0: the mean change still sees a spike.
    scale = np.where(scale > 0, scale, 1.2533 / (n - 1) * step.sum(axis=1, keepdims=True))
    limit = HAMPEL_K * scale
    # Inside: a sample off the median of three is a peak or a dip (the changes into and out
    # of it have opposite signs), and its distance to that median is the smaller change.
    bad = np.zeros(x.shape, dtype=bool)
    bad[:, 1:-1] = (d[:, :-1] * d[:, 1:] < 0) & (np.minimum(step[:, :-1], step[:, 1:]) > limit)
    # The ends, against the median of the first or last three samples.
    for end, three in ((0, x[:, :3]), (n - 1, x[:, -3:])):
        bad[:, end] = np.abs(x[:, end] - np.median(three, axis=1)) > limit[:, 0]
    if not bad.any():
        return x, bad
    rows, cols = np.nonzero(bad)
    clean = x.copy()
    for r, c in zip(rows.tolist(), cols.tolist()):
        lo, hi = (0, 3) if c == 0 else (n - 3, n) if c == n - 1 else (c - 1, c + 2)
        clean[r, c] = float(np.median(x[r, lo:hi]))
    return clean, bad


def mean_factor(rho: np.ndarray, n: int) -> np.ndarray:
    """n * Var(mean of n AR(1) samples) / Var(one sample), exact for finite n."""
    if n <= 1:
        return np.ones_like(rho)
    r = np.minimum(rho, RHO_MAX)
    q = 1.0 - r
    return (1.0 + r) / q - 2.0 * r * (1.0 - r ** n) / (n * q * q)


_Z_TAIL = NormalDist().inv_cdf((1.0 - LEVEL) / 2)


def t_quantile(df: float) -> float:
    """The two-sided LEVEL critical value of Student's t with df degrees of freedom."""
    return float(t_quantiles(np.array([df], dtype=float))[0])


def t_quantiles(df: np.ndarray) -> np.ndarray:
    """t_quantile of each element.

    Hill's approximation (CACM algorithm 396, 1970), within 0.5% for df >= 2; below, where
    it is worse, the t distribution itself inverted (rare: windows of a few samples).
    """
    with np.errstate(all="ignore"):  # both branches are computed; one is taken
        return _hill(np.maximum(np.nan_to_num(df, nan=DF_MIN), DF_MIN))


def _hill(df: np.ndarray) -> np.ndarray:
    p2 = 1.0 - LEVEL
    a = 1 / (df - 0.5)
    b = 48 / (a * a)
    c = ((20700 * a / b - 98) * a - 16) * a + 96.36
    d = ((94.5 / (b + c) - 3) / b + 1) * np.sqrt(a * math.pi / 2) * df
    y = (d * p2) ** (2 / df)
    x = _Z_TAIL
    c = np.where(df < 5, c + 0.3 * (df - 4.5) * (x + 0.6), c)
    c = (((0.05 * d * x - 5) * x - 7) * x - 2) * x + b + c
    z = (((((0.4 * x * x + 6.3) * x * x + 36) * x * x + 94.5) / c - x * x - 3) / b + 1) * x
    wide = np.expm1(a * z * z)
    near = (((1 / (((df + 6) / (df * y) - 0.089 * d - 0.822) * (df + 2) * 3)
              + 0.5 / (df + 4)) * y - 1) * (df + 1) / (df + 2) + 1 / y)
    t = np.sqrt(df * np.where(y > 0.05 + a, wide, near))
    for i in np.flatnonzero(df < 2).tolist():
        # Rounded down: fewer degrees of freedom, a wider interval, never a narrower one.
        t[i] = _t_quantile_exact(int(df[i] * 100))
    return t


@lru_cache(maxsize=256)
def _t_quantile_exact(df_hundredths: int) -> float:
    df = df_hundredths / 100
    tail = 1.0 - LEVEL  # two-sided: I_x(df/2, 1/2) = tail at x = df / (df + t^2)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if beta_inc(df / 2, 0.5, mid) < tail:
            lo = mid
        else:
            hi = mid
    x = (lo + hi) / 2
    return math.sqrt(df * (1 - x) / x)


def shifts(pre: np.ndarray, post: np.ndarray, plain: Sequence[float],
           history: np.ndarray | None = None) -> list[Shift]:
    """The interval of each row's post − pre; rows are signals with windows of equal length.

    pre (k x n0) and post (k x n1) hold finite values in time order; `plain` is each row's
    plain Δ (difference of the plain means), which the interval always contains. `history`
    (k x nh), the samples just before the pre window, only sharpens the estimates of the
    noise's spread and correlation: cut into windows as long as pre, each with its own mean,
    so a step or drift between them does not count as noise.
    """
    with np.errstate(all="ignore"):  # overflow near the float limit: no interval, below
        return _shifts(pre, post, plain, history)


def _demeaned(x: np.ndarray, pieces: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of x cut into `pieces` equal windows: means, sums of squares, lag-1 products."""
    w = x.reshape(x.shape[0], pieces, -1)
    mean = w.sum(axis=2) / w.shape[2]  # not .mean(): its overhead is most of the cost here
    d = w - mean[:, :, None]
    return mean, (d * d).sum(axis=2), (d[:, :, 1:] * d[:, :, :-1]).sum(axis=2)


def _shifts(pre: np.ndarray, post: np.ndarray, plain: Sequence[float],
            history: np.ndarray | None) -> list[Shift]:
    k, n0 = pre.shape
    n1 = post.shape[1]
    if n0 == 0 or n1 == 0:
        return [Shift(None, None, None, 0)] * k
    # Whole windows of history only, and only when a window is long enough to learn from.
    m = history.shape[1] // n0 if history is not None and n0 >= RHO_MIN_N else 0
    parts = [pre, post] if m == 0 else [history[:, history.shape[1] - m * n0:], pre, post]
    clean, bad = _screen(np.concatenate(parts, axis=1))
    glitches = bad[:, m * n0:].sum(axis=1)
    means0, ss0, lag0 = _demeaned(clean[:, : (m + 1) * n0], m + 1)  # history, then pre
    means1, ss1, lag1 = _demeaned(clean[:, (m + 1) * n0:], 1)
    centre = means1[:, 0] - means0[:, -1]
    plain = np.asarray(plain, dtype=float)
    ss = ss0.sum(axis=1) + ss1[:, 0]
    # Windows shorter than RHO_MIN_N are too short to estimate the correlation from.
    use0, use1 = n0 >= RHO_MIN_N, n1 >= RHO_MIN_N
    learn = use0 or use1
    lag, total = np.zeros(k), np.zeros(k)
    if use0:
        lag, total = lag + lag0.sum(axis=1), total + ss0.sum(axis=1)
    if use1:
        lag, total = lag + lag1[:, 0], total + ss1[:, 0]
    # The lag-1 autocorrelation pooled over P demeaned windows of N samples in all is
    # biased low by about (P (1 + 3 rho) + rho) / N: each window's own mean takes
    # (1 + 3 rho) / n (Marriott & Pope 1954), the ratio of sums rho / N more; solved for
    # rho. Checked by simulation for rho 0.8-0.97 and 2-6 windows of 146.
    if learn:
        p = (m + 1) * use0 + use1
        big_n = (m + 1) * n0 * use0 + n1 * use1
        r = np.where(total > 0, lag / np.where(total > 0, total, 1.0), 0.0)
        rho = np.maximum((big_n * r + p) / (big_n - 3 * p - 1), 0.0)  # capped in mean_factor
    else:
        rho = np.full(k, RHO_PRIOR)
    f0, f1 = mean_factor(rho, n0), mean_factor(rho, n1)
    # E[sum of squares about a window's mean] = var * (n - f): the mean ate f of it.
    room = (m + 1) * (n0 - f0) + (n1 - f1)
    # One sample a side says nothing of how much the signal wanders; nor do a few equal
    # ones (a long constant stretch does: then the interval is the point Δ).
    known = (room > 1e-9) & ((ss > 0) | learn)
    var = ss / np.where(known, room, 1.0)
    df = (m + 1) * (n0 - f0) / f0 + (n1 - f1) / f1
    half = t_quantiles(df) * np.sqrt(var * (f0 / n0 + f1 / n1))
    lo = np.minimum(centre - half, plain)
    hi = np.maximum(centre + half, plain)
    known &= np.isfinite(lo) & np.isfinite(hi)  # values near the float limit
    return [Shift(lo_i, hi_i, sd_i, g) if ok else Shift(None, None, None, g)
            for ok, lo_i, hi_i, sd_i, g in zip(known.tolist(), lo.tolist(), hi.tolist(),
                                                np.sqrt(var).tolist(), glitches.tolist())]


def shift(pre: Sequence[float], post: Sequence[float], plain: float | None = None) -> Shift:
    """The interval of one signal's post − pre (plain: its plain Δ, else computed here)."""
    a = np.asarray(pre, dtype=float).reshape(1, -1)
    b = np.asarray(post, dtype=float).reshape(1, -1)
    if plain is None:
        plain = float(b.mean() - a.mean()) if a.size and b.size else 0.0
    return shifts(a, b, [plain])[0]


def verdict(phase: Shift, entropy: Shift, creative: Shift, risk: Shift,
            fewest: int | None, min_samples: int = 0) -> str:
    """The interpretation guide read on the intervals (README defines each state).

    fewest: the smallest sample count on a side among the signals with data on both sides
    (None: no signal has); below min_samples the verdict is inconclusive whatever the
    intervals say.
    """
    sigs = (phase, entropy, creative, risk)
    if fewest is None:
        return "no_data"
    if fewest < min_samples or all(s.lo is None for s in sigs):
        return "inconclusive"
    warn = phase.up() or risk.up()
    good = phase.down() or risk.down() or creative.up()
    if warn and entropy.up():
        return "warning"
    if warn and good:
        return "mixed"
    if warn:
        return "caution"
    if good:
        return "good"
    if all(s.tight() for s in sigs if s.lo is not None):
        return "no_change"
    return "inconclusive"
