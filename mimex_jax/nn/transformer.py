"""Pre-LN transformer block (the timm ViT block used by the original MIMEx) in Flax.

The layout mirrors timm's ``Block`` so that PyTorch weights load one-to-one
(see :mod:`mimex_jax.interop`): ``norm1`` -> ``attn`` (fused ``qkv`` Linear with
bias, ``proj``) -> residual, ``norm2`` -> ``mlp`` (``fc1``, exact GELU, ``fc2``)
-> residual. LayerNorm epsilon is 1e-6 as in the original.

Attention accepts an optional key-validity mask ``[B, N]``: invalid keys get zero
weight. The MIMEx encoder uses it to run on a fixed number of gathered token
slots of which only some are real (see ``mimex_jax.rewards.mimex``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LN_EPS = 1e-6

# xavier-uniform weights and zero biases for every Linear, as the original's init.
dense_init = nn.initializers.xavier_uniform()


def layer_norm(name: str) -> nn.LayerNorm:
    """PyTorch-equivalent LayerNorm (eps 1e-6, two-pass variance for accuracy)."""
    return nn.LayerNorm(epsilon=LN_EPS, use_fast_variance=False, name=name)


def _dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=dense_init, bias_init=nn.initializers.zeros, name=name)


def sinusoidal_table(length: int, dim: int) -> np.ndarray:
    """Fixed sinusoidal position table [length, dim] (float32), as the original computes it.

    ``pe[:, 0::2] = sin(pos * div)``, ``pe[:, 1::2] = cos(pos * div)`` with
    ``div = exp(arange(0, dim, 2) * -ln(10000) / dim)``; computed in float32 like PyTorch.
    """
    position = np.arange(length, dtype=np.float32)[:, None]
    div = np.exp(np.arange(0, dim, 2, dtype=np.float32) * np.float32(-np.log(10000.0) / dim))
    angles = (position * div).astype(np.float32)
    pe = np.zeros((length, dim), dtype=np.float32)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : dim // 2])
    return pe


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (timm layout)."""

    dim: int
    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array, key_valid: jax.Array | None = None) -> jax.Array:
        batch, n, c = x.shape
        head_dim = c // self.num_heads
        qkv = _dense(3 * c, "qkv")(x).reshape(batch, n, 3, self.num_heads, head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, N, H, hd]
        logits = jnp.einsum("bqhd,bkhd->bhqk", q * (head_dim**-0.5), k)
        if key_valid is not None:
            # A finite floor (not -inf) keeps rows with no valid key finite; such rows
            # belong to padding slots whose outputs are never used.
            floor = jnp.finfo(logits.dtype).min
            logits = jnp.where(key_valid[:, None, None, :], logits, floor)
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, n, c)
        return _dense(c, "proj")(out)


class Mlp(nn.Module):
    """Linear(d, ratio*d) -> exact (erf) GELU -> Linear(ratio*d, d)."""

    dim: int
    hidden: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _dense(self.hidden, "fc1")(x)
        x = jax.nn.gelu(x, approximate=False)
        return _dense(self.dim, "fc2")(x)


class Block(nn.Module):
    """timm ViT block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    dim: int
    num_heads: int
    mlp_ratio: float = 4.0

    @nn.compact
    def __call__(self, x: jax.Array, key_valid: jax.Array | None = None) -> jax.Array:
        x = x + Attention(self.dim, self.num_heads, name="attn")(
            layer_norm("norm1")(x), key_valid
        )
        hidden = int(self.dim * self.mlp_ratio)
        return x + Mlp(self.dim, hidden, name="mlp")(layer_norm("norm2")(x))
