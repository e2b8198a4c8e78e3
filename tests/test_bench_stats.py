"""IQM and bootstrap confidence intervals of mimex_jax.bench.stats."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from mimex_jax.bench import stats


def test_iqm_known_values() -> None:
    # 5 seeds: one cut from each end -> mean of the middle three
    assert stats.iqm([0.0, 1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.0)
    # 8 seeds: two cut from each end
    assert stats.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)
    # fewer than 4: nothing is cut
    assert stats.iqm([1.0, 2.0, 6.0]) == pytest.approx(3.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40))
def test_iqm_matches_scipy_trim_mean(values: list[float]) -> None:
    assert stats.iqm(values) == pytest.approx(sps.trim_mean(values, 0.25), rel=1e-9,
                                              abs=1e-6)


def test_iqm_along_axis() -> None:
    x = np.array([[0.0, 1.0, 2.0, 3.0, 100.0], [5.0, 5.0, 5.0, 5.0, 5.0]])
    np.testing.assert_allclose(stats.iqm(x, axis=-1), [2.0, 5.0])


def test_bootstrap_ci_brackets_and_is_reproducible() -> None:
    x = [0.1, 0.4, 0.5, 0.6, 0.9]
    lo, hi = stats.bootstrap_ci(x)
    assert lo <= stats.iqm(x) <= hi
    assert min(x) <= lo < hi <= max(x)
    assert stats.bootstrap_ci(x) == (lo, hi)            # fixed generator seed
    y = np.random.default_rng(0).normal(size=30)
    assert stats.bootstrap_ci(y, seed=1) != stats.bootstrap_ci(y)   # the seed is used
    narrow = stats.bootstrap_ci(x, confidence=0.5)
    assert lo <= narrow[0] <= narrow[1] <= hi


def test_bootstrap_ci_of_constant_scores_is_a_point() -> None:
    assert stats.bootstrap_ci([3.0] * 5) == (3.0, 3.0)


def test_bootstrap_ci_coverage_on_a_known_distribution() -> None:
    # IQM of a symmetric distribution = its centre; a 95% interval from 20 samples should
    # cover it most of the time (loose bound: percentile intervals under-cover a little).
    rng = np.random.default_rng(3)
    hits = sum(lo <= 0.0 <= hi for lo, hi in
               (stats.bootstrap_ci(rng.normal(size=20), reps=2000, seed=i) for i in range(100)))
    assert hits >= 85


@pytest.mark.parametrize("bad, match", [([], "non-empty"), ([[1.0, 2.0]], "1-D"),
                                        ([1.0, float("nan")], "finite")])
def test_bootstrap_ci_rejects_bad_scores(bad, match) -> None:
    with pytest.raises(ValueError, match=match):
        stats.bootstrap_ci(bad)


def test_summarize_and_fmt() -> None:
    s = stats.summarize([0.0, 0.0, 1.0, 1.0, 1.0])
    assert s["iqm"] == pytest.approx(2 / 3) and s["n"] == 5 and s["mean"] == pytest.approx(0.6)
    assert stats.fmt(s).startswith("0.67 [")
    with pytest.raises(ValueError, match="empty"):
        stats.iqm([])


def test_prob_improvement_hand_computed() -> None:
    # x = 1 beats 0 (1 of 3); x = 2 ties 2, 2 and beats 0 (0.5 + 0.5 + 1); x = 3 beats all
    x, y = [1.0, 2.0, 3.0], [2.0, 2.0, 0.0]
    assert stats.prob_improvement(x, y) == pytest.approx((1 + 2 + 3) / 9)
    assert stats.prob_improvement(y, x) == pytest.approx(1 - 6 / 9)
    # several tasks: the mean of the per-task probabilities (runs may differ in number)
    two = stats.prob_improvement(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]),
                                 np.array([[2.0, 1.0], [2.0, 1.0], [0.0, 1.0]]))
    assert two == pytest.approx((6 / 9 + 0.0) / 2)
    assert stats.prob_improvement([5.0], [1.0, 9.0, 5.0]) == pytest.approx(1.5 / 3)


def test_prob_improvement_matches_mann_whitney_u() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, 12).astype(float), rng.integers(0, 4, 9).astype(float)
    u = sps.mannwhitneyu(x, y, alternative="two-sided").statistic  # U of x, ties as 1/2
    assert stats.prob_improvement(x, y) == pytest.approx(u / (12 * 9))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-50, 50), min_size=1, max_size=12, unique=True))
def test_prob_improvement_properties(values: list[int]) -> None:
    v = np.asarray(values, float)
    x, y = v[::2], v[1::2]
    assert stats.prob_improvement(v, v) == pytest.approx(0.5)  # identical samples
    if len(y):  # no ties between x and y: P(X > Y) + P(Y > X) = 1
        assert stats.prob_improvement(x, y) + stats.prob_improvement(y, x) == pytest.approx(1)


def test_prob_improvement_ci() -> None:
    x, y = [0.9, 0.8, 1.0, 0.7, 0.95], [0.1, 0.3, 0.0, 0.2, 0.25]
    assert stats.prob_improvement_ci(x, y, reps=2000) == (1.0, 1.0)  # X always ahead
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.0, 1.0, 10), rng.normal(0.5, 1.0, 10)
    lo, hi = stats.prob_improvement_ci(a, b, reps=4000)
    p = stats.prob_improvement(a, b)
    assert 0.0 <= lo < p < hi <= 1.0
    assert stats.prob_improvement_ci(a, b, reps=4000) == (lo, hi)  # fixed generator seed
    lo2, hi2 = stats.prob_improvement_ci(b, a, reps=4000)  # the mirror image
    assert (lo2, hi2) == pytest.approx((1 - hi, 1 - lo), abs=0.02)
    out = stats.improvement(a, b, reps=4000)
    assert (out["p"], out["ci_low"], out["ci_high"], out["n_x"]) == (p, lo, hi, 10)
    with pytest.raises(ValueError, match="same tasks"):
        stats.prob_improvement(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="finite"):
        stats.prob_improvement([np.nan], [1.0])
    with pytest.raises(ValueError, match="at least one run"):
        stats.prob_improvement([], [1.0])
