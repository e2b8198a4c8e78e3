"""mimex_jax.nn.conv: lax's convolution values and gradients, flax's parameters, and no
non-canonical convolution left inside a scanned gradient (the XLA:CPU slow path)."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from mimex_jax.nn.conv import Conv, conv2d
from mimex_jax.nn.encoders import ConvEncoder


def _lax_conv(x, w, strides):
    return lax.conv_general_dilated(x, w, strides, "VALID",
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("hw,kernel,strides,ci,co", [
    ((9, 9), (3, 3), (2, 2), 4, 5),   # stride 2, windows reach the last row
    ((10, 11), (3, 3), (2, 2), 3, 4),  # stride 2 with rows the windows never reach
    ((7, 8), (2, 3), (1, 3), 2, 3),   # non-square kernel, mixed strides
    ((8, 8), (4, 4), (4, 4), 3, 6),   # patch embedding (kernel = stride)
    ((7, 9), (2, 3), (1, 1), 3, 4),   # stride 1: row offsets moved onto dy
    ((6, 6), (3, 3), (1, 1), 5, 2),   # stride 1, square (DrQ-v2's layers 2-4)
])
def test_values_and_gradients_equal_lax(hw, kernel, strides, ci, co) -> None:
    kx, kw, kc = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (2, *hw, ci))
    w = jax.random.normal(kw, (*kernel, ci, co))
    y = _lax_conv(x, w, strides)
    cot = jax.random.normal(kc, y.shape)

    def loss(fn):
        return jax.jit(jax.grad(lambda x, w: jnp.sum(fn(x, w, strides) * cot), argnums=(0, 1)))

    np.testing.assert_allclose(conv2d(x, w, strides), y, rtol=1e-6, atol=1e-6)
    (dx, dw), (rx, rw) = loss(conv2d)(x, w), loss(_lax_conv)(x, w)
    np.testing.assert_allclose(dx, rx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, rw, rtol=1e-5, atol=1e-5)
    # vmapped over a leading axis: each member's own gradient
    xs = jnp.stack([x, 2.0 * x])
    dxs, dws = jax.vmap(loss(conv2d), in_axes=(0, None))(xs, w)
    np.testing.assert_allclose(dws[1], loss(_lax_conv)(2.0 * x, w)[1], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dxs[0], rx, rtol=1e-5, atol=1e-5)


def test_module_has_flax_conv_parameters_and_outputs() -> None:
    x = jax.random.normal(jax.random.key(0), (2, 11, 11, 5))
    kw = dict(strides=(2, 2), bias_init=nn.initializers.normal(1.0))
    ours, theirs = Conv(7, (3, 3), **kw), nn.Conv(7, (3, 3), padding="VALID", **kw)
    p, q = ours.init(jax.random.key(1), x), theirs.init(jax.random.key(1), x)
    assert jax.tree.structure(p) == jax.tree.structure(q)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours.apply(p, x), theirs.apply(q, x), rtol=1e-6, atol=1e-6)


def test_scanned_encoder_gradient_has_only_canonical_convolutions() -> None:
    """Every convolution of a scanned ConvEncoder gradient is NHWC x HWIO -> NHWC, the form
    XLA:CPU runs through Eigen (lax's own VJP leaves ``f01b_i01o->01bf`` ones in the loop),
    and the weight gradients are matrix products, not convolutions."""
    enc = ConvEncoder(channels=4)
    xs = jnp.zeros((2, 3, 20, 20, 3), jnp.uint8)
    params = enc.init(jax.random.key(0), xs[0])

    def steps(p, xs):
        def body(p, x):
            g = jax.grad(lambda p: jnp.mean(enc.apply(p, x) ** 2))(p)
            return jax.tree.map(lambda a, b: a - 0.1 * b, p, g), None
        return lax.scan(body, p, xs)[0]

    hlo = jax.jit(steps).lower(params, xs).compile().as_text()
    labels = re.findall(r"convolution\(.*dim_labels=(\S+?)[,\s]", hlo)
    # forward of 4 layers, input gradient of 3 (x is data); weight gradients are dots
    assert len(labels) == 4 + 3
    assert set(labels) == {"b01f_01io->b01f"}, sorted(set(labels))


@pytest.mark.parametrize("axes", [(0, 0), (None, 0), (0, None), (None, None)])
@pytest.mark.parametrize("backend_cpu", [True, False])
def test_member_vmap_rule_equals_each_member(axes, backend_cpu, monkeypatch) -> None:
    """A sweep vmaps the encoder over members with their own weights: the custom rule
    (fold shared weights into the batch; loop over per-member weights on CPU, grouped
    convolution elsewhere) gives each member's own values and gradients, nested too."""
    if not backend_cpu:  # the non-CPU branch, traced and run here on CPU
        monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    strides = (2, 1)
    kx, kw, kc = jax.random.split(jax.random.key(1), 3)
    xs = jax.random.normal(kx, (3, 2, 9, 8, 3))
    ws = jax.random.normal(kw, (3, 3, 2, 3, 4))
    cot = jax.random.normal(kc, (3, 2, 4, 7, 4))
    ax, aw = axes
    x_in = xs if ax == 0 else xs[0]
    w_in = ws if aw == 0 else ws[0]

    def value_and_grads(x, w, c):
        y, vjp = jax.vjp(lambda x, w: conv2d(x, w, strides), x, w)
        return (y, *vjp(c))

    got = jax.jit(jax.vmap(value_and_grads, in_axes=(ax, aw, 0)))(x_in, w_in, cot)
    for m in range(3):
        x, w = xs[m] if ax == 0 else xs[0], ws[m] if aw == 0 else ws[0]
        y, vjp = jax.vjp(lambda x, w: _lax_conv(x, w, strides), x, w)
        want = (y, *vjp(cot[m]))
        for g, r in zip(got, want, strict=True):
            np.testing.assert_allclose(g[m], r, rtol=1e-5, atol=1e-4)
    # nested sweeps (settings x seeds) reach the rule twice
    nested = jax.jit(jax.vmap(jax.vmap(lambda x, w: conv2d(x, w, strides))))
    y = nested(xs.reshape(3, 1, 2, 9, 8, 3), ws.reshape(3, 1, 3, 2, 3, 4))
    for m in range(3):
        np.testing.assert_allclose(y[m, 0], _lax_conv(xs[m], ws[m], strides), rtol=1e-5,
                                   atol=1e-5)
