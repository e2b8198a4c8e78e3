"""Mask distributions: pure functions ``(key, shape) -> bool mask`` (True = masked).

The MIMEx model takes its mask as data and never draws one itself, so the choice of
mask distribution -- which is what decides what "novel" means (paper, Sec. 3) -- is a
swap of one function:

* :data:`uniform_token` -- the original's exact-count token mask: per sequence keep
  ``floor(T * (1 - mask_ratio))`` tokens chosen uniformly at random, mask the rest.
* :data:`bernoulli_token` -- each token masked independently with probability
  ``mask_ratio`` (at least one token is always masked).
* :data:`element` -- the original's element-wise exact-count mask over ``T x D``
  (for the ``mask_all`` model).
* :data:`last_token` -- forward prediction (ICM-like): only the newest token masked.
* :func:`suffix` -- the newest ``k`` tokens masked.
* :data:`full` -- every token masked (prediction from positions alone; RND-like when
  ``T = 1``).
* :func:`mixture` -- per sequence, one of several distributions drawn at random.

Each distribution is a :class:`MaskDistribution`. Calling it with
``(key, shape, mask_ratio=...)`` draws a mask; ``mask_ratio`` may be a Python float or
a traced scalar, so a sweep can ``vmap`` over it. ``dist.bind(r)`` returns the plain
``(key, shape) -> mask`` function. ``dist.max_kept(T, r)`` is a static upper bound on
the number of unmasked tokens per sequence: the MIMEx encoder processes only that
many gathered slots (ARCHITECTURE.md).

Shapes are ``[..., T]`` for token masks and ``[..., T, D]`` for element masks; the
last axis (axes) are the ones masked within, all leading axes are independent
sequences.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

Ratio = float | jax.Array
SampleFn = Callable[[jax.Array, tuple[int, ...], Ratio], jax.Array]


def _is_static(x: object) -> bool:
    return isinstance(x, (int, float))


def kept_count(num: int, mask_ratio: Ratio) -> int | jax.Array:
    """Number of kept entries ``floor(num * (1 - mask_ratio))``, as the original computes it.

    A Python float gives a Python int computed in float64, exactly the original's
    ``int(L * (1 - mask_ratio))``. A traced ratio is computed in the array's dtype
    (float32 by default), which can differ from float64 only when ``num * (1 - r)``
    lies within rounding error of an integer.
    """
    if _is_static(mask_ratio):
        return int(num * (1 - mask_ratio))
    return jnp.floor(num * (1 - jnp.asarray(mask_ratio))).astype(jnp.int32)


def _ranks(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniformly random permutation ranks along the last axis (argsort of uniform noise)."""
    noise = jax.random.uniform(key, shape)
    return jnp.argsort(jnp.argsort(noise, axis=-1), axis=-1)


@dataclasses.dataclass(frozen=True)
class MaskDistribution:
    """A named mask distribution with a static bound on the kept count.

    Attributes:
      name: identifier used in configs (``mask=uniform_token``).
      sample: ``(key, shape, mask_ratio) -> bool[shape]`` (True = masked).
      kept_bound: ``(T, mask_ratio or None) -> int``, the most tokens a sequence of
        length ``T`` can keep; ``mask_ratio`` is None when it is not static.
      elementwise: True for masks over ``[T, D]`` elements rather than tokens.
    """

    name: str
    sample: SampleFn
    kept_bound: Callable[[int, float | None], int]
    elementwise: bool = False

    def __call__(
        self, key: jax.Array, shape: Sequence[int], mask_ratio: Ratio = 0.7
    ) -> jax.Array:
        shape = tuple(shape)
        mask = self.sample(key, shape, mask_ratio)
        chex.assert_shape(mask, shape)   # every distribution keeps the contract
        chex.assert_type(mask, bool)
        return mask

    def bind(self, mask_ratio: Ratio) -> Callable[[jax.Array, tuple[int, ...]], jax.Array]:
        """The ``(key, shape) -> mask`` function at a fixed ``mask_ratio``."""
        return lambda key, shape: self.sample(key, tuple(shape), mask_ratio)

    def max_kept(self, seq_len: int, mask_ratio: float | None = None) -> int:
        """Static upper bound on unmasked tokens per sequence (None = ratio not static)."""
        return int(min(seq_len, max(0, self.kept_bound(seq_len, mask_ratio))))


def _uniform_token(key: jax.Array, shape: tuple[int, ...], mask_ratio: Ratio) -> jax.Array:
    keep = kept_count(shape[-1], mask_ratio)
    return _ranks(key, shape) >= keep


def _kept_float32(num: int, mask_ratio: float) -> int:
    """``kept_count`` as a traced float32 ratio computes it (numpy float32 arithmetic)."""
    one, r = np.float32(1.0), np.float32(mask_ratio)
    return int(np.floor(np.float32(num) * (one - r)))


def _uniform_bound(seq_len: int, mask_ratio: float | None) -> int:
    # The trainer and sweeps pass the ratio as a float32 array, whose kept count can be one
    # more than the float64 one (T=10, 0.9: float64 keeps 0, float32 keeps 1); cover both.
    if mask_ratio is None:
        return seq_len
    return max(int(kept_count(seq_len, mask_ratio)), _kept_float32(seq_len, mask_ratio))


