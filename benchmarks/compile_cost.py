"""CPU seconds to compile the tiny MIMEx trainer that the unit tests build, under XLA_FLAGS.

Why: the test suite's cold time is mostly XLA compiling small programs; this is how the
compile options in ``tests/conftest.py`` were chosen. Run it once per flag set, side by
side, on a quiet machine (no persistent compilation cache is used):

    XLA_FLAGS="--xla_backend_optimization_level=0" python benchmarks/compile_cost.py
    XLA_FLAGS="--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false" \\
        python benchmarks/compile_cost.py
"""

from __future__ import annotations

import os
import sys
import time

import jax

from mimex_jax.trainer import HParams, TrainConfig, make_train


def main() -> None:
    reward = sys.argv[1] if len(sys.argv) > 1 else "mimex"
    cfg = TrainConfig(
        env_id="gymnax:MountainCar-v0", num_envs=4, rollout_len=8, epochs=1, minibatches=2,
        total_steps=4 * 8 * 5, episode_length=10, reward=reward,
        actor_hidden=(16,), critic_hidden=(16,),
        mimex=(("embed_dim", 16), ("depth", 1), ("num_heads", 2), ("decoder_embed_dim", 8)))
    _, _, train, _ = make_train(cfg)
    t0 = time.process_time()
    lowered = jax.jit(train).lower(jax.random.key(3), HParams())
    t1 = time.process_time()
    compiled = lowered.compile()
    t2 = time.process_time()
    text = compiled.as_text()
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} reward={reward}: lower {t1 - t0:.1f} s, "
          f"compile {t2 - t1:.1f} s of CPU; {text.count('fusion(')} fusions")


if __name__ == "__main__":
    main()
