"""Pooling rule changes (tracker.pooling) and the distributions under it, against reference
values (SciPy 1.17's chi2.sf, betainc, t.cdf and t.ppf, to the digits shown)."""

from __future__ import annotations

import math

import pytest

from tracker.distributions import beta_inc, chi2_sf, t_cdf, t_quantile
from tracker.pooling import Z95, Estimate, Pooled, differ, pool, se_from_interval


@pytest.mark.parametrize("x, df, sf", [
    (3.0, 1, 0.08326451666355042),   # odd df: erfc and the half-integer terms
    (3.0, 2, 0.22313016014842982),   # even df: the finite Poisson sum
    (7.5, 5, 0.186029833602867),
    (10.0, 4, 0.04042768199451279),
    (12.0, 6, 0.06196880441665898),
    (0.5, 2, 0.7788007830714049),  # below 1
    (0.5, 3, 0.9188914116546758),
    (230.0, 200, 0.07161185852455393),  # the last exact one
    (250.0, 220, 0.0805540616037886),  # past 200: Wilson-Hilferty
    (180.0, 220, 0.9774785965288856),
])
def test_chi2_tail_matches_the_reference(x, df, sf):
    assert chi2_sf(x, df) == pytest.approx(sf, rel=2e-3 if df > 200 else 1e-9)


def test_chi2_tail_at_and_below_zero_is_one():
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(-1.0, 2) == 1.0


@pytest.mark.parametrize("a, b, x, ref", [
    (2.5, 0.5, 0.3, 0.018927124071945658),  # x below (a+1)/(a+b+2): the fraction directly
    (2.5, 0.5, 0.9, 0.48958974456442755),   # above: by symmetry
    (1.0, 3.0, 0.2, 0.488),
    (4.0, 2.0, 0.7, 0.52822),
])
def test_incomplete_beta_matches_the_reference(a, b, x, ref):
    assert beta_inc(a, b, x) == pytest.approx(ref, rel=1e-10)


def test_incomplete_beta_keeps_its_far_upper_tail():
    # Far above the mean the direct fraction converges too slowly: the symmetric form is
    # what keeps the distance to 1 (a tail probability) right.
    assert 1 - beta_inc(20.0, 30.0, 0.8) == pytest.approx(1 - 0.9999999996563842, rel=1e-4)
    assert 1 - beta_inc(2.5, 10.0, 0.95) == pytest.approx(1 - 0.9999999999974164, rel=1e-2)


def test_incomplete_beta_is_zero_and_one_at_the_ends():
    assert beta_inc(2.0, 3.0, 0.0) == 0.0
    assert beta_inc(2.0, 3.0, -0.5) == 0.0
    assert beta_inc(2.0, 3.0, 1.0) == 1.0
    assert beta_inc(2.0, 3.0, 1.5) == 1.0


@pytest.mark.parametrize("t, df, ref", [
    (-2.0, 3, 0.06966298427942152),
    (0.5, 3, 0.6742760175759245),
    (1.5, 10, 0.9177463367772799),
    (2.0, 1, 0.8524163823495667),
    (0.0, 7, 0.5),
])
def test_t_distribution_function_matches_the_reference(t, df, ref):
    assert t_cdf(t, df) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("p, df, ref", [
    (0.975, 1, 12.706204736174694),
    (0.975, 4, 2.7764451051977934),
    (0.6, 5, 0.2671808657041451),  # below 1
    (0.995, 30, 2.7499956535672254),
])
def test_t_quantile_matches_the_reference(p, df, ref):
    assert t_quantile(p, df) == pytest.approx(ref, rel=1e-9)


def test_one_change_is_its_own_fixed_effect():
    p = pool([Estimate(2.0, 0.5)])
    assert (p.value, p.se, p.k, p.q, p.i2, p.tau2, p.p_heterogeneity) == (
        2.0, 0.5, 1, 0.0, 0.0, 0.0, 1.0)
    assert p.method == "fixed effect" and not p.random
    assert (p.lo, p.hi) == pytest.approx((2.0 - Z95 * 0.5, 2.0 + Z95 * 0.5))


def test_changes_that_agree_are_pooled_by_inverse_variance():
    # Weights 4 and 1: (4 * 1 + 1 * 3) / 5; Q = 4 * 0.4² + 1 * 1.6² = 3.2, p = 0.0736.
    # p < 0.10 would be random effects, so one more agreeing change: weights 4, 1, 4.
    p = pool([Estimate(1.0, 0.5), Estimate(3.0, 1.0), Estimate(1.0, 0.5)])
    assert p.value == pytest.approx(11 / 9)
    assert p.se == pytest.approx(math.sqrt(1 / 9))
    assert p.q == pytest.approx(8 * (2 / 9) ** 2 + (16 / 9) ** 2)
    assert p.i2 == pytest.approx(max(0.0, (p.q - 2) / p.q))
    assert p.p_heterogeneity == pytest.approx(chi2_sf(p.q, 2))
    assert p.p_heterogeneity >= 0.10 and p.method == "fixed effect" and p.crit == Z95


