"""Visual encoders: image observations -> feature vectors for agents and bonuses.

``ConvEncoder`` is DrQ-v2's encoder (the original ``mimex-dmc``): pixels scaled to
``[-0.5, 0.5]``, four 3x3 convolutions with 32 channels (stride 2, then 1, 1, 1), ReLU
after each, flattened. Weights are orthogonal with the ReLU gain sqrt(2), biases zero, as
the original's ``weight_init``. Images are channels-last ``[..., H, W, C]`` with stacked
frames along ``C`` (JAX's native convolution layout), usually ``uint8``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mimex_jax.nn.init import orthogonal


def conv_output_hw(height: int, width: int, strides: Sequence[int] = (2, 1, 1, 1),
                   kernel: int = 3) -> tuple[int, int]:
    """Spatial size after the ``VALID`` convolutions of :class:`ConvEncoder`."""
    for s in strides:
        height = (height - kernel) // s + 1
        width = (width - kernel) // s + 1
    return height, width


class ConvEncoder(nn.Module):
    """DrQ-v2's conv encoder: ``[..., H, W, C]`` images -> ``[..., repr_dim]`` features.

    ``repr_dim = channels * h' * w'`` (32 * 35 * 35 = 39200 for 84x84 inputs, as the
    original). Any leading axes are kept.
    """

    channels: int = 32
    strides: tuple[int, ...] = (2, 1, 1, 1)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        if obs.ndim < 3:
            raise ValueError(f"ConvEncoder: input shape {obs.shape} is invalid; allowed: "
                             "[..., H, W, C]")
        lead = obs.shape[:-3]
        x = obs.reshape((-1,) + obs.shape[-3:]).astype(jnp.float32) / 255.0 - 0.5
        for i, s in enumerate(self.strides):
            x = nn.Conv(self.channels, (3, 3), strides=(s, s), padding="VALID",
                        kernel_init=orthogonal(math.sqrt(2.0)),
                        bias_init=nn.initializers.zeros, name=f"conv_{i}")(x)
            x = nn.relu(x)
        return x.reshape(lead + (-1,))

    def repr_dim(self, height: int, width: int) -> int:
        """Width of the flattened features for ``height x width`` images."""
        h, w = conv_output_hw(height, width, self.strides)
        return self.channels * h * w


class FrozenConvEncoder(ConvEncoder):
    """:class:`ConvEncoder` frozen at its random initialisation (the cheap baseline).

    Its output is wrapped in ``stop_gradient``, so no loss ever updates its weights (they
    stay in the parameter tree with zero gradients).
    """

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jax.lax.stop_gradient(super().__call__(obs))


ENCODERS = {"conv": ConvEncoder, "random_conv": FrozenConvEncoder}


def make_encoder(kind: str, **kwargs) -> nn.Module:
    """The image encoder of kind ``kind`` (one of :data:`ENCODERS`)."""
    if kind not in ENCODERS:
        raise ValueError(f"encoder={kind!r} is invalid; allowed: {sorted(ENCODERS)}")
    return ENCODERS[kind](**kwargs)
