"""A 2-D convolution whose gradients stay fast inside ``lax.scan`` on XLA:CPU.

``lax.conv_general_dilated``'s own VJP expresses the weight gradient as a convolution with
non-canonical dimension labels (``f01b_i01o->01bf``). XLA:CPU rewrites such convolutions
into its canonical NHWC/HWIO form, and then runs them through Eigen, only outside loops:
inside a ``while`` body (every ``lax.scan``: PPO's epochs x minibatches, DrQ-v2's update
loop) the rewrite does not happen and the convolution runs through a naive loop nest. On
the 2-core VM a scan of 8 gradient steps of DrQ-v2's conv encoder on 32 images of
32x32x9 took 5.7 s instead of 0.12 s (``benchmarks/conv_grad.py``).

:func:`conv2d` is the same ``VALID`` convolution with a custom VJP that writes both
gradients as canonical convolutions itself (transposes outside the convolution), so XLA
has nothing to rewrite. The values equal ``lax.conv_general_dilated``'s, and so do the
gradients (the same sums; tested). :class:`Conv` is a drop-in for ``flax.linen.Conv`` with
``padding="VALID"``: the same parameter names, shapes and initial values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x: jax.Array, w: jax.Array, strides: tuple[int, int]) -> jax.Array:
    """``VALID`` convolution of ``x [B, H, W, Ci]`` with ``w [kh, kw, Ci, Co]``."""
    return lax.conv_general_dilated(x, w, strides, "VALID", dimension_numbers=_DN)


def _fwd(x: jax.Array, w: jax.Array, strides: tuple[int, int]):
    return conv2d(x, w, strides), (x, w)


def _bwd(strides: tuple[int, int], res: tuple[jax.Array, jax.Array], dy: jax.Array):
    x, w = res
    (kh, kw), (sh, sw) = w.shape[:2], strides
    # Rows/columns the strided windows never reach: zero gradient, padded back in.
    rh, rw = (x.shape[1] - kh) % sh, (x.shape[2] - kw) % sw
    # dx: dy spread out by the stride, fully padded, against the flipped kernel with its
    # in/out channels swapped.
    w_t = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    dx = lax.conv_general_dilated(dy, w_t, (1, 1), ((kh - 1, kh - 1 + rh), (kw - 1, kw - 1 + rw)),
                                  lhs_dilation=strides, dimension_numbers=_DN)
    # dw: x's channels as the batch, the batch as the features, dy (dilated by the stride)
    # as the kernel: out[ci, i, j, co] = sum_{b, y, x} x[b, i + s*y, j + s*x, ci] dy[b, y, x, co].
    dw = lax.conv_general_dilated(x.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3), (1, 1),
                                  "VALID", rhs_dilation=strides, dimension_numbers=_DN)
    dw = dw[:, :kh, :kw, :].transpose(1, 2, 0, 3)
    return dx.astype(x.dtype), dw.astype(w.dtype)


conv2d.defvjp(_fwd, _bwd)


class Conv(nn.Module):
    """``flax.linen.Conv(features, kernel_size, strides, padding="VALID")`` on :func:`conv2d`.

    Parameters ``kernel [kh, kw, Ci, Co]`` and ``bias [Co]``, as Flax's, so parameter trees,
    checkpoints and converted PyTorch weights are unchanged. Inputs ``[B, H, W, Ci]``.
    """

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] = (1, 1)
    use_bias: bool = True
    kernel_init: Callable = nn.linear.default_kernel_init
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
        y = conv2d(x, kernel.astype(x.dtype), tuple(int(s) for s in self.strides))
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,)).astype(x.dtype)
        return y
