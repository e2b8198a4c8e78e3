"""Running-std normalisation (optionally centring) of intrinsic rewards, as a wrapper
around any reward.

Off by default (the original feeds raw MIMEx losses into the return). Wrapping divides
rewards by the running standard deviation of all rewards seen so far (parallel-variance
merge per batch, as in RND's reward normalisation), which keeps ``k_expl`` meaningful
across tasks whose raw losses differ in scale.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mimex_jax.rewards.base import (
    IntrinsicReward,
    Metrics,
    PRNGKey,
    RewardBatch,
    with_leading_axes,
)


class RunningStats(NamedTuple):
    mean: jax.Array
    var: jax.Array
    count: jax.Array


def init_stats(shape: tuple[int, ...] = ()) -> RunningStats:
    """Running statistics of mean 0, variance 1 and a tiny prior count."""
    return RunningStats(jnp.zeros(shape), jnp.ones(shape), jnp.asarray(1e-4, jnp.float32))


def update_stats(stats: RunningStats, x: jax.Array, axis: int | None = None) -> RunningStats:
    """Merge a batch into running mean/var (Chan et al. parallel algorithm).

    ``axis=None`` pools every entry (scalar statistics); ``axis=0`` keeps per-feature
    statistics of ``[B, D]`` data.
    """
    n = jnp.asarray(x.size if axis is None else x.shape[axis], jnp.float32)
    b_mean, b_var = jnp.mean(x, axis=axis), jnp.var(x, axis=axis)
    total = stats.count + n
    delta = b_mean - stats.mean
    mean = stats.mean + delta * n / total
    m2 = stats.var * stats.count + b_var * n + jnp.square(delta) * stats.count * n / total
    return RunningStats(mean, m2 / total, total)


class NormalizedState(NamedTuple):
    inner: Any
    stats: RunningStats


CENTERINGS = ("none", "running", "batch")


def normalize_rewards(inner: IntrinsicReward, eps: float = 1e-8, center: str = "none"
                      ) -> IntrinsicReward:
    """Wrap ``inner`` so rewards are divided by the running std of its raw rewards.

    ``center`` also shifts the bonus to mean ~0, so it is positive on inputs less familiar
    than average and negative on more familiar ones. A reconstruction or prediction loss
    has a large floor (its mean is many times its std), so the merely divided bonus is a big
    positive constant on every step, which in an episodic task pays the policy for not
    ending episodes; centring removes that constant and keeps the ranking by novelty.

    - ``"none"``: no shift;
    - ``"running"``: minus the running mean of all raw rewards so far (it lags a loss that
      drifts: a falling loss leaves the bonus negative on average, a rising one positive);
    - ``"batch"``: minus the mean of the batch being scored (exactly zero-mean per batch,
      whatever the drift; a batch of one input always scores 0).
    """
    if center not in CENTERINGS:
        raise ValueError(f"center={center!r} is invalid; allowed: {list(CENTERINGS)}")

    def scale(raw: jax.Array, stats: RunningStats) -> jax.Array:
        shift = {"none": 0.0, "running": stats.mean, "batch": jnp.mean(raw)}[center]
        return (raw - shift) / jnp.sqrt(stats.var + eps)

    def init(key: PRNGKey, batch: RewardBatch | None = None) -> NormalizedState:
        return NormalizedState(inner.init(key, batch), init_stats())

    def reward(state: NormalizedState, batch: RewardBatch, key: PRNGKey) -> jax.Array:
        return scale(inner.reward(state.inner, batch, key), state.stats)

    def update(state: NormalizedState, batch: RewardBatch, key: PRNGKey
               ) -> tuple[NormalizedState, jax.Array, Metrics]:
        inner_state, raw, metrics = inner.update(state.inner, batch, key)
        stats = update_stats(state.stats, raw)
        metrics = {**metrics, "raw_reward_mean": jnp.mean(raw),
                   "reward_running_std": jnp.sqrt(stats.var)}
        return NormalizedState(inner_state, stats), scale(raw, stats), metrics

    return with_leading_axes(IntrinsicReward(init, reward, update))
