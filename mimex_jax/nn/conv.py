"""A 2-D convolution whose gradients stay fast inside ``lax.scan`` on XLA:CPU.

``lax.conv_general_dilated``'s own VJP expresses the weight gradient as a convolution with
non-canonical dimension labels (``f01b_i01o->01bf``). XLA:CPU rewrites such convolutions
into its canonical NHWC/HWIO form, and then runs them through Eigen, only outside loops:
inside a ``while`` body (every ``lax.scan``: PPO's epochs x minibatches, DrQ-v2's update
loop) the rewrite does not happen and the convolution runs through a naive loop nest. On
the 2-core VM a scan of 8 gradient steps of DrQ-v2's conv encoder on 32 images of
32x32x9 took 5.7 s instead of 0.12 s (``benchmarks/conv_grad.py``).

:func:`conv2d` is the same ``VALID`` convolution with a custom VJP that writes the input
gradient as a canonical convolution and the weight gradient as matrix products (one per
kernel tap; one in all when the kernel equals the stride, as a patch embedding), so XLA has
nothing to rewrite; as a convolution the weight gradient was also XLA:CPU's slowest part
of the encoder's backward pass, outside loops too. The values equal
``lax.conv_general_dilated``'s, and so do the gradients (the same sums, up to float
rounding; tested). :class:`Conv` is a drop-in for ``flax.linen.Conv`` with
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


@functools.cache
def _conv_op(strides: tuple[int, int], padding: str | tuple, lhs_dilation: tuple[int, int]
             ) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``lax.conv_general_dilated`` (NHWC, HWIO) with a ``vmap`` rule for a member axis.

    A sweep vmaps the encoder over members with their own weights. JAX's own rule turns
    that into a grouped convolution (``feature_group_count = members``), which XLA:CPU
    runs several times slower than the members' convolutions one after another (4 members
    of DrQ-v2's encoder, 32 images of 32x32: forward 1.6x and 8 gradient steps 2.4x
    slower). The rule here: shared weights fold the member axis into the batch (one
    convolution); per-member weights loop over the members on CPU (``lax.map``) and keep
    the grouped convolution elsewhere (cuDNN runs it well).
    """
    def plain(x: jax.Array, w: jax.Array) -> jax.Array:
        return lax.conv_general_dilated(x, w, strides, padding, lhs_dilation=lhs_dilation,
                                        dimension_numbers=_DN)

    @jax.custom_batching.custom_vmap
    def op(x: jax.Array, w: jax.Array) -> jax.Array:
        return plain(x, w)

    @op.def_vmap
    def rule(axis_size: int, in_batched: list, x: jax.Array, w: jax.Array
             ) -> tuple[jax.Array, bool]:
        xb, wb = in_batched
        if not wb:  # shared weights: the members are more images
            if not xb:
                return op(x, w), False
            y = op(x.reshape(-1, *x.shape[2:]), w)
            return y.reshape(axis_size, -1, *y.shape[1:]), True
        if not xb:
            x = jnp.broadcast_to(x, (axis_size, *x.shape))
        if jax.default_backend() == "cpu":
            return lax.map(lambda a: op(*a), (x, w)), True
        return jax.vmap(plain)(x, w), True

    return op


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x: jax.Array, w: jax.Array, strides: tuple[int, int]) -> jax.Array:
    """``VALID`` convolution of ``x [B, H, W, Ci]`` with ``w [kh, kw, Ci, Co]``."""
    return _conv_op(tuple(strides), "VALID", (1, 1))(x, w)


def _fwd(x: jax.Array, w: jax.Array, strides: tuple[int, int]):
    return conv2d(x, w, strides), (x, w)


def _weight_grad(x: jax.Array, dy: jax.Array, kh: int, kw: int,
                 strides: tuple[int, int]) -> jax.Array:
    """``dw[i, j, ci, co] = sum_{b, y, x} x[b, i + s*y, j + s*x, ci] dy[b, y, x, co]`` as
    matrix products ``[N, Ci]^T @ [N, Co]`` (``N = B * H' * W'``), one per kernel tap.

    On the 2-core VM, for DrQ-v2's 32-channel 3x3 layers at 84x84 inputs and batch 256,
    these nine products were several times faster than the equivalent convolution (``x``'s
    channels as its batch, ``dy`` as an ``H' x W'`` kernel) in ad-hoc checks. A kernel equal to its
    stride (non-overlapping patches) is one product over ``kh * kw * Ci`` columns. With
    stride 1 the row offsets go onto ``dy`` (zero-padded copies, ``kh`` of them side by
    side), leaving ``kw`` products ``[B*H*W', Ci]^T @ [B*H*W', kh*Co]``: a third of the
    slices of ``x`` and wider products (``benchmarks/drqv2.py --only torch --obs pixels``
    measures the update this sits in)."""
    (sh, sw), (ho, wo, co), (b, ci) = strides, dy.shape[1:], (x.shape[0], x.shape[-1])
    if (sh, sw) == (1, 1) and x.shape[1] == ho + kh - 1:
        # Stride 1: move the row shift onto dy instead of x. ``d`` stacks the kh copies of
        # dy padded by (i, kh - 1 - i) rows, so that kernel column j is ONE product of the
        # column-shifted x (kw slices of x, not kh * kw) with all kh row offsets at once.
        d = jnp.concatenate([jnp.pad(dy, ((0, 0), (i, kh - 1 - i), (0, 0), (0, 0)))
                             for i in range(kh)], axis=-1).reshape(-1, kh * co)
        cols = [(lax.slice_in_dim(x, j, j + wo, axis=2).reshape(-1, ci).T @ d)
                .reshape(ci, kh, co) for j in range(kw)]
        return jnp.stack(cols, axis=2).transpose(1, 2, 0, 3)
    d = dy.reshape(-1, co)
    if (kh, kw) == (sh, sw):
        p = x[:, :ho * sh, :wo * sw].reshape(b, ho, sh, wo, sw, ci).transpose(0, 1, 3, 2, 4, 5)
        return (p.reshape(-1, kh * kw * ci).T @ d).reshape(kh, kw, ci, co)
    taps = [lax.slice(x, (0, i, j, 0), (b, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, ci),
                      (1, sh, sw, 1)).reshape(-1, ci).T @ d
            for i in range(kh) for j in range(kw)]
    return jnp.stack(taps).reshape(kh, kw, ci, co)


def _bwd(strides: tuple[int, int], res: tuple[jax.Array, jax.Array], dy: jax.Array):
    x, w = res
    (kh, kw), (sh, sw) = w.shape[:2], strides
    # Rows/columns the strided windows never reach: zero gradient, padded back in.
    rh, rw = (x.shape[1] - kh) % sh, (x.shape[2] - kw) % sw
    # dx: dy spread out by the stride, fully padded, against the flipped kernel with its
    # in/out channels swapped.
    w_t = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    dx = _conv_op((1, 1), ((kh - 1, kh - 1 + rh), (kw - 1, kw - 1 + rw)),
                  tuple(strides))(dy, w_t)
    return dx.astype(x.dtype), _weight_grad(x, dy, kh, kw, strides).astype(w.dtype)


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
