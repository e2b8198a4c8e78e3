"""DrQ-v2 throughput: agent updates/s at batch 256 (state and 84x84x9 pixels), side by
side with the original PyTorch ``DrQV2Agent.update``; env steps/s of the fused step (act ->
buffer -> update) with N envs; replay memory of frames stored once vs stacked.

    python benchmarks/drqv2.py                    # all, JSON to benchmarks/results/drqv2.json
    python benchmarks/drqv2.py --quick            # smaller repeats
    python benchmarks/drqv2.py --only fused --envs 16 64
    python benchmarks/drqv2.py --only torch --torch-python /work/.venv-torch/bin/python
    python benchmarks/drqv2.py --only memory

``--only torch`` starts ``benchmarks/torch_drqv2.py --serve`` (the original's update,
loaded from ``--original`` at run time) in the PyTorch virtualenv and times both in turns:
each round runs one uncounted switch-over update, then ``--per-round`` timed updates of
each implementation (order alternating by round), so that drifting background load on a
shared machine hits both alike. Reported: each one's median over all counted updates and
the median over rounds of the per-round ratio (PyTorch s/update over mimex-jax s/update).

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
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ServeProcess, machine, summary, time_calls  # noqa: E402

from mimex_jax import xla  # noqa: E402
from mimex_jax.agents.drqv2 import replay  # noqa: E402
from mimex_jax.agents.drqv2.agent import Batch, make_drqv2  # noqa: E402
from mimex_jax.agents.drqv2.config import DrQV2Config  # noqa: E402
from mimex_jax.agents.drqv2.train import build  # noqa: E402
from mimex_jax.trainer import HParams, TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OBS = {"state": ((24,), jnp.float32), "pixels": ((84, 84, 9), jnp.uint8)}


def update_step(kind: str, batch: int):
    """``call()`` running one DrQ-v2 agent update (defaults: hidden 1024, feature 50, 6-d
    actions) on a fixed random batch of ``OBS[kind]`` observations."""
    obs_shape, dtype = OBS[kind]
    drq = make_drqv2(DrQV2Config(batch_size=batch), obs_shape, dtype, 6)
    k = jax.random.split(jax.random.key(0), 4)
    if jnp.dtype(dtype) == jnp.uint8:
        obs = jax.random.randint(k[0], (batch,) + obs_shape, 0, 256).astype(jnp.uint8)
    else:
        obs = jax.random.normal(k[0], (batch,) + obs_shape)
    b = Batch(obs, jax.random.uniform(k[1], (batch, 6), minval=-1, maxval=1),
              jax.random.normal(k[2], (batch,)), jnp.full((batch,), 0.99), obs)
    state = drq.agent.init(k[3], obs[:1])
    upd = xla.jit(drq.agent.update)
    holder = [state]

    def call():
        holder[0], m = upd(holder[0], b, jax.random.key(1), 10_000, 1e-4)
        return m["critic_loss"]

    # The optimized HLO of the same program (benchmarks/profile_drqv2.py names ops by it).
    call.compiled_text = lambda: upd.lower(holder[0], b, jax.random.key(1), 10_000,
                                           1e-4).compile().as_text()
    return call


def agent_update(kind: str, batch: int, repeats: int) -> dict:
    """Updates/s of one DrQ-v2 agent update."""
    times = time_calls(update_step(kind, batch), repeats=repeats, warmup=2)
    return {"obs_shape": list(OBS[kind][0]), "batch": batch, **summary(times),
            "updates_per_s": 1.0 / statistics.median(times)}


def paired(kind: str, batch: int, a: argparse.Namespace) -> dict:
    """mimex-jax's and the original PyTorch agent update, timed in turns (module doc)."""
    call = update_step(kind, batch)
    for _ in range(2):
        jax.block_until_ready(call())
    worker = ServeProcess([a.torch_python, str(ROOT / "benchmarks" / "torch_drqv2.py"),
                           "--serve", "--obs", kind, "--batch", str(batch), "--threads",
                           str(a.torch_threads), "--warmup", "2", "--original", a.original])

    def jax_step() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        return time.perf_counter() - t0

    runners = {"jax": jax_step, "torch": worker.step}
    rounds = []
    try:
        for r in range(a.rounds):
            this = {}
            for name in (("jax", "torch") if r % 2 == 0 else ("torch", "jax")):
                runners[name]()  # switch-over update, not counted
                this[name] = [runners[name]() for _ in range(a.per_round)]
            rounds.append(this)
            print(f"  {kind} round {r + 1}/{a.rounds}: " + ", ".join(
                f"{k} {statistics.median(v):.3f} s" for k, v in this.items()), flush=True)
    finally:
        worker.close()
    out: dict = {"obs_shape": list(OBS[kind][0]), "batch": batch,
                 "protocol": {"rounds": a.rounds, "per_round": a.per_round,
                              "uncounted_per_round": 1}}
    for name in runners:
        times = [t for rd in rounds for t in rd[name]]
        out[name] = {**summary(times), "updates_per_s": 1.0 / statistics.median(times),
                     "times_s": times}
    out["torch"].update(worker.info)
    ratios = [statistics.median(rd["torch"]) / statistics.median(rd["jax"]) for rd in rounds]
    out["speedup_vs_torch"] = statistics.median(ratios)
    out["speedup_vs_torch_rounds"] = ratios
    return out


