"""A Linear layer whose backward pass is laid out for fast weight gradients on CPU.

``Dense`` computes exactly ``x @ kernel + bias`` (same parameters, names and
initialisation as ``flax.linen.Dense`` with the original's xavier-uniform / zero
init), and its gradients are the same numbers autodiff gives. Only the weight
gradient is written differently: as ``(dy^T x)^T`` instead of ``x^T dy``. XLA:CPU
lays the contraction out so that the second operand is copied into a transposed
buffer; with this order that copy is of the layer's input, which in the MIMEx model
is the narrower side (128 wide into a 512-wide MLP layer, 64 into the 384-wide
prediction head), so far fewer bytes move. On the 2-core benchmark machine this
made the MIMEx update about a quarter faster, bit for bit the same result
(BENCHMARKS.md, "Reward model").

Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``) is not available through
this layer (it is a ``jax.custom_vjp``); reverse mode, ``jit``, ``vmap`` and
donation work as usual.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

# xavier-uniform weights and zero biases for every Linear, as the original's init.
dense_init = nn.initializers.xavier_uniform()


@jax.custom_vjp
def linear(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """``x @ kernel + bias`` over the last axis of ``x`` (see the module docstring)."""
    return x @ kernel + bias


def _linear_fwd(x: jax.Array, kernel: jax.Array, bias: jax.Array
                ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return linear(x, kernel, bias), (x, kernel)


def _linear_bwd(res: tuple[jax.Array, jax.Array], g: jax.Array
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
    x, kernel = res
    rows_x = x.reshape(-1, x.shape[-1])
    rows_g = g.reshape(-1, g.shape[-1])
    dx = (g @ kernel.T).astype(x.dtype)
    dkernel = jax.lax.dot_general(rows_g, rows_x, (((0,), (0,)), ((), ()))).T
    dbias = jnp.sum(rows_g, axis=0)
    return dx, dkernel.astype(kernel.dtype), dbias.astype(kernel.dtype)


linear.defvjp(_linear_fwd, _linear_bwd)


def dense_params(module: nn.Module, in_features: int, features: int
                 ) -> tuple[jax.Array, jax.Array]:
    """Declare (or fetch) a Linear layer's ``kernel`` [in, out] and ``bias`` [out] in ``module``."""
    kernel = module.param("kernel", dense_init, (in_features, features))
    bias = module.param("bias", nn.initializers.zeros, (features,))
    return kernel, bias


class Dense(nn.Module):
    """``flax.linen.Dense`` with xavier-uniform kernel, zero bias and :func:`linear`."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return linear(x, *dense_params(self, x.shape[-1], self.features))


class DenseParams(nn.Module):
    """A :class:`Dense` layer's parameters (same names, shapes and init), without applying it.

    For callers that need only some output columns of the layer for some rows (the
    attention layer skips the query columns of rows that only serve as keys).
    """

    features: int

    @nn.compact
    def __call__(self, in_features: int) -> tuple[jax.Array, jax.Array]:
        return dense_params(self, in_features, self.features)
