"""Distribution functions the statistics need (Student's t, chi-squared), in plain Python:
numpy has none and scipy would be a dependency for three functions."""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-squared with integer df (exact sums; Wilson-Hilferty past 200)."""
    if x <= 0:
        return 1.0
    if df > 200:
        c = 2 / (9 * df)
        return 1 - _NORMAL.cdf(((x / df) ** (1 / 3) - (1 - c)) / math.sqrt(c))
    half = x / 2
    log_half = math.log(half)
    if df % 2 == 0:
        terms = range(df // 2)  # exp(-x/2) (x/2)^j / j!
        total = sum(math.exp(j * log_half - math.lgamma(j + 1) - half) for j in terms)
    else:
        total = math.erfc(math.sqrt(half)) + sum(
            math.exp((j - 0.5) * log_half - math.lgamma(j + 0.5) - half)
            for j in range(1, (df + 1) // 2))
    return min(1.0, total)


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-14:
            break
    return h


def beta_inc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def t_cdf(t: float, df: int) -> float:
    tail = 0.5 * beta_inc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def t_quantile(p: float, df: int) -> float:
    """The p quantile (p > 0.5) of Student's t, by bisection on its distribution function."""
    lo, hi = 0.0, 1e4
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2
