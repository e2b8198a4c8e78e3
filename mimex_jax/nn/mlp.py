"""A PyTorch-``nn.Sequential``-shaped MLP in Flax (Linear, ReLU, Linear, ...).

Dense layers are named ``layers_0``, ``layers_2``, ... after their index in the
original ``nn.Sequential`` (ReLUs take the odd indices), so state_dicts load by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Init = Callable[..., jax.Array]


def torch_linear_kernel_init() -> Init:
    """PyTorch's default Linear weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_linear_bias_init(fan_in: int) -> Init:
    """PyTorch's default Linear bias init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / jnp.sqrt(jnp.asarray(fan_in, jnp.float32))

    def init(key: jax.Array, shape: Sequence[int], dtype: jnp.dtype = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchMLP(nn.Module):
    """``features[i]``-wide Linear layers with ReLU between (not after the last).

    ``kernel_init``/``bias_init`` default to PyTorch's Linear defaults; pass e.g.
    orthogonal weights and zero biases for RND.
    """

    features: Sequence[int]
    kernel_init: Init | None = None
    zero_bias: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.features):
            fan_in = x.shape[-1]
            x = nn.Dense(
                width,
                kernel_init=self.kernel_init or torch_linear_kernel_init(),
                bias_init=nn.initializers.zeros if self.zero_bias
                else torch_linear_bias_init(fan_in),
                name=f"layers_{2 * i}",
            )(x)
            if i < len(self.features) - 1:
                x = nn.relu(x)
        return x
