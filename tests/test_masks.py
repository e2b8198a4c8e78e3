"""Mask distributions: exact counts, uniformity (chi-square), traced ratios, bounds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mimex_jax import masks


@settings(max_examples=25, deadline=None)
@given(t=st.integers(1, 12), ratio=st.floats(0.01, 0.99), b=st.integers(1, 7),
       seed=st.integers(0, 2**31 - 1))
def test_uniform_token_masks_exact_count(t: int, ratio: float, b: int, seed: int) -> None:
    m = np.asarray(masks.uniform_token(jax.random.key(seed), (b, t), ratio))
    assert m.dtype == bool and m.shape == (b, t)
    # Exactly T - floor(T * (1 - ratio)) masked per sequence, as the original.
    assert np.all(m.sum(-1) == t - int(t * (1 - ratio)))


@pytest.mark.parametrize("t,ratio", [(5, 0.7), (5, 0.3), (10, 0.5)])
def test_uniform_token_positions_equally_likely(t: int, ratio: float) -> None:
    n = 20_000
    m = np.asarray(jax.jit(masks.uniform_token, static_argnums=1)(jax.random.key(3), (n, t),
                                                                   ratio))
    counts = m.sum(0)
    assert counts.sum() == n * (t - int(t * (1 - ratio)))
    # Chi-square goodness of fit to "every position equally likely".
    p = stats.chisquare(counts).pvalue
    assert p > 1e-3, (counts, p)


def test_uniform_token_mask_sets_equally_likely() -> None:
    # Not just marginals: every one of the C(5,1) kept-sets at T=5, ratio 0.7 appears
    # equally often, and for ratio 0.5 all C(5,2)=10 kept pairs do.
    m = np.asarray(masks.uniform_token(jax.random.key(4), (20_000, 5), 0.5))
    codes = (~m).astype(int) @ (2 ** np.arange(5))
    _, counts = np.unique(codes, return_counts=True)
    assert len(counts) == 10
    assert stats.chisquare(counts).pvalue > 1e-3


def test_traced_ratio_matches_static_ratio() -> None:
    key = jax.random.key(7)
    ratios = jnp.array([0.3, 0.5, 0.7, 0.9])
    traced = jax.vmap(lambda r: masks.uniform_token(key, (64, 5), r))(ratios)
    for i, r in enumerate([0.3, 0.5, 0.7, 0.9]):
        np.testing.assert_array_equal(traced[i], masks.uniform_token(key, (64, 5), r))


def test_bernoulli_rate_and_at_least_one_masked() -> None:
    m = np.asarray(masks.bernoulli_token(jax.random.key(0), (50_000, 4), 0.3))
    assert np.all(m.any(-1))
    # P(masked) = p + (1-p)^T / T from the "at least one" fix-up.
    expected = 0.3 + 0.7**4 / 4
    assert abs(m.mean() - expected) < 0.01


def test_element_mask_exact_count() -> None:
    m = np.asarray(masks.element(jax.random.key(0), (8, 5, 16), 0.7))
    assert m.shape == (8, 5, 16)
    assert np.all(m.sum((-2, -1)) == 80 - int(80 * 0.3))


def test_deterministic_masks() -> None:
    k = jax.random.key(0)
    last = np.asarray(masks.last_token(k, (3, 5)))
    assert last.tolist() == [[False] * 4 + [True]] * 3
    suf = np.asarray(masks.suffix(2)(k, (2, 5)))
    assert suf.tolist() == [[False] * 3 + [True] * 2] * 2
    assert np.asarray(masks.full(k, (2, 3))).all()
    assert masks.last_token.max_kept(5) == 4
    assert masks.suffix(2).max_kept(5) == 3
    assert masks.full.max_kept(5) == 0
    assert masks.uniform_token.max_kept(5, 0.7) == 1
    assert masks.uniform_token.max_kept(5, None) == 5


def test_mixture_uses_every_component() -> None:
    mix = masks.mixture([masks.last_token, masks.full], [0.25, 0.75])
    m = np.asarray(mix(jax.random.key(1), (4000, 5), 0.7))
    is_full = m.all(-1)
    is_last = (m.sum(-1) == 1) & m[:, -1]
    assert np.all(is_full | is_last)
    assert abs(is_full.mean() - 0.75) < 0.03
    assert mix.max_kept(5) == 4


def test_mask_errors() -> None:
    with pytest.raises(ValueError, match="suffix"):
        masks.suffix(0)
    with pytest.raises(ValueError, match="probs"):
        masks.mixture([masks.full, masks.last_token], [0.5, 0.6])
    with pytest.raises(ValueError, match="mask='nope' is unknown"):
        masks.get("nope")
    with pytest.raises(ValueError, match="token masks and element masks"):
        masks.mixture([masks.full, masks.element])


@pytest.mark.parametrize("seq_len,ratio", [(10, 0.9), (5, 0.8), (10, 0.8), (5, 0.2), (5, 0.7),
                                           (2, 0.5), (3, 0.6)])
def test_static_slot_bound_covers_float32_ratios(seq_len: int, ratio: float) -> None:
    """The trainer passes ratios as float32 arrays; the static encoder slot count must be
    at least the kept count that float32 arithmetic gives (else masks overflow)."""
    for r in (ratio, float(np.float32(ratio))):
        traced = int(masks.kept_count(seq_len, jnp.float32(r)))
        assert masks.uniform_token.max_kept(seq_len, r) >= traced
        assert masks.uniform_token.max_kept(seq_len, r) >= masks.kept_count(seq_len, r)
