"""Running-mean novelty baseline: distance of a sequence to the mean of past sequences.

The reward is the squared distance of each ``[T, D]`` sequence to the running mean of
all sequences seen so far, averaged over the ``T x D`` entries (so it does not scale
with the window size), computed *before* the batch is folded into the mean. It has no
parameters to learn; it is the simplest "how unusual is this" signal and a sanity floor
for the learned bonuses.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mimex_jax.rewards.base import (
    IntrinsicReward,
    Metrics,
    PRNGKey,
    RewardBatch,
    all_finite,
    check_finite,
    guard_update,
    integral_fields,
    require_array,
    static_config,
    with_leading_axes,
)


@static_config
@dataclasses.dataclass(frozen=True)
class RunningMeanConfig:
    seq_len: int
    feature_dim: int

    def __post_init__(self) -> None:
        integral_fields(self, ("seq_len", "feature_dim"))


class RunningMeanState(NamedTuple):
    mean: jax.Array  # [T, D]
    count: jax.Array  # number of sequences folded in (float32)


def running_mean(cfg: RunningMeanConfig) -> IntrinsicReward:
    """The running-mean baseline as an :class:`IntrinsicReward` (uses ``batch.seq``)."""

    def seq_of(batch: RewardBatch) -> jax.Array:
        seq = require_array(batch, "seq", "running_mean")
        want = (cfg.seq_len, cfg.feature_dim)
        if seq.ndim != 3 or tuple(seq.shape[1:]) != want:
            raise ValueError(f"running_mean: seq shape {tuple(seq.shape)} is invalid; "
                             f"allowed: [B, {want[0]}, {want[1]}]")
        check_finite("seq", seq)
        return seq

    def init(key: PRNGKey, batch: RewardBatch | None = None) -> RunningMeanState:
        del key
        if batch is not None:
            seq_of(batch)
        return RunningMeanState(jnp.zeros((cfg.seq_len, cfg.feature_dim), jnp.float32),
                                jnp.zeros((), jnp.float32))

    def reward(state: RunningMeanState, batch: RewardBatch, key: PRNGKey) -> jax.Array:
        del key
        return jnp.mean(jnp.square(seq_of(batch) - state.mean), axis=(1, 2))

    def update(state: RunningMeanState, batch: RewardBatch, key: PRNGKey
               ) -> tuple[RunningMeanState, jax.Array, Metrics]:
        seq = seq_of(batch)
        r = reward(state, batch, key)
        n = jnp.asarray(seq.shape[0], jnp.float32)
        total = state.count + n
        mean = state.mean + (jnp.mean(seq, axis=0) - state.mean) * (n / total)
        ok = all_finite(seq)
        new = guard_update(ok, RunningMeanState(mean, total), state)
        return new, r, {"loss": jnp.mean(r), "reward_std": jnp.std(r),
                        "nonfinite_input": (~ok).astype(jnp.float32)}

    return with_leading_axes(IntrinsicReward(init, reward, update))