def memory(capacity: int, num_envs: int) -> dict:
    """Replay bytes for 84x84x9 observations (3 stacked 84x84x3 uint8 frames), 6-d
    actions, ``capacity`` slots per env: stacked observations stored per slot (the layout
    before frames were stored once, ``frame_stack=1`` of the same observations) vs one
    frame per slot (``frame_stack=3``). From the buffer's shapes (``jax.eval_shape``)."""
    obs = jax.ShapeDtypeStruct((num_envs, 84, 84, 9), jnp.uint8)

    def nbytes(k: int) -> int:
        buf = jax.eval_shape(lambda o: replay.init(o, 6, capacity, k), obs)
        return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(buf))

    stacked, frames = nbytes(1), nbytes(3)
    return {"num_envs": num_envs, "slots_per_env": capacity, "obs": [84, 84, 9],
            "stacked_bytes": stacked, "frames_once_bytes": frames,
            "stacked_gib": stacked / 2 ** 30, "frames_once_gib": frames / 2 ** 30,
            "ratio": stacked / frames}


def fused(num_envs: int, reward: str, repeats: int) -> dict:
    """Env steps/s of the fused update_step on Pendulum (state), after the seed phase."""
    mimex = (("mask_ratio", 0.7),) if reward == "mimex" else ()
    cfg = TrainConfig(agent="drqv2", env_id="gymnax:Pendulum-v1", num_envs=num_envs,
                      total_steps=10 ** 7, reward=reward, seq_len=5, mimex=mimex,
                      drqv2=(("num_seed_steps", 0), ("num_expl_steps", 0),
                             ("buffer_size", 1000 * num_envs)))
    b = build(cfg)
    hp = HParams(lr=1e-4, mask_ratio=0.7)
    state = xla.jit(b.init)(jax.random.key(0), hp)
    step = xla.jit(b.update_step, donate_argnums=0)
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
    p.add_argument("--only", choices=("update", "fused", "torch", "memory"), default=None)
    p.add_argument("--envs", type=int, nargs="+", default=[16, 256])
    p.add_argument("--obs", nargs="+", choices=tuple(OBS), default=list(OBS),
                   help="observation kinds of the update and torch comparisons")
    p.add_argument("--torch-python", default=str(ROOT / ".venv-torch" / "bin" / "python"))
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--original", default=str(ROOT.parent / "shared" / "original" / "mimex-dmc"),
                   help="the original mimex-dmc directory (drqv2.py is loaded from it)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--per-round", type=int, default=3)
    p.add_argument("--capacity", type=int, default=1_000_000,
                   help="replay slots per env of the memory figure")
    p.add_argument("--json", default="benchmarks/results/drqv2.json")
    a = p.parse_args()
    reps = 5 if a.quick else 20
    out: dict = {"machine": machine(), "backend": jax.default_backend()}
    if a.only == "memory":
        out["memory"] = memory(a.capacity, 1)
        print("memory", out["memory"], flush=True)
    if a.only in (None, "update"):
        for kind in a.obs:
            out[f"update_{kind}"] = agent_update(kind, 256, reps if kind == "state"
                                                 else max(3, reps // 4))
            print(f"update {kind}", out[f"update_{kind}"], flush=True)
    if a.only == "torch":
        for kind in a.obs:
            out[f"torch_{kind}"] = r = paired(kind, 256, a)
            print(f"{kind}: jax {r['jax']['updates_per_s']:.3f} updates/s, torch "
                  f"{r['torch']['updates_per_s']:.3f} updates/s, speedup "
                  f"{r['speedup_vs_torch']:.2f}x (median of per-round ratios)", flush=True)
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
