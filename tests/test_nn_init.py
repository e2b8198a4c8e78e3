"""The LAPACK-free orthogonal initialiser and the DrQ-v2 conv encoder."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimex_jax.nn.encoders import ConvEncoder, conv_output_hw
from mimex_jax.nn.init import orthogonal, orthonormal_columns


@pytest.mark.parametrize("shape", [(64, 64), (16, 48), (48, 16), (3, 3, 4, 8), (1, 1)])
def test_orthogonal_matches_jax_initializer(shape: tuple[int, ...]) -> None:
    key = jax.random.key(7)
    ours = orthogonal(1.3)(key, shape)
    ref = jax.nn.initializers.orthogonal(1.3)(key, shape)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=2e-6)


def test_orthonormal_columns_is_orthonormal_with_positive_diagonal() -> None:
    a = jax.random.normal(jax.random.key(0), (40, 24))
    q = orthonormal_columns(a)
    np.testing.assert_allclose(np.asarray(q.T @ q), np.eye(24), atol=2e-6)
    r = q.T @ a                               # upper triangular with a positive diagonal
    assert np.all(np.diag(np.asarray(r)) > 0)
    np.testing.assert_allclose(np.tril(np.asarray(r), -1), 0.0, atol=2e-5)
    with pytest.raises(ValueError, match="rows >= cols"):
        orthonormal_columns(a.T)


def test_orthogonal_under_jit_vmap_has_no_lapack_call() -> None:
    init = orthogonal()
    f = jax.jit(jax.vmap(lambda k: [init(kk, (32, 32)) for kk in jax.random.split(k, 4)]))
    keys = jax.random.split(jax.random.key(1), 2)
    text = f.lower(keys).as_text()
    assert "geqrf" not in text and "custom_call" not in text
    out = f(keys)
    np.testing.assert_allclose(np.asarray(out[0][1]), np.asarray(init(
        jax.random.split(keys[1], 4)[0], (32, 32))), atol=1e-6)


def test_conv_encoder_shapes_and_scaling() -> None:
    enc = ConvEncoder()
    obs = jax.random.randint(jax.random.key(0), (2, 3, 20, 24, 9), 0, 256).astype(jnp.uint8)
    params = enc.init(jax.random.key(1), obs[0])
    out = enc.apply(params, obs)
    assert conv_output_hw(84, 84) == (35, 35) and ConvEncoder().repr_dim(84, 84) == 32 * 35 * 35
    assert out.shape == (2, 3, enc.repr_dim(20, 24))
    assert bool(jnp.all(out >= 0))            # ReLU output
    # uint8 pixels are scaled to [-0.5, 0.5]: a constant image of 127.5 is the zero input,
    # which with zero biases gives zero features.
    mid = jnp.full((1, 20, 24, 9), 127.5)
    np.testing.assert_allclose(np.asarray(enc.apply(params, mid)), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="H, W, C"):
        enc.apply(params, obs[0, 0, 0])
