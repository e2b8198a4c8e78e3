"""DrQ-v2's networks and augmentation as Flax modules and pure functions.

As the original (``mimex-dmc/drqv2.py``): actor and critic each start with a trunk
Linear(repr -> feature_dim) -> LayerNorm -> Tanh; the actor's policy MLP (hidden, hidden)
ends in ``tanh`` (the mean of a clipped, truncated Gaussian with a scheduled std); the
critic holds two Q MLPs on ``[trunk(h), action]``. Linear weights are orthogonal (gain 1),
biases zero (the original's ``weight_init``). LayerNorm uses PyTorch's eps 1e-5.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mimex_jax.nn.init import orthogonal


def _dense(width: int, name: str) -> nn.Dense:
    return nn.Dense(width, kernel_init=orthogonal(1.0), bias_init=nn.initializers.zeros,
                    name=name)


class Trunk(nn.Module):
    """Linear -> LayerNorm -> Tanh."""

    feature_dim: int

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        h = _dense(self.feature_dim, "linear")(h)
        return jnp.tanh(nn.LayerNorm(epsilon=1e-5, name="norm")(h))


class MLP(nn.Module):
    """Linear layers with ReLU between them (not after the last)."""

    features: Sequence[int]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, w in enumerate(self.features):
            x = _dense(w, f"dense_{i}")(x)
            if i < len(self.features) - 1:
                x = nn.relu(x)
        return x


class StateEncoder(nn.Module):
    """State observations -> features: identity with no ``hidden``, else an MLP with ReLU
    after every layer (trained by the critic loss, like the conv encoder)."""

    hidden: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32)
        if not self.hidden:
            return x
        return nn.relu(MLP(self.hidden, name="mlp")(x))


class Actor(nn.Module):
    """``h -> tanh(mean)`` of the policy, ``[..., action_dim]``."""

    action_dim: int
    feature_dim: int
    hidden_dim: int

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        z = Trunk(self.feature_dim, name="trunk")(h)
        return jnp.tanh(MLP((self.hidden_dim, self.hidden_dim, self.action_dim),
                            name="policy")(z))


class Critic(nn.Module):
    """``(h, action) -> (q1, q2)``, each ``[...]``."""

    feature_dim: int
    hidden_dim: int

    @nn.compact
    def __call__(self, h: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        z = jnp.concatenate([Trunk(self.feature_dim, name="trunk")(h), action], axis=-1)
        q1 = MLP((self.hidden_dim, self.hidden_dim, 1), name="q1")(z)[..., 0]
        q2 = MLP((self.hidden_dim, self.hidden_dim, 1), name="q2")(z)[..., 0]
        return q1, q2


def stddev(schedule: tuple[float, float, float], step: jax.Array) -> jax.Array:
    """The original's ``linear(init, final, duration)`` schedule at ``step``."""
    init, final, duration = schedule
    mix = jnp.clip(jnp.asarray(step, jnp.float32) / duration, 0.0, 1.0)
    return (1.0 - mix) * init + mix * final


def sample_action(key: jax.Array, mean: jax.Array, std: jax.Array,
                  clip: float | None, eps: float = 1e-6) -> jax.Array:
    """The original's ``TruncatedNormal.sample``: ``mean + clip(std * N(0, 1), +-clip)``,
    clamped to ``[-1 + eps, 1 - eps]`` with a straight-through gradient (the clamp passes
    gradients as the identity)."""
    noise = std * jax.random.normal(key, mean.shape, mean.dtype)
    if clip is not None:
        noise = jnp.clip(noise, -clip, clip)
    x = mean + noise
    clamped = jnp.clip(x, -1.0 + eps, 1.0 - eps)
    return x + jax.lax.stop_gradient(clamped - x)


def random_shift(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
    """DrQ's random shift: pad every image by ``pad`` (edge replication), crop back to the
    original size at a random integer offset in ``[0, 2 * pad]`` per image.

    ``images``: ``[B, H, W, C]`` (any dtype; the output keeps it). The original draws the
    same offsets through ``grid_sample`` at pixel centres, which is exactly this crop.
    Vectorised: one ``vmap``-ed ``dynamic_slice`` over the batch.
    """
    if pad == 0:
        return images
    b, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (b, 2), 0, 2 * pad + 1)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def random_shift_seq(key: jax.Array, seqs: jax.Array, pad: int) -> jax.Array:
    """:func:`random_shift` of ``[B, T, H, W, C]`` sequences with ONE offset per sequence
    (the original shifts the ``T * C``-channel stack of a sequence as one image)."""
    b, t, h, w, c = seqs.shape
    stacked = jnp.moveaxis(seqs, 1, 3).reshape(b, h, w, t * c)
    shifted = random_shift(key, stacked, pad).reshape(b, h, w, t, c)
    return jnp.moveaxis(shifted, 3, 1)
