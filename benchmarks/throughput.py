"""Benchmark: fused training-step throughput (env-steps/s) per intrinsic reward.

For each reward kind (none, rnd, icm, mimex) on one task at the paper's PPO settings
(32 steps x ``--num-envs`` envs, 10 epochs, 4 minibatches), measures:

* the compile time of the fused ``update_step``;
* env-steps/s of the fused step (median of repeats after warm-up) with XLA's FLOPs.

Not yet measured here (issue 3 asks for them): the fused step against the sum of its
parts timed alone, Brax's own PPO trainer side by side, and peak memory over steps.

Writes benchmarks/results/throughput.json and prints a Markdown table.

    python benchmarks/throughput.py --num-envs 512            # full
    python benchmarks/throughput.py --num-envs 64 --repeats 2 # quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cost_analysis, machine, summary, time_calls  # noqa: E402

from mimex_jax.trainer import HParams, TrainConfig, make_train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def bench_kind(env_id: str, kind: str, num_envs: int, repeats: int, warmup: int) -> dict:
    cfg = TrainConfig(env_id=env_id, num_envs=num_envs, reward=kind,
                      total_steps=num_envs * 32 * 100)
    init, update_step, _, _ = make_train(cfg)
    hp = HParams()
    state = jax.jit(init)(jax.random.key(0), hp)
    t0 = time.perf_counter()
    compiled = jax.jit(update_step, donate_argnums=0).lower(state, hp).compile()
    compile_s = time.perf_counter() - t0
    holder = {"state": state}

    def step():
        holder["state"], m = compiled(holder["state"], hp)
        return m

    times = time_calls(step, repeats, warmup)
    s = summary(times)
    return {**s, "compile_s": compile_s, **cost_analysis(compiled),
            "env_steps_per_s": cfg.steps_per_iteration / s["median_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="brax:reacher_sparse")
    p.add_argument("--num-envs", type=int, default=512)
    p.add_argument("--kinds", default="none,rnd,icm,mimex")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/throughput.json")
    args = p.parse_args()
    result = {"machine": machine(), "command": " ".join(["python"] + sys.argv),
              "env": args.env, "num_envs": args.num_envs, "kinds": {}}
    for kind in args.kinds.split(","):
        print(f"{kind} ...", flush=True)
        result["kinds"][kind] = r = bench_kind(args.env, kind, args.num_envs, args.repeats,
                                               args.warmup)
        print(f"  {r['env_steps_per_s']:.0f} env-steps/s, compile {r['compile_s']:.1f}s",
              flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("\n| reward | env-steps/s (median) | s/iteration | compile s | GFLOP/iteration |")
    print("|---|---|---|---|---|")
    for kind, r in result["kinds"].items():
        print(f"| {kind} | {r['env_steps_per_s']:.0f} | {r['median_s']:.3f} | "
              f"{r['compile_s']:.1f} | {r['flops'] / 1e9:.1f} |")


if __name__ == "__main__":
    main()
