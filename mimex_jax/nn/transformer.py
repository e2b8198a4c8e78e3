"""Pre-LN transformer block (the timm ViT block used by the original MIMEx) in Flax.

The layout mirrors timm's ``Block`` so that PyTorch weights load one-to-one
(see :mod:`mimex_jax.interop`): ``norm1`` -> ``attn`` (fused ``qkv`` Linear with
bias, ``proj``) -> residual, ``norm2`` -> ``mlp`` (``fc1``, exact GELU, ``fc2``)
-> residual. LayerNorm epsilon is 1e-6 as in the original.

Attention accepts an optional key-validity mask ``[B, N]``: invalid keys get zero
weight. The MIMEx encoder uses it to run on a fixed number of gathered token
slots of which only some are real (see ``mimex_jax.rewards.mimex``). MIMEx's
sequences are short (2 encoder tokens, 6 decoder tokens at the paper's settings), so
attention over at most ``FEW_TOKENS`` tokens takes a path built from elementwise
products and large matmuls instead of tiny per-head ones; it computes the same
function (tests/test_transformer.py checks it against the general path).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mimex_jax.nn.dense import Dense, DenseParams, linear

LN_EPS = 1e-6



def layer_norm(name: str) -> nn.LayerNorm:
    """PyTorch-equivalent LayerNorm (eps 1e-6, two-pass variance for accuracy)."""
    return nn.LayerNorm(epsilon=LN_EPS, use_fast_variance=False, name=name)


def _dense(features: int, name: str) -> Dense:
    return Dense(features, name=name)


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


SQRT_HALF = 0.7071067811865476  # a Python float: keeps the input's dtype

# Sequences this short take the few-token attention path (see ``_few_token_attention``).
FEW_TOKENS = 8


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU written as PyTorch's CPU kernel computes it: ``x/2 * (1 + erf(x/sqrt 2))``.

    Same function as ``jax.nn.gelu(approximate=False)`` (which goes through ``erfc``), and
    cheaper on CPU: ``erf`` is a polynomial, ``erfc`` needs an ``exp``. For ``x < -5``
    the tiny result loses relative precision to the cancellation in ``1 + erf`` (absolute
    error below 1e-6), exactly as in PyTorch.
    """
    return x * 0.5 * (1.0 + jax.lax.erf(x * SQRT_HALF))


def _few_token_attention(q: jax.Array, keys: list[jax.Array], values: list[jax.Array],
                         num_heads: int, key_valid: jax.Array | None) -> jax.Array:
    """Softmax attention over at most ``FEW_TOKENS`` keys without per-head tiny matmuls.

    ``q``: ``[B, Nq, C]`` with the heads side by side in ``C``; ``keys``/``values``: one
    ``[B, C]`` array per key. ``q`` and any key/value pair may instead have batch size 1
    (rows shared by every sequence). With two or six tokens, ``B x heads`` batched
    ``N x N`` matmuls are mostly overhead on CPU. Here a ``[C, heads]`` 0/1 matrix sums
    each head's channels: per-sequence keys multiply the queries elementwise and one
    matmul sums the heads; shared keys (or shared queries) are folded into that matrix,
    so all their logits come from one matmul. The softmax over the keys is unrolled;
    the weights of shared values are applied by one matmul, those of per-sequence
    values spread back over the channels by the transposed 0/1 matrix.
    """
    nq, c = q.shape[1], q.shape[2]
    head_dim = c // num_heads
    head_of = np.kron(np.eye(num_heads, dtype=np.float32), np.ones((head_dim, 1), np.float32))
    sum_heads = jnp.asarray(head_of, q.dtype)  # [C, H]
    spread = jnp.asarray(head_of.T, q.dtype)  # [H, C]
    scaled = q * (head_dim**-0.5)
    shared = [j for j, k in enumerate(keys) if k.shape[0] == 1]
    own = [j for j, k in enumerate(keys) if k.shape[0] != 1]
    logits: list[jax.Array | None] = [None] * len(keys)
    if shared:
        # [C, S*H]: column (i, h) holds shared key i's channels of head h.
        kmat = jnp.concatenate([keys[j][0, :, None] * sum_heads for j in shared], axis=1)
        both = scaled @ kmat  # [Bq, Nq, S*H]
        for i, j in enumerate(shared):
            logits[j] = both[..., i * num_heads:(i + 1) * num_heads]
    if own and q.shape[0] == 1:
        # Shared queries: [C, Nq*H], so each per-sequence key needs one [B, C] matmul.
        qmat = (scaled[0].T[:, :, None] * sum_heads[:, None, :]).reshape(c, nq * num_heads)
        for j in own:
            logits[j] = (keys[j] @ qmat).reshape(-1, nq, num_heads)
    else:
        for j in own:
            logits[j] = (scaled * keys[j][:, None, :]) @ sum_heads  # [B, Nq, H]
    if key_valid is not None:
        floor = jnp.finfo(q.dtype).min
        logits = [jnp.where(key_valid[:, None, j, None], col, floor)
                  for j, col in enumerate(logits)]
    top = logits[0]
    for col in logits[1:]:
        top = jnp.maximum(top, col)
    top = jax.lax.stop_gradient(top)  # a shift: softmax is unchanged by it
    exps = [jnp.exp(col - top) for col in logits]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    inv = 1.0 / total
    out = None
    if shared:
        # [S*H, C]: row (i, h) holds shared value i's channels of head h, zeros elsewhere.
        vmat = jnp.concatenate([spread * values[j][0] for j in shared], axis=0)
        out = jnp.concatenate([exps[j] * inv for j in shared], axis=-1) @ vmat
    for j in own:
        term = ((exps[j] * inv) @ spread) * values[j][:, None, :]
        out = term if out is None else out + term
    return out


