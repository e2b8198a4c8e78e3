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

import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

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
    """``init(key, batch=None) -> state``; ``reward(state, batch, key) -> [...]``;
    ``update(state, batch, key) -> (state, rewards [...], metrics)``.

    The config fixes every shape, so ``init`` needs no batch (one given is validated).
    Batches may have any leading axes (``seq [..., T, D]``); rewards have that shape.
    """

    init: Callable[..., RewardState]
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


def integral(field: str, value: Any, minimum: int = 1) -> int:
    """``value`` as a Python ``int`` if it is an integer ``>= minimum`` of any integral type.

    Accepts Python, NumPy and concrete 0-d JAX integers (gymnax and Brax report sizes as
    NumPy ints); refuses bools, floats and everything else with a ``ValueError`` that names
    the type received.
    """
    v = value
    if isinstance(v, (np.ndarray, jax.Array)) and not isinstance(v, jax.core.Tracer) \
            and v.ndim == 0 and np.issubdtype(v.dtype, np.integer):
        v = v.item()
    if isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) \
            and int(v) >= minimum:
        return int(v)
    raise ValueError(f"{field}={value!r} is invalid; allowed: an integer >= {minimum} "
                     f"(got {type(value).__module__}.{type(value).__qualname__})")


def integral_fields(cfg: Any, fields: Sequence[str], minimum: int = 1) -> None:
    """In a frozen dataclass's ``__post_init__``: check and store ``fields`` as ``int``."""
    for f in fields:
        object.__setattr__(cfg, f, integral(f, getattr(cfg, f), minimum))


C = TypeVar("C")


def static_config(cls: type[C]) -> type[C]:
    """Register a frozen config dataclass as a *static* pytree (no leaves).

    ``jax.jit(f)(params, cfg, x)`` then works as written: the config travels in the
    treedef (it is hashable), so it is a compile-time constant, not a traced argument.
    """
    jax.tree_util.register_static(cls)
    return cls


def _leading(batch: RewardBatch) -> tuple[int, ...]:
    if batch.seq is not None:
        return tuple(batch.seq.shape[:-2])
    if batch.obs is not None:
        return tuple(batch.obs.shape[:-1])
    return ()


def _flatten(batch: RewardBatch, lead: tuple[int, ...]) -> RewardBatch:
    n = len(lead)

    def flat(x: jax.Array | None, event: int) -> jax.Array | None:
        if x is None:
            return None
        if x.ndim < n or tuple(x.shape[:n]) != lead:
            raise ValueError(f"RewardBatch: an array of shape {tuple(x.shape)} does not share "
                             f"the batch's leading axes {lead}")
        return x.reshape((-1,) + x.shape[n:]) if x.ndim - n >= event else x.reshape(-1)

    return RewardBatch(seq=flat(batch.seq, 2), obs=flat(batch.obs, 1),
                       next_obs=flat(batch.next_obs, 1), action=flat(batch.action, 1))


def with_leading_axes(fn: IntrinsicReward) -> IntrinsicReward:
    """Let ``fn`` take batches with any leading axes: ``seq [..., T, D]``, ``obs [..., D]``.

    Rewards come back with the same leading shape (``[steps, envs]`` for a rollout, ``()``
    for one sequence). The wrapped functions see ``[B, ...]`` with ``B`` the product of
    the leading axes; ``[B, ...]`` input passes through unchanged.
    """

    def init(key: PRNGKey, batch: RewardBatch | None = None) -> RewardState:
        if batch is None:
            return fn.init(key, None)
        return fn.init(key, _flatten(batch, _leading(batch)))

    def reward(state: RewardState, batch: RewardBatch, key: PRNGKey) -> jax.Array:
        lead = _leading(batch)
        if len(lead) == 1:
            return fn.reward(state, batch, key)
        return fn.reward(state, _flatten(batch, lead), key).reshape(lead)

    def update(state: RewardState, batch: RewardBatch, key: PRNGKey
               ) -> tuple[RewardState, jax.Array, Metrics]:
        lead = _leading(batch)
        if len(lead) == 1:
            return fn.update(state, batch, key)
        state, r, metrics = fn.update(state, _flatten(batch, lead), key)
        return state, r.reshape(lead), metrics

    return IntrinsicReward(init, reward, update)


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

    def init(key: PRNGKey, batch: RewardBatch | None = None) -> tuple[()]:
        del key, batch
        return ()

    def reward(state: Any, batch: RewardBatch, key: PRNGKey) -> jax.Array:
        del state, key
        return jnp.zeros((_batch_size(batch),), jnp.float32)

    def update(state: Any, batch: RewardBatch, key: PRNGKey):
        return state, reward(state, batch, key), {}

    return with_leading_axes(IntrinsicReward(init, reward, update))