uniform_token = MaskDistribution("uniform_token", _uniform_token, _uniform_bound)


def _bernoulli_token(key: jax.Array, shape: tuple[int, ...], mask_ratio: Ratio) -> jax.Array:
    k_draw, k_fix = jax.random.split(key)
    mask = jax.random.bernoulli(k_draw, jnp.asarray(mask_ratio, jnp.float32), shape)
    # Guarantee a masked token (the loss is an average over masked tokens): where a
    # sequence drew none, mask one position chosen uniformly.
    fallback = _ranks(k_fix, shape) == 0
    none_masked = ~jnp.any(mask, axis=-1, keepdims=True)
    return mask | (none_masked & fallback)


bernoulli_token = MaskDistribution(
    "bernoulli_token", _bernoulli_token, lambda seq_len, _: seq_len - 1
)


def _element(key: jax.Array, shape: tuple[int, ...], mask_ratio: Ratio) -> jax.Array:
    if len(shape) < 2:
        raise ValueError(f"element mask: shape must be [..., T, D], got {shape}")
    *lead, t, d = shape
    keep = kept_count(t * d, mask_ratio)
    return (_ranks(key, (*lead, t * d)) >= keep).reshape(shape)


element = MaskDistribution("element", _element, lambda seq_len, _: seq_len, elementwise=True)


def _last_token(key: jax.Array, shape: tuple[int, ...], mask_ratio: Ratio) -> jax.Array:
    del key, mask_ratio
    return jnp.broadcast_to(jnp.arange(shape[-1]) == shape[-1] - 1, shape)


last_token = MaskDistribution("last_token", _last_token, lambda seq_len, _: seq_len - 1)


def suffix(k: int) -> MaskDistribution:
    """Mask the newest ``k`` tokens of every sequence (``k >= 1``)."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"suffix: k={k!r} is invalid; allowed: an integer >= 1")

    def sample(key: jax.Array, shape: tuple[int, ...], mask_ratio: Ratio) -> jax.Array:
        del key, mask_ratio
        return jnp.broadcast_to(jnp.arange(shape[-1]) >= shape[-1] - k, shape)

    return MaskDistribution(f"suffix_{k}", sample, lambda seq_len, _: seq_len - k)


def _full(key: jax.Array, shape: tuple[int, ...], mask_ratio: Ratio) -> jax.Array:
    del key, mask_ratio
    return jnp.ones(shape, dtype=bool)


full = MaskDistribution("full", _full, lambda seq_len, _: 0)


def mixture(
    components: Sequence[MaskDistribution], probs: Sequence[float] | None = None
) -> MaskDistribution:
    """Per sequence, draw one component (with ``probs``, uniform by default) and use its mask."""
    components = tuple(components)
    if not components:
        raise ValueError("mixture: components is empty; allowed: one or more MaskDistribution")
    if any(c.elementwise != components[0].elementwise for c in components):
        raise ValueError("mixture: cannot mix token masks and element masks")
    if probs is None:
        probs = [1.0 / len(components)] * len(components)
    probs = [float(p) for p in probs]
    if len(probs) != len(components) or any(p < 0 for p in probs) or not math.isclose(
        sum(probs), 1.0, rel_tol=1e-6
    ):
        raise ValueError(
            f"mixture: probs={probs} is invalid; allowed: {len(components)} non-negative "
            "numbers summing to 1"
        )
    logits = jnp.log(jnp.asarray(probs, jnp.float32))
    n_axes = 2 if components[0].elementwise else 1

    def sample(key: jax.Array, shape: tuple[int, ...], mask_ratio: Ratio) -> jax.Array:
        k_pick, *k_comp = jax.random.split(key, len(components) + 1)
        masks = jnp.stack(
            [c.sample(k, shape, mask_ratio) for c, k in zip(components, k_comp, strict=True)]
        )
        choice = jax.random.categorical(k_pick, logits, shape=shape[: len(shape) - n_axes])
        choice = choice.reshape(choice.shape + (1,) * n_axes)
        return jnp.take_along_axis(masks, choice[None], axis=0)[0]

    def bound(seq_len: int, mask_ratio: float | None) -> int:
        return max(c.max_kept(seq_len, mask_ratio) for c in components)

    name = "mixture(" + ",".join(c.name for c in components) + ")"
    return MaskDistribution(name, sample, bound, elementwise=components[0].elementwise)


REGISTRY: dict[str, MaskDistribution] = {
    d.name: d for d in (uniform_token, bernoulli_token, element, last_token, full)
}


def get(name: str) -> MaskDistribution:
    """Look up a mask distribution by name (``suffix_<k>`` builds :func:`suffix`)."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith("suffix_") and name[7:].isdigit():
        return suffix(int(name[7:]))
    raise ValueError(
        f"mask={name!r} is unknown; allowed: {sorted(REGISTRY)} or 'suffix_<k>'"
    )
