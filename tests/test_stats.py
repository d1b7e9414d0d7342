"""The effect intervals and verdicts (tracker/stats.py) and their columns in rules_effects.csv."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.rootdata import effects, event, sample_rows, ts, write_history, write_metrics
from tracker import stats
from tracker.contract import VERDICTS
from tracker.report import Reporter
from tracker.run import run_once
from tracker.settings import resolve
from tracker.stats import Shift, shift, shifts, t_quantile, verdict
from tracker.store import EXTRA, HEADER

N = 146  # samples in a 29 s window at 5 Hz


def ar1(rng: np.random.Generator, rho: float, n: int) -> np.ndarray:
    x = np.empty(n)
    x[0] = rng.standard_normal()
    e = rng.standard_normal(n) * math.sqrt(1 - rho * rho)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + e[t]
    return x


def windows(rng: np.random.Generator, rho: float, step: float = 0.0,
            history: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """history, pre and post windows of one AR(1) stream, 10 samples of guard between."""
    x = ar1(rng, rho, history + 2 * N + 10)
    return x[:history], x[history:history + N], x[history + N + 10:] + step


UP, DOWN, FLAT, WIDE = (Shift(0.2, 0.9, 1.0, 0), Shift(-0.9, -0.2, 1.0, 0),
                        Shift(-0.3, 0.4, 1.0, 0), Shift(-3.0, 4.0, 1.0, 0))
NONE = Shift(None, None, None, 0)


@pytest.mark.parametrize(("phase", "entropy", "creative", "risk", "expected"), [
    (UP, UP, FLAT, FLAT, "warning"),
    (FLAT, UP, FLAT, UP, "warning"),
    (UP, UP, UP, DOWN, "warning"),  # the warning pattern wins over good signs
    (UP, FLAT, FLAT, FLAT, "caution"),
    (FLAT, DOWN, FLAT, UP, "caution"),
    (UP, FLAT, UP, FLAT, "mixed"),
    (DOWN, FLAT, FLAT, UP, "mixed"),
    (DOWN, FLAT, FLAT, FLAT, "good"),
    (FLAT, UP, UP, FLAT, "good"),  # entropy up alone is no warning sign
    (FLAT, FLAT, FLAT, DOWN, "good"),
    (FLAT, FLAT, FLAT, FLAT, "no_change"),
    (FLAT, NONE, FLAT, FLAT, "no_change"),  # a signal without data does not count
    (FLAT, WIDE, FLAT, FLAT, "inconclusive"),
    (WIDE, WIDE, WIDE, WIDE, "inconclusive"),
    (FLAT, UP, DOWN, FLAT, "inconclusive"),  # entropy up and creative down: no guide sign
])
def test_each_verdict_from_the_intervals(phase, entropy, creative, risk, expected):
    assert verdict(phase, entropy, creative, risk, fewest=N, min_samples=50) == expected


def test_no_data_and_too_few_samples():
    assert verdict(NONE, NONE, NONE, NONE, fewest=None) == "no_data"
    # Both sides have samples, but too few to say how much they wander.
    assert verdict(NONE, NONE, NONE, NONE, fewest=1) == "inconclusive"
    assert verdict(UP, UP, FLAT, FLAT, fewest=49, min_samples=50) == "inconclusive"
    assert verdict(UP, UP, FLAT, FLAT, fewest=50, min_samples=50) == "warning"


def test_verdict_names_are_one_tuple_of_distinct_names():
    assert len(set(VERDICTS)) == len(VERDICTS)
    assert {"warning", "good", "no_data", "inconclusive"} <= set(VERDICTS)


def test_t_quantiles_match_the_tables():
    for df, t in ((1, 12.706), (2, 4.303), (3, 3.182), (5, 2.571), (10, 2.228), (30, 2.042),
                  (1e9, 1.960)):
        assert t_quantile(df) == pytest.approx(t, abs=2e-3)
    assert t_quantile(0.2) == t_quantile(1)  # at least one degree of freedom


def test_constant_data_gives_the_point_interval():
    same = shift([0.5] * 100, [0.5] * 100)
    assert (same.lo, same.hi, same.sd, same.glitches) == (0.0, 0.0, 0.0, 0)
    assert same.tight()
    moved = shift([0.5] * 100, [0.75] * 100)
    assert moved.lo == moved.hi == pytest.approx(0.25)
    assert moved.up()


@pytest.mark.parametrize(("n0", "n1"), [(0, 0), (0, 100), (100, 0)])
def test_no_interval_where_a_side_has_no_data(n0, n1):
    s = shift([1.0] * n0, [2.0] * n1)
    assert s.lo is None and s.hi is None


@pytest.mark.parametrize(("n0", "n1"), [(1, 1), (2, 2), (3, 3), (3, 146), (146, 2)])
def test_few_samples_give_a_wide_interval_or_none(n0, n1):
    rng = np.random.default_rng(7)
    pre, post = ar1(rng, 0.9, n0), ar1(rng, 0.9, n1) + 0.1
    s = shift(pre, post)
    d = post.mean() - pre.mean()
    if n0 == 1 and n1 == 1:
        assert s.lo is None and s.hi is None  # nothing says how far one sample wanders
        return
    assert s.lo is not None and s.hi is not None
    assert s.lo <= d <= s.hi
    # A handful of samples at 5 Hz knows little: the interval spans more than a noise sd.
    assert s.hi - s.lo > 1.0


def test_a_few_equal_samples_are_not_taken_for_a_constant_signal():
    assert shift([0.3, 0.3], [0.3, 0.3]).lo is None


def test_coverage_on_autocorrelated_noise():
    # 300 no-effect windows at rho 0.9: an interval that ignored the correlation would
    # cover 0 about half the time; bench/effect_quality.py measures it properly.
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(300):
        hist, pre, post = windows(rng, 0.9, history=2 * N)
        s = shifts(pre[None], post[None], [post.mean() - pre.mean()], hist[None])[0]
        hits += s.lo <= 0 <= s.hi
    assert 0.90 <= hits / 300 <= 0.99


def test_a_clear_shift_is_found():
    rng = np.random.default_rng(11)
    hist, pre, post = windows(rng, 0.85, step=3.0, history=2 * N)
    s = shifts(pre[None], post[None], [post.mean() - pre.mean()], hist[None])[0]
    assert s.up() and s.lo < 3.0 < s.hi


def test_a_step_inside_a_window_is_no_glitch():
    x = np.concatenate((np.zeros(70), np.full(76, 5.0))) + 0.01 * np.sin(np.arange(146))
    assert stats.screen(x[None])[1][0] == 0


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("sign", [1, -1])
def test_a_glitch_does_not_flip_the_verdict_and_is_counted(seed, sign):
    rng = np.random.default_rng(seed)
    rho = 0.95
    base = [windows(rng, rho, step=2.5 if m in (0, 1) else 0.0, history=2 * N)
            for m in range(4)]

    def read(ws):
        pre = np.array([w[1] for w in ws])
        post = np.array([w[2] for w in ws])
        plain = list(post.mean(axis=1) - pre.mean(axis=1))
        found = shifts(pre, post, plain, np.array([w[0] for w in ws]))
        return verdict(*found, fewest=N), sum(s.glitches for s in found)

    clean, none = read(base)
    # One ±8 sd spike in each of the four signals, in the middle of the post window
    glitched = []
    for hist, pre, post in base:
        post = post.copy()
        post[60] += sign * 8.0
        glitched.append((hist, pre, post))
    dirty, counted = read(glitched)
    assert dirty == clean
    assert none == 0
    assert counted == 4


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


# Few distinct values make the screened windows flat, where a glitch moves the plain Δ
# furthest outside the robust centre's interval.
values = st.one_of(st.lists(finite, max_size=60),
                   st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.0, 8.0, -8.0]), max_size=60))


@settings(max_examples=400, deadline=None)
@given(pre=values, post=values, hist=st.lists(finite, max_size=130))
@example(pre=[0.0] * 30, post=[0.0] * 29 + [8.0], hist=[])  # the glitch left out, Δ kept
def test_the_interval_contains_the_plain_delta(pre, post, hist):
    if not pre or not post:
        assert shift(pre, post).lo is None
        return
    plain = math.fsum(post) / len(post) - math.fsum(pre) / len(pre)
    h = np.array([hist], dtype=float) if hist else None
    s = shifts(np.array([pre]), np.array([post]), [plain], h)[0]
    if s.lo is not None:
        assert s.hi is not None and s.lo <= plain <= s.hi
        assert s.glitches <= len(pre) + len(post)


def run(root):
    out = io.StringIO()
    summary = run_once(resolve(str(root), env={}), Reporter(out))
    return summary


def _stream(seed: int, step: dict[int, float]):
    """Row values: AR(1) noise per signal, `step` added to signal m after t = 0."""
    rng = np.random.default_rng(seed)
    noise = {m: ar1(rng, 0.85, 5 * 140 + 1) for m in range(4)}

    def value(t: float) -> tuple[float, ...]:
        i = round((t + 100) * 5)
        return tuple(round(float(noise[m][i]) + (step.get(m, 0.0) if t > 0 else 0.0), 6)
                     for m in range(4))
    return value


def test_effect_rows_carry_the_intervals_the_verdict_and_the_glitch_count(tmp_path):
    write_metrics(tmp_path, sample_rows(-100, 40, value=_stream(1, {0: 4.0, 1: 4.0})))
    write_history(tmp_path, [event(0)])
    summary = run(tmp_path)
    (row,) = effects(tmp_path)
    for col in ("d_phase_lo", "d_phase_hi", "d_entropy_lo", "d_entropy_hi", "d_creative_lo",
                "d_creative_hi", "d_risk_lo", "d_risk_hi", "verdict", "n_glitches"):
        assert col in row and col in EXTRA
    assert HEADER.index("verdict") > HEADER.index("confounded")
    for s in ("phase", "entropy", "creative", "risk"):
        assert float(row[f"d_{s}_lo"]) <= float(row[f"d_{s}"]) <= float(row[f"d_{s}_hi"])
    assert row["verdict"] == "warning"
    assert row["n_glitches"] == "0"
    assert summary.verdicts == {"warning": 1}
    assert "verdicts: warning 1" in summary.line()


def test_a_glitch_in_the_file_is_counted_in_its_row(tmp_path):
    clean = _stream(2, {})
    rows = sample_rows(-100, 40, value=clean)
    spike = ts(10.0)
    rows = [r if not r.startswith(spike) else
            ",".join([spike, "80.0", *r.split(",")[2:]]) for r in rows]
    write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)])
    run(tmp_path)
    (row,) = effects(tmp_path)
    assert row["n_glitches"] == "1"
    assert row["verdict"] in VERDICTS


def test_no_data_on_a_side_leaves_the_intervals_empty(tmp_path):
    write_metrics(tmp_path, sample_rows(1, 40))  # nothing before the change
    write_history(tmp_path, [event(0)])
    run(tmp_path)
    (row,) = effects(tmp_path)
    assert row["d_phase_lo"] == row["d_phase_hi"] == ""
    assert row["verdict"] == "no_data"
    assert row["n_glitches"] == "0"  # no samples, no glitches


def test_an_older_file_keeps_its_header_and_stays_readable(tmp_path):
    old_header = HEADER[: HEADER.index("d_phase_lo")]
    p = tmp_path / "logs" / "rules_effects.csv"
    p.parent.mkdir(parents=True)
    p.write_text(",".join(old_header) + "\n", encoding="utf-8")
    write_metrics(tmp_path, sample_rows(-100, 40, value=_stream(3, {})))
    write_history(tmp_path, [event(0)])
    assert run(tmp_path).written == 1
    (row,) = effects(tmp_path)
    assert list(row) == old_header and row["d_phase"] != ""


def test_blanks_in_one_signal_still_give_every_interval_around_its_delta(tmp_path):
    value = _stream(4, {2: 3.0})
    rows = sample_rows(-100, 40, value=value)
    # a blank creative_band here and there: its windows are a few samples short
    rows = [",".join([*r.split(",")[:3], "", r.split(",")[4]]) if k % 37 == 0 else r
            for k, r in enumerate(rows)]
    write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)])
    run(tmp_path)
    (row,) = effects(tmp_path)
    assert int(row["n_pre_creative"]) < int(row["n_pre_phase"])
    for s in ("phase", "entropy", "creative", "risk"):
        assert float(row[f"d_{s}_lo"]) <= float(row[f"d_{s}"]) <= float(row[f"d_{s}_hi"])
    assert float(row["d_creative_lo"]) > 0  # the 3 sd rise is still found


def test_the_glitch_screen_replaces_single_samples_only():
    x = np.array([
        [0, 1, 0, 1, 20, 1, 0, 1, 0.0],  # a spike inside: its local median instead
        [5, 0, 0.1, 0, 0.1, 0, 0.1, 0, -5],  # one at each end: the median of three there
        [0, 0, 0, 0, 0, 3, 3, 3, 3.0],  # a step is no glitch
        [0, 0.1, 0, 0.1, 0, -20, 0.1, 0, 0.1],  # a dip
    ])
    clean, count = stats.screen(x)
    assert count.tolist() == [1, 2, 0, 1]
    assert clean[0].tolist() == [0, 1, 0, 1, 1, 1, 0, 1, 0]
    assert clean[1].tolist() == [0.1, 0, 0.1, 0, 0.1, 0, 0.1, 0, 0]
    assert clean[2].tolist() == x[2].tolist()
    assert clean[3, 5] == 0.0 and clean[3].tolist()[:5] == x[3].tolist()[:5]
    # Mostly constant: the median change is 0, the mean change still sees the spike.
    flat = np.ones((1, 50))
    flat[0, 20] = 8.0
    clean, count = stats.screen(flat)
    assert count.tolist() == [1] and clean.tolist() == [[1.0] * 50]
    few = np.array([[0.0, 0.0, 9.0, 0.0]])  # fewer than 5: nothing is screened
    assert stats.screen(few)[1].tolist() == [0] and stats.screen(few)[0].tolist() == few.tolist()


def test_the_variance_factor_of_a_mean_of_correlated_samples():
    r, n = 0.5, 10
    assert stats.mean_factor(np.array([0.0, r]), n) == pytest.approx(
        [1.0, (1 + r) / (1 - r) - 2 * r * (1 - r ** n) / (n * (1 - r) ** 2)])
    assert stats.mean_factor(np.array([0.3, 0.9]), 1).tolist() == [1.0, 1.0]
    capped = stats.mean_factor(np.array([0.9999]), n)
    assert capped == pytest.approx(stats.mean_factor(np.array([stats.RHO_MAX]), n))
