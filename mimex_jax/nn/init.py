"""Weight initialisers that are safe under ``jax.vmap`` on every backend.

:func:`orthogonal` draws the same matrices as ``jax.nn.initializers.orthogonal`` (a
Gaussian matrix, its QR factor with a positive diagonal) but computes the factor with
Gram-Schmidt in plain ``jnp`` operations instead of LAPACK's ``geqrf``.

Why: on XLA:CPU a batched QR (what ``jax.vmap`` makes of an orthogonal initialiser) is a
``lapack_sgeqrf_ffi`` call that splits its batch over the intra-op thread pool and then
blocks waiting for those sub-tasks. When the compiled program schedules two such calls
side by side (an actor and a critic, an RND predictor and target, under ``vmap`` over
seeds), each occupies one worker of a 2-thread pool while waiting for work queued behind
the other: the program hangs forever, with no error and no CPU use.
``benchmarks/qr_hang.py`` reproduces it. Gram-Schmidt is a loop of matrix-vector products
and never enters that kernel, so ``jit(vmap(init))`` of every model here is safe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mimex_jax.nn.mlp import Init


def orthonormal_columns(a: jax.Array) -> jax.Array:
    """``Q`` of ``a = QR`` (``a``: ``[m, n]``, ``m >= n``) with ``diag(R) > 0``.

    Classical Gram-Schmidt with one re-orthogonalisation pass per column ("twice is
    enough"), which keeps ``Q^T Q = I`` to float precision for the full-rank Gaussian
    matrices an initialiser draws. The positive-diagonal ``Q`` is unique, so this equals
    LAPACK's factor after the usual sign fix, up to rounding.
    """
    m, n = a.shape
    if m < n:
        raise ValueError(f"orthonormal_columns: shape {a.shape} is invalid; allowed: rows >= cols")

    def column(j: jax.Array, q: jax.Array) -> jax.Array:
        v = jax.lax.dynamic_index_in_dim(a, j, axis=1, keepdims=False)
        for _ in range(2):  # project out the columns found so far (unset ones are zero)
            v = v - q @ (q.T @ v)
        v = v / jnp.linalg.norm(v)
        return jax.lax.dynamic_update_index_in_dim(q, v, j, axis=1)

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(a))


def orthogonal(scale: float = 1.0, column_axis: int = -1) -> Init:
    """Drop-in replacement for ``jax.nn.initializers.orthogonal(scale, column_axis)``.

    Same random draw and the same matrix up to float rounding (tested against JAX's), but
    without a LAPACK call, so it is safe in ``jax.jit(jax.vmap(init))`` (see the module
    docstring).
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: jnp.dtype = jnp.float32
             ) -> jax.Array:
        shape = tuple(int(d) for d in shape)
        if len(shape) < 2:
            raise ValueError(f"orthogonal: shape {shape} is invalid; allowed: at least 2-D")
        if any(d == 0 for d in shape):
            return jnp.zeros(shape, dtype)
        n_cols = shape[column_axis]
        n_rows = math.prod(shape) // n_cols
        z = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), dtype)
        q = orthonormal_columns(z)
        if n_rows < n_cols:
            q = q.T
        q = q.reshape(tuple(np.delete(np.asarray(shape), column_axis)) + (n_cols,))
        return jnp.asarray(scale, dtype) * jnp.moveaxis(q, -1, column_axis)

    return init
