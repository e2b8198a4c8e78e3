"""DrQ-v2 throughput: agent updates/s at batch 256 (state and 84x84x9 pixels) and env
steps/s of the fused step (act -> buffer -> update) with N envs.

    python benchmarks/drqv2.py                    # all, JSON to benchmarks/results/drqv2.json
    python benchmarks/drqv2.py --quick            # smaller repeats
    python benchmarks/drqv2.py --only fused --envs 16 64

Medians after warm-up calls (compile excluded). The agent update is DrQ-v2's alone
(``make_drqv2(...).agent.update``: augmentation, encoder, critic + actor steps, target
update) on random data; the fused step is ``update_step`` of ``agent: drqv2`` on gymnax
Pendulum-v1 (state) with no bonus and with MIMEx (T=5, the paper's model).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, summary, time_calls  # noqa: E402

from mimex_jax.agents.drqv2.agent import Batch, make_drqv2  # noqa: E402
from mimex_jax.agents.drqv2.config import DrQV2Config  # noqa: E402
from mimex_jax.agents.drqv2.train import build  # noqa: E402
from mimex_jax.trainer import HParams, TrainConfig  # noqa: E402


def agent_update(obs_shape: tuple[int, ...], dtype, batch: int, repeats: int) -> dict:
    """Updates/s of one DrQ-v2 agent update (defaults: hidden 1024, feature 50)."""
    drq = make_drqv2(DrQV2Config(batch_size=batch), obs_shape, dtype, 6)
    k = jax.random.split(jax.random.key(0), 4)
    if jnp.dtype(dtype) == jnp.uint8:
        obs = jax.random.randint(k[0], (batch,) + obs_shape, 0, 256).astype(jnp.uint8)
    else:
        obs = jax.random.normal(k[0], (batch,) + obs_shape)
    b = Batch(obs, jax.random.uniform(k[1], (batch, 6), minval=-1, maxval=1),
              jax.random.normal(k[2], (batch,)), jnp.full((batch,), 0.99), obs)
    state = drq.agent.init(k[3], obs[:1])
    upd = jax.jit(drq.agent.update)
    holder = [state]

    def call():
        holder[0], m = upd(holder[0], b, jax.random.key(1), 10_000, 1e-4)
        return m["critic_loss"]

    times = time_calls(call, repeats=repeats, warmup=2)
    return {"obs_shape": list(obs_shape), "batch": batch, **summary(times),
            "updates_per_s": 1.0 / statistics.median(times)}


def fused(num_envs: int, reward: str, repeats: int) -> dict:
    """Env steps/s of the fused update_step on Pendulum (state), after the seed phase."""
    mimex = (("mask_ratio", 0.7),) if reward == "mimex" else ()
    cfg = TrainConfig(agent="drqv2", env_id="gymnax:Pendulum-v1", num_envs=num_envs,
                      total_steps=10 ** 7, reward=reward, seq_len=5, mimex=mimex,
                      drqv2=(("num_seed_steps", 0), ("num_expl_steps", 0),
                             ("buffer_size", 1000 * num_envs)))
    b = build(cfg)
    hp = HParams(lr=1e-4, mask_ratio=0.7)
    state = jax.jit(b.init)(jax.random.key(0), hp)
    step = jax.jit(b.update_step, donate_argnums=0)
    holder = [state]

    def call():
        holder[0], m = step(holder[0], hp)
        return m["critic_loss"]

    times = time_calls(call, repeats=repeats, warmup=3)
    med = statistics.median(times)
    return {"num_envs": num_envs, "reward": reward, **summary(times),
            "env_steps_per_iteration": cfg.steps_per_iteration,
            "env_steps_per_s": cfg.steps_per_iteration / med}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=("update", "fused"), default=None)
    p.add_argument("--envs", type=int, nargs="+", default=[16, 256])
    p.add_argument("--json", default="benchmarks/results/drqv2.json")
    a = p.parse_args()
    reps = 5 if a.quick else 20
    out: dict = {"machine": machine(), "backend": jax.default_backend()}
    if a.only in (None, "update"):
        out["update_state"] = agent_update((24,), jnp.float32, 256, reps)
        print("update state  ", out["update_state"], flush=True)
        out["update_pixels"] = agent_update((84, 84, 9), jnp.uint8, 256, max(3, reps // 4))
        print("update pixels ", out["update_pixels"], flush=True)
    if a.only in (None, "fused"):
        out["fused"] = []
        for n in a.envs:
            for reward in ("none", "mimex"):
                r = fused(n, reward, reps)
                out["fused"].append(r)
                print("fused", r, flush=True)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
