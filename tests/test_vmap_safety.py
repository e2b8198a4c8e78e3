"""No hang under ``jax.jit(jax.vmap(...))`` (PureJaxRL's pattern) for any bonus.

Before :mod:`mimex_jax.nn.init`, vmapped orthogonal initialisers compiled to batched LAPACK
QRs that could starve XLA:CPU's 2-thread pool and hang forever (``benchmarks/qr_hang.py``).
A hang gives no error, so each check runs in a child process under a timeout.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BONUSES = ("none", "rnd", "icm", "mimex")

PRELUDE = """
import dataclasses, jax, jax.numpy as jnp
from mimex_jax.trainer import HParams, TrainConfig, make_train
TINY = TrainConfig(
    env_id="gymnax:MountainCar-v0", num_envs=4, rollout_len=4, epochs=1, minibatches=1,
    total_steps=4 * 4 * 2, episode_length=10, actor_hidden=(64, 64), critic_hidden=(64, 64),
    mimex=(("embed_dim", 16), ("depth", 1), ("num_heads", 2), ("decoder_embed_dim", 8)))
keys = jax.random.split(jax.random.key(0), 2)
hps = jax.tree.map(lambda x: jnp.full((2,), x), HParams())
"""


def _run_child(body: str, timeout: float) -> str:
    code = PRELUDE + textwrap.dedent(body)
    cmd = [sys.executable, "-c", code]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"jit(vmap(...)) did not finish within {timeout:.0f} s (hang?)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_jit_vmap_init_of_every_bonus_finishes() -> None:
    """The trainer's inits (actor-critic + bonus) for every bonus, in ONE program vmapped
    over seeds: about twenty orthogonal matrices that XLA may initialise side by side."""
    out = _run_child(f"""
        inits = [make_train(dataclasses.replace(TINY, reward=r))[0] for r in {BONUSES!r}]
        states = jax.jit(jax.vmap(lambda k, hp: [init(k, hp) for init in inits]))(keys, hps)
        jax.block_until_ready(states)
        print(len(states), "ok")
        """, timeout=240)
    assert out.split() == [str(len(BONUSES)), "ok"]


@pytest.mark.slow
@pytest.mark.parametrize("reward", BONUSES)
def test_jit_vmap_train_finishes(reward: str) -> None:
    """PureJaxRL's pattern end to end: ``jit(vmap(train))`` over two seeds."""
    out = _run_child(f"""
        train = make_train(dataclasses.replace(TINY, reward={reward!r}))[2]
        _, metrics = jax.jit(jax.vmap(train))(keys, hps)
        print(metrics["episode_return"].shape)
        """, timeout=420)
    assert out.strip() == "(2, 2)"