def _general_attention(q: jax.Array, k: jax.Array, v: jax.Array, num_heads: int,
                       key_valid: jax.Array | None) -> jax.Array:
    """Softmax attention with per-head batched matmuls; ``q [B,Nq,C]``, ``k, v [B,N,C]``."""
    batch, nq, c = q.shape
    head_dim = c // num_heads
    heads = lambda a: a.reshape(a.shape[0], a.shape[1], num_heads, head_dim)  # noqa: E731
    logits = jnp.einsum("bqhd,bkhd->bhqk", heads(q * (head_dim**-0.5)), heads(k))
    if key_valid is not None:
        # A finite floor (not -inf) keeps rows with no valid key finite; such rows
        # belong to padding slots whose outputs are never used.
        floor = jnp.finfo(logits.dtype).min
        logits = jnp.where(key_valid[:, None, None, :], logits, floor)
    weights = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("bhqk,bkhd->bqhd", weights, heads(v)).reshape(batch, nq, c)


def _leading_rows(shared: jax.Array | None, x: jax.Array, n: int) -> jax.Array:
    """The first ``n`` rows of ``[shared; x]`` (``shared [P, C]`` broadcast over the batch)."""
    if shared is None:
        return x[:, :n]
    batch = x.shape[0]
    head = jnp.broadcast_to(shared[None, :n], (batch, min(n, shared.shape[0]), shared.shape[1]))
    if n <= shared.shape[0]:
        return head
    return jnp.concatenate([head, x[:, : n - shared.shape[0]]], axis=1)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (timm layout).

    ``__call__(x, key_valid=None, *, shared=None, queries=None)``:

    * ``x``: ``[B, N, C]``; ``key_valid``: optional ``[B, P + N]``, False = the key
      gets zero weight.
    * ``shared``: optional ``[P, C]`` rows that every sequence has, in front of its own
      ``x`` rows (MIMEx's cls token, or a mask token at each position). Their
      projections are computed once instead of once per sequence.
    * ``queries``: only the first ``queries`` of the ``P + N`` rows attend and are
      returned; the rest are keys and values only, and their query projection is
      skipped. Default: all rows.

    Returns ``[B, queries or P + N, C]``.
    """

    dim: int
    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array, key_valid: jax.Array | None = None, *,
                 shared: jax.Array | None = None, queries: int | None = None) -> jax.Array:
        batch, n, c = x.shape
        p = 0 if shared is None else shared.shape[0]
        nq = p + n if queries is None else queries
        kernel, bias = DenseParams(3 * c, name="qkv")(c)
        # Rows p..nq-1 of x need all of q, k, v; the others only k and v.
        x_queries = max(0, nq - p)
        if x_queries == n:
            qkv = linear(x, kernel, bias)
            xq, xkv = qkv[..., :c], qkv[..., c:]
        else:
            xkv = linear(x, kernel[:, c:], bias[c:])
            xq = linear(x[:, :x_queries], kernel[:, :c], bias[:c]) if x_queries else None
        if shared is not None:
            sqkv = linear(shared, kernel, bias)  # [P, 3C], once for every sequence
            q = _leading_rows(sqkv[:, :c], xq, nq) if xq is not None else sqkv[None, :nq, :c]
        else:
            q = xq
        if 0 < p + n <= FEW_TOKENS:
            keys = [] if shared is None else [sqkv[j, None, c:2 * c] for j in range(p)]
            values = [] if shared is None else [sqkv[j, None, 2 * c:] for j in range(p)]
            keys += [xkv[:, j, :c] for j in range(n)]
            values += [xkv[:, j, c:] for j in range(n)]
            out = _few_token_attention(q, keys, values, self.num_heads, key_valid)
        else:
            kv = _leading_rows(None if shared is None else sqkv[:, c:], xkv, p + n)
            q = jnp.broadcast_to(q, (batch,) + q.shape[1:])
            out = _general_attention(q, kv[..., :c], kv[..., c:], self.num_heads, key_valid)
        out = jnp.broadcast_to(out, (batch,) + out.shape[1:])
        return _dense(c, "proj")(out)


class Mlp(nn.Module):
    """Linear(d, ratio*d) -> exact (erf) GELU -> Linear(ratio*d, d)."""

    dim: int
    hidden: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return _dense(self.dim, "fc2")(gelu(_dense(self.hidden, "fc1")(x)))


class Block(nn.Module):
    """timm ViT block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    dim: int
    num_heads: int
    mlp_ratio: float = 4.0

    @nn.compact
    def __call__(self, x: jax.Array, key_valid: jax.Array | None = None, *,
                 shared: jax.Array | None = None, queries: int | None = None) -> jax.Array:
        """``x [B, N, C]`` -> ``[B, queries or P + N, C]``; ``shared``/``queries`` as in
        :class:`Attention` (``shared`` rows are residual-stream values, normalised here)."""
        norm1 = layer_norm("norm1")
        n_out = x.shape[1] + (0 if shared is None else shared.shape[0])
        n_out = n_out if queries is None else queries
        x = _leading_rows(shared, x, n_out) + Attention(self.dim, self.num_heads, name="attn")(
            norm1(x), key_valid, shared=None if shared is None else norm1(shared),
            queries=queries)
        hidden = int(self.dim * self.mlp_ratio)
        return x + Mlp(self.dim, hidden, name="mlp")(layer_norm("norm2")(x))
