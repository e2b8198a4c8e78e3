"""PPO on gymnax CartPole-v1 with and without running observation normalisation.

Same settings as tests/test_learning.py (3 seeds in one vmapped program, 512k env steps);
prints the greedy (argmax) return per seed for both settings. This is the measurement
behind ``TrainConfig.normalize_obs`` defaulting to False.

    python benchmarks/learning_cartpole.py
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_learning import CARTPOLE, CARTPOLE_HP, greedy_return  # noqa: E402

from mimex_jax.trainer import make_train  # noqa: E402


def main() -> None:
    keys = jnp.stack([jax.random.key(s) for s in range(3)])
    hps = jax.tree.map(lambda x: jnp.full((3,), x, jnp.float32), CARTPOLE_HP)
    for normalize in (False, True):
        cfg = dataclasses.replace(CARTPOLE, normalize_obs=normalize)
        _, _, train, _ = make_train(cfg)
        states, _ = jax.jit(jax.vmap(train))(keys, hps)
        stats = states.obs_stats if normalize else None
        returns = jax.vmap(lambda p, s: greedy_return(p, jax.random.key(100), obs_stats=s),
                           in_axes=(0, 0 if normalize else None))(states.params, stats)
        print(f"normalize_obs={normalize}: greedy return per seed "
              f"{[round(float(r), 1) for r in returns]}")


if __name__ == "__main__":
    main()
