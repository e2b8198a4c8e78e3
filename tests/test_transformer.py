"""The transformer building blocks: fast formulations equal the textbook ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimex_jax.nn import transformer
from mimex_jax.nn.transformer import Attention, gelu


def test_gelu_is_exact_gelu() -> None:
    x = jnp.linspace(-12.0, 12.0, 20001, dtype=jnp.float32)
    # Far left, 1 + erf(.) cancels (as in PyTorch's kernel): absolute error < 1e-6 there.
    np.testing.assert_allclose(gelu(x), jax.nn.gelu(x, approximate=False), rtol=1e-6, atol=1e-6)
    g = jax.vmap(jax.grad(gelu))(x)
    g_ref = jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False)))(x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-6)
    # tanh approximation differs by ~1e-3 near |x| = 2: the check above would catch it.
    assert float(jnp.max(jnp.abs(gelu(x) - jax.nn.gelu(x, approximate=True)))) > 1e-4


def test_gelu_keeps_dtype() -> None:
    assert gelu(jnp.ones(3, jnp.bfloat16)).dtype == jnp.bfloat16


def _general(monkeypatch: pytest.MonkeyPatch, fn, *args):
    with monkeypatch.context() as m:
        m.setattr(transformer, "FEW_TOKENS", 0)
        return fn(*args)


@pytest.mark.parametrize("n,heads,masked", [(1, 4, False), (2, 4, True), (3, 2, True),
                                            (6, 2, False), (8, 1, True)])
def test_few_token_attention_equals_general(monkeypatch: pytest.MonkeyPatch, n: int,
                                            heads: int, masked: bool) -> None:
    dim = 16
    kx, kp, kv = jax.random.split(jax.random.key(n), 3)
    x = jax.random.normal(kx, (5, n, dim))
    valid = jax.random.bernoulli(kv, 0.6, (5, n)).at[:, 0].set(True) if masked else None
    module = Attention(dim, heads)
    params = module.init(kp, x, valid)

    def loss(p, x):
        out = module.apply(p, x, valid)
        return jnp.sum(out * jnp.cos(out)), out

    # One program per path (eager value_and_grad would compile every primitive apart).
    (l_fast, out_fast), g_fast = jax.jit(
        jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params, x)
    (l_ref, out_ref), g_ref = _general(
        monkeypatch, jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)), params, x)
    np.testing.assert_allclose(out_fast, out_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(l_fast, l_ref, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_few_token_attention_ignores_invalid_keys() -> None:
    dim, n = 8, 4
    x = jax.random.normal(jax.random.key(0), (3, n, dim))
    valid = jnp.array([[True, True, False, False]] * 3)
    module = Attention(dim, 2)
    params = module.init(jax.random.key(1), x, valid)
    out = module.apply(params, x, valid)
    # Changing the invalid tokens must not change what the valid ones see.
    x2 = x.at[:, 2:].set(100.0)
    np.testing.assert_allclose(module.apply(params, x2, valid)[:, :2], out[:, :2], rtol=1e-6)
    # A row with no valid key stays finite.
    none = module.apply(params, x, jnp.zeros((3, n), bool))
    assert bool(jnp.all(jnp.isfinite(none)))


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("p,n,queries", [(1, 1, None), (5, 3, 5), (2, 3, 4), (0, 6, 4),
                                         (3, 0, None)])
def test_block_shared_rows_and_queries_equal_plain_block(
        monkeypatch: pytest.MonkeyPatch, general: bool, p: int, n: int,
        queries: int | None) -> None:
    """``shared`` rows (the same for every sequence) and ``queries`` (only the first rows
    attend) give the plain block's outputs for those rows, with the same gradients."""
    dim, batch = 8, 4
    ks, kx, kv, kp = jax.random.split(jax.random.key(p * 10 + n), 4)
    shared = jax.random.normal(ks, (p, dim))
    x = jax.random.normal(kx, (batch, n, dim))
    valid = jax.random.bernoulli(kv, 0.7, (batch, p + n)).at[:, 0].set(True)
    block = transformer.Block(dim, 2)
    params = block.init(kp, jnp.zeros((1, p + n, dim)), valid[:1])
    rows = p + n if queries is None else queries
    weights = jax.random.normal(jax.random.key(7), (rows, dim))

    def plain(prm, shared, x):
        full = jnp.concatenate([jnp.broadcast_to(shared, (batch, p, dim)), x], axis=1)
        return jnp.sum(jnp.sin(block.apply(prm, full, valid)[:, :rows]) * weights)

    def split(prm, shared, x):
        out = block.apply(prm, x, valid, shared=shared if p else None, queries=queries)
        assert out.shape == (batch, rows, dim)
        return jnp.sum(jnp.sin(out) * weights)

    def grad(f, argnums):
        return jax.jit(jax.value_and_grad(f, argnums=argnums))

    with monkeypatch.context() as m:
        if general:
            m.setattr(transformer, "FEW_TOKENS", 0)
        (v_split, g_split) = grad(split, argnums=(0, 1, 2))(params, shared, x)
        (v_plain, g_plain) = grad(plain, argnums=(0, 1, 2))(params, shared, x)
    np.testing.assert_allclose(v_split, v_plain, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_split), jax.tree.leaves(g_plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
