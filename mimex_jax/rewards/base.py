"""The intrinsic-reward interface, in the style of optax's ``GradientTransformation``.

An :class:`IntrinsicReward` is three pure functions over pytrees::

    state = reward_fn.init(key, batch)
    r = reward_fn.reward(state, batch, key)                 # [B], no state change
    state, r, metrics = reward_fn.update(state, batch, key)  # r = pre-update loss

``update`` returns as rewards the per-sample losses computed *before* the gradient
step, exactly as the original implementation does (the model scores the batch, then
trains on it). A user of another JAX codebase imports one constructor and calls these
three functions; nothing is hidden in global state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PRNGKey = jax.Array
Metrics = dict[str, jax.Array]
RewardState = Any


class RewardBatch(NamedTuple):
    """What a reward model sees for ``B`` samples.

    Attributes:
      seq: ``[B, T, D]`` sequences of observation embeddings (newest last). Required
        by MIMEx and the running-mean baseline.
      obs: ``[B, D]`` observations (RND, ICM). RND falls back to ``seq[:, -1]``.
      next_obs: ``[B, D]`` next observations (ICM).
      action: ``[B, A]`` float actions, or ``[B]`` int actions for discrete ICM.
    """

    seq: jax.Array | None = None
    obs: jax.Array | None = None
    next_obs: jax.Array | None = None
    action: jax.Array | None = None


class IntrinsicReward(NamedTuple):
    """``init(key, batch) -> state``; ``reward(state, batch, key) -> [B]``;
    ``update(state, batch, key) -> (state, rewards [B], metrics)``."""

    init: Callable[[PRNGKey, RewardBatch], RewardState]
    reward: Callable[[RewardState, RewardBatch, PRNGKey], jax.Array]
    update: Callable[[RewardState, RewardBatch, PRNGKey], tuple[RewardState, jax.Array, Metrics]]


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values we can inspect now (not a tracer inside jit/vmap)."""
    return not isinstance(x, jax.core.Tracer)


def check_finite(name: str, x: jax.Array | None) -> None:
    """Raise ValueError if a concrete input holds NaN or inf (no-op under tracing)."""
    if x is None or not is_concrete(x):
        return
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name}: {bad} non-finite value(s) (NaN or inf) in the input; intrinsic rewards "
            "need finite inputs"
        )


def all_finite(*xs: jax.Array | None) -> jax.Array:
    """Traceable flag: every floating entry of the given arrays is finite.

    ``sum(x * 0)`` is 0 for finite ``x`` and NaN as soon as one entry is NaN or inf; it
    fuses into one reduction instead of materialising a boolean array of ``x``'s size.
    """
    flags = [
        jnp.isfinite(jnp.sum(x * 0))
        for x in xs
        if x is not None and jnp.issubdtype(x.dtype, jnp.floating)
    ]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def guard_update(ok: jax.Array, new_state: Any, old_state: Any) -> Any:
    """Keep ``old_state`` where ``ok`` is False, so non-finite input cannot corrupt params.

    Inside jit the input cannot be rejected with an exception; instead the step is
    skipped and ``metrics['nonfinite_input']`` reports it (the trainer raises on it
    between chunks).
    """
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new_state, old_state)


def require(field: str, value: Any, ok: bool, allowed: str) -> None:
    """Raise ``ValueError('<field>=<value> is invalid; allowed: <allowed>')`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{field}={value!r} is invalid; allowed: {allowed}")


def require_array(batch: RewardBatch, field: str, who: str) -> jax.Array:
    x = getattr(batch, field)
    if x is None:
        raise ValueError(f"{who}: RewardBatch.{field} is required but was None")
    return x


def none() -> IntrinsicReward:
    """No intrinsic reward: zeros, empty state. The PPO-without-bonus baseline."""

    def _batch_size(batch: RewardBatch) -> int:
        for x in batch:
            if x is not None:
                return x.shape[0]
        raise ValueError("none(): RewardBatch has no arrays to take the batch size from")

    def init(key: PRNGKey, batch: RewardBatch) -> tuple[()]:
        del key, batch
        return ()

    def reward(state: Any, batch: RewardBatch, key: PRNGKey) -> jax.Array:
        del state, key
        return jnp.zeros((_batch_size(batch),), jnp.float32)

    def update(state: Any, batch: RewardBatch, key: PRNGKey):
        return state, reward(state, batch, key), {}

    return IntrinsicReward(init, reward, update)
