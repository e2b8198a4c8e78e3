"""mimex_jax.nn.dense: same function, parameters and gradients as flax's Dense."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimex_jax.nn.dense import Dense, dense_init, linear


def _reference(features: int) -> nn.Dense:
    return nn.Dense(features, kernel_init=dense_init, bias_init=nn.initializers.zeros)


@pytest.mark.parametrize("shape", [(7,), (6, 5), (3, 4, 5)])
def test_same_params_outputs_and_gradients_as_flax_dense(shape: tuple[int, ...]) -> None:
    x = jax.random.normal(jax.random.key(0), shape)
    ours, ref = Dense(9), _reference(9)
    p = ours.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, p) == jax.tree.map(jnp.shape, ref.init(jax.random.key(1), x))
    np.testing.assert_array_equal(p["params"]["kernel"],
                                  ref.init(jax.random.key(1), x)["params"]["kernel"])
    p = jax.tree.map(lambda a: a + 0.1, p)  # non-zero bias too
    np.testing.assert_allclose(ours.apply(p, x), ref.apply(p, x), rtol=1e-6, atol=1e-6)

    def loss(module, params, x):
        y = module.apply(params, x)
        return jnp.sum(jnp.sin(y) * y)

    g_ours = jax.grad(lambda q, v: loss(ours, q, v), argnums=(0, 1))(p, x)
    g_ref = jax.grad(lambda q, v: loss(ref, q, v), argnums=(0, 1))(p, x)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_jit_and_vmap_of_the_gradient() -> None:
    x = jax.random.normal(jax.random.key(0), (4, 6, 3))  # 4 independent batches
    k = jax.random.normal(jax.random.key(1), (3, 2))
    b = jnp.arange(2.0)

    def loss(k, b, x):
        return jnp.sum(jnp.square(linear(x, k, b)))

    def loss_ref(k, b, x):
        return jnp.sum(jnp.square(x @ k + b))

    g = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(None, None, 0)))(k, b, x)
    g_ref = jax.vmap(jax.grad(loss_ref, argnums=(0, 1)), in_axes=(None, None, 0))(k, b, x)
    for a, r in zip(g, g_ref, strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6)


def test_forward_mode_is_refused_loudly() -> None:
    x, k, b = jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.zeros(4)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda v: linear(v, k, b), (x,), (x,))
