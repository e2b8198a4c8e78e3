"""Reward-model demo (``mimex-jax demo``): does each bonus score novel sequences higher?

MIMEx, RND and the running-mean baseline are trained on sequences from one region of a
random walk ("familiar"), then score held-out familiar sequences and sequences from an
unvisited region ("novel"). A working exploration bonus scores the novel ones higher.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from mimex_jax import xla
from mimex_jax.rewards import (
    IntrinsicReward,
    MIMExConfig,
    RewardBatch,
    RNDConfig,
    RunningMeanConfig,
    mimex,
    rnd,
    running_mean,
)


def random_walk_sequences(key: jax.Array, n: int, seq_len: int, dim: int,
                          offset: float) -> jax.Array:
    """``n`` windows of a Gaussian random walk in ``dim`` dims, started near ``offset``."""
    k0, k1 = jax.random.split(key)
    start = offset + 0.5 * jax.random.normal(k0, (n, 1, dim))
    steps = 0.3 * jax.random.normal(k1, (n, seq_len, dim))
    return start + jnp.cumsum(steps, axis=1)


def run_demo(updates: int, batch: int, seed: int) -> dict[str, tuple[float, float]]:
    """Train each bonus on familiar sequences; return mean reward (familiar, novel)."""
    seq_len, dim = 5, 16
    key = jax.random.key(seed)
    methods: dict[str, IntrinsicReward] = {
        "mimex": mimex(MIMExConfig(seq_len=seq_len, feature_dim=dim, lr=1e-3)),
        "rnd": rnd(RNDConfig(obs_dim=dim)),
        "running_mean": running_mean(RunningMeanConfig(seq_len=seq_len, feature_dim=dim)),
    }
    k_fam, k_test, k_novel, key = jax.random.split(key, 4)
    familiar_test = RewardBatch(seq=random_walk_sequences(k_test, 1024, seq_len, dim, 0.0))
    novel = RewardBatch(seq=random_walk_sequences(k_novel, 1024, seq_len, dim, 3.0))
    results = {}
    for name, fn in methods.items():
        state = fn.init(key, familiar_test)
        update = xla.jit(fn.update)
        t0 = time.perf_counter()
        for i in range(updates):
            k_data, k_upd = jax.random.split(jax.random.fold_in(k_fam, i))
            data = RewardBatch(seq=random_walk_sequences(k_data, batch, seq_len, dim, 0.0))
            state, r, _ = update(state, data, k_upd)
            if (i + 1) % max(1, updates // 4) == 0:
                print(f"  {name:>12}: update {i + 1}/{updates}, batch reward "
                      f"{float(jnp.mean(r)):.4f} ({time.perf_counter() - t0:.1f}s)", flush=True)
        fam = float(jnp.mean(fn.reward(state, familiar_test, key)))
        nov = float(jnp.mean(fn.reward(state, novel, key)))
        results[name] = (fam, nov)
    return results