def test_changes_that_disagree_get_random_effects_and_a_wider_interval():
    # Equal se 1, values 0, 4, 8: Q = 32 on 2 df, tau² = (32 - 2) / (3 - 3 / 3) = 15; the
    # random-effects weights are equal again, so the value stays 4; Hartung-Knapp's
    # spread (1/16 * 32 / 2 = 1) does not lower the variance: se² = 16 / 3.
    p = pool([Estimate(0.0, 1.0), Estimate(4.0, 1.0), Estimate(8.0, 1.0)])
    assert p.random
    assert p.method == "random effects (DerSimonian-Laird, Hartung-Knapp interval)"
    assert p.q == pytest.approx(32.0)
    assert p.p_heterogeneity == pytest.approx(chi2_sf(32.0, 2))
    assert p.tau2 == pytest.approx(15.0)
    assert p.value == pytest.approx(4.0)
    assert p.se == pytest.approx(math.sqrt(16 / 3))
    assert p.crit == pytest.approx(t_quantile(0.975, 2))
    assert p.i2 == pytest.approx(30 / 32)
    fixed = pool([Estimate(4.0, 1.0)] * 3)
    assert p.hi - p.lo > 5 * (fixed.hi - fixed.lo)


def _hartung_knapp(pairs):
    """DerSimonian-Laird's tau², the random-effects value and Hartung-Knapp's spread, by the
    textbook formulas."""
    w = [1 / se ** 2 for _, se in pairs]
    fixed = sum(wi * v for wi, (v, _) in zip(w, pairs)) / sum(w)
    q = sum(wi * (v - fixed) ** 2 for wi, (v, _) in zip(w, pairs))
    tau2 = (q - (len(pairs) - 1)) / (sum(w) - sum(wi * wi for wi in w) / sum(w))
    wr = [1 / (se ** 2 + tau2) for _, se in pairs]
    value = sum(wi * v for wi, (v, _) in zip(wr, pairs)) / sum(wr)
    spread = sum(wi * (v - value) ** 2 for wi, (v, _) in zip(wr, pairs)) / (len(pairs) - 1)
    return tau2, value, spread, sum(wr)


@pytest.mark.parametrize("pairs, wider", [
    ([(0.0, 0.2), (5.0, 2.0), (9.0, 0.3), (1.0, 0.2)], False),  # spread 0.98: floored at 1
    ([(0.0, 0.1), (10.0, 3.0), (0.5, 0.1), (6.0, 0.2)], True),  # spread 2.5: widens
])
def test_the_random_effects_variance_is_hartung_knapps_never_below_dersimonian_lairds(
        pairs, wider):
    p = pool([Estimate(v, se) for v, se in pairs])
    tau2, value, spread, sw = _hartung_knapp(pairs)
    assert (spread > 1) == wider
    assert p.random and p.k == 4 and p.crit == pytest.approx(t_quantile(0.975, 3))
    assert p.tau2 == pytest.approx(tau2)
    assert p.value == pytest.approx(value)
    assert p.se == pytest.approx(math.sqrt(max(1.0, spread) / sw))


def test_two_changes_that_disagree_get_random_effects():
    # One degree of freedom: Q = 0.5 * 4² = 8, p = 0.0047.
    p = pool([Estimate(0.0, 1.0), Estimate(4.0, 1.0)])
    assert p.random and p.k == 2
    assert p.tau2 == pytest.approx(7.0)  # (8 - 1) / (2 - 2 / 2)
    assert p.crit == pytest.approx(12.706204736174694)


def test_unusable_estimates_are_left_out():
    assert pool([]) is None
    assert pool([Estimate(1.0, 0.0), Estimate(math.nan, 1.0), Estimate(1.0, math.inf)]) is None
    p = pool([Estimate(1.0, 0.0), Estimate(2.0, 1.0), Estimate(math.inf, 1.0)])
    assert (p.value, p.k) == (2.0, 1)


def test_scaled_changes_the_units_only():
    p = pool([Estimate(0.0, 1.0), Estimate(4.0, 1.0), Estimate(8.0, 1.0)])
    s = p.scaled(100.0)
    assert s == Pooled(p.value * 100, p.se * 100, p.k, p.method, p.q, p.i2, p.tau2 * 1e4,
                       p.p_heterogeneity, p.crit)
    down = p.scaled(-0.5)
    assert (down.value, down.se, down.tau2) == (-2.0, p.se * 0.5, p.tau2 * 0.25)
    assert (down.lo, down.hi) == pytest.approx((-p.hi * 0.5, -p.lo * 0.5))


def test_differ_is_the_two_sided_normal_p_value():
    a, b = Pooled(3.0, 0.6, 2, "", 0, 0, 0, 1), Pooled(2.0, 0.8, 2, "", 0, 0, 0, 1)
    assert differ(a, b) == pytest.approx(0.31731050786291415)  # |z| = 1
    assert differ(b, a) == differ(a, b)
    assert differ(a, a) == 1.0


def test_se_from_interval_is_half_the_width_over_z95():
    assert se_from_interval(1.0, 1.0 + 2 * Z95) == pytest.approx(1.0)
