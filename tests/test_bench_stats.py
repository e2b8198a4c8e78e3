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
