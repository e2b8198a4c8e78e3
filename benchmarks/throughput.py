"""Benchmark: fused training-step throughput, fusion overhead, compile time and memory.

At the paper's PPO settings (32 steps x ``--num-envs`` envs, 10 epochs, 4 minibatches,
MLPs 256-128-64) on ``--env`` (default ``brax:reacher_sparse``), measures:

1. ``kinds``: for each intrinsic reward (none, rnd, icm, mimex): compile time of the fused
   ``update_step``, env-steps/s (median of ``--repeats`` after ``--warmup``), XLA's FLOPs
   and bytes for one step;
2. ``fusion``: for ``--fusion-kind`` (mimex): the fused step against the sum of its three
   stages (rollout, reward-model update, PPO update) each compiled and timed alone, in
   interleaved rounds so load changes hit both alike;
3. ``memory``: a run of the default config through the chunked host loop
   (:mod:`mimex_jax.loop`) for ``--memory-iterations`` iterations; the process's resident
   memory after every chunk, its peak, and XLA's buffer sizes for the chunk program. Flat
   RSS over the iterations is the evidence that memory does not grow with steps.

Writes benchmarks/results/throughput.json and prints Markdown tables.

    python benchmarks/throughput.py                                  # full (512 envs)
    python benchmarks/throughput.py --num-envs 64 --repeats 2 --memory-iterations 6  # quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    block,
    cost_analysis,
    machine,
    memory_analysis,
    summary,
    time_calls,
)

from mimex_jax import (
    loop,  # noqa: E402
    xla,  # noqa: E402
)
from mimex_jax.trainer import HParams, TrainConfig, make_stages, make_train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def config(env_id: str, kind: str, num_envs: int, iterations: int = 100) -> TrainConfig:
    return TrainConfig(env_id=env_id, num_envs=num_envs, reward=kind,
                       total_steps=num_envs * 32 * iterations)


def bench_kind(cfg: TrainConfig, repeats: int, warmup: int) -> dict:
    """Compile time and steps/s of the fused step (state donated, as the loop does)."""
    init, update_step, _, _ = make_train(cfg)
    hp = HParams()
    state = xla.jit(init)(jax.random.key(0), hp)
    t0 = time.perf_counter()
    compiled = xla.jit(update_step, donate_argnums=0).lower(state, hp).compile()
    compile_s = time.perf_counter() - t0
    holder = {"state": state}

    def step():
        holder["state"], m = compiled(holder["state"], hp)
        return m

    s = summary(time_calls(step, repeats, warmup))
    return {**s, "compile_s": compile_s, **cost_analysis(compiled),
            "env_steps_per_s": cfg.steps_per_iteration / s["median_s"]}


def bench_fusion(cfg: TrainConfig, rounds: int, warmup: int) -> dict:
    """Fused step vs the sum of its stages compiled and timed alone, interleaved."""
    init, st = make_stages(cfg)
    _, update_step, _, _ = make_train(cfg)
    hp = HParams()
    state = xla.jit(init)(jax.random.key(0), hp)
    fused = xla.jit(update_step)
    collect, score, learn = xla.jit(st.collect), xla.jit(st.score), xla.jit(st.learn)
    col = block(collect(state, hp))
    r_int = block(score(state, hp, col))[1]
    parts = {
        "rollout": lambda: collect(state, hp),
        "reward_update": lambda: score(state, hp, col),
        "ppo_update": lambda: learn(state, hp, col, r_int),
        "fused": lambda: fused(state, hp),
    }
    for fn in parts.values():  # compile + warm up
        for _ in range(warmup):
            block(fn())
    times: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(rounds):
        for name, fn in parts.items():
            t0 = time.perf_counter()
            block(fn())
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    stage_sum = med["rollout"] + med["reward_update"] + med["ppo_update"]
    # Per-round ratios are robust to slow drifts in machine load.
    per_round = [f / (a + b + c) for f, a, b, c in zip(
        times["fused"], times["rollout"], times["reward_update"], times["ppo_update"],
        strict=True)]
    return {"median_s": med, "sum_of_stages_s": stage_sum,
            "fused_over_sum": med["fused"] / stage_sum,
            "fused_over_sum_per_round_median": statistics.median(per_round),
            "rounds": rounds, "times_s": times}


def rss_bytes() -> dict[str, int]:
    """Resident and peak-resident memory of this process (Linux /proc)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def bench_memory(cfg: TrainConfig, iterations: int, chunk: int) -> dict:
    """RSS after every chunk of a run through the chunked host loop."""
    runner = loop.make_runner(cfg)
    hp = HParams()
    state0 = runner.init(jax.random.key(0), hp)
    mem = memory_analysis(runner.chunk(chunk).lower(state0, hp).compile())
    samples = []

    def record(r: loop.ChunkResult) -> None:
        samples.append({"iteration": r.iterations, "env_steps": r.env_steps, **rss_bytes()})
        print(f"  memory: iteration {r.iterations}/{iterations}: RSS "
              f"{samples[-1]['VmRSS'] / 2**20:.0f} MiB", flush=True)

    loop.run(runner, hp, state=state0, chunk=chunk, iterations=iterations, callbacks=[record])
    rss = [s["VmRSS"] for s in samples]
    half = len(rss) // 2
    return {
        "iterations": iterations, "chunk": chunk, "samples": samples,
        "peak_rss_bytes": max(s["VmHWM"] for s in samples),
        "rss_first_half_max": max(rss[:half] or rss), "rss_second_half_max": max(rss[half:]),
        "growth_bytes_second_vs_first_half": max(rss[half:]) - max(rss[:half] or rss),
        "xla_chunk_program": mem,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="brax:reacher_sparse")
    p.add_argument("--num-envs", type=int, default=512)
    p.add_argument("--kinds", default="none,rnd,icm,mimex")
    p.add_argument("--fusion-kind", default="mimex")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--memory-iterations", type=int, default=40)
    p.add_argument("--memory-chunk", type=int, default=2)
    p.add_argument("--skip", default="", help="comma list of sections to skip: "
                   "kinds,fusion,memory")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/throughput.json")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    result = {"machine": machine(), "command": " ".join(["python"] + sys.argv),
              "env": args.env, "num_envs": args.num_envs,
              "settings": "rollout 32, 10 epochs, 4 minibatches, MLPs 256-128-64"}
    if "kinds" not in skip:
        result["kinds"] = {}
        for kind in args.kinds.split(","):
            print(f"{kind} ...", flush=True)
            cfg = config(args.env, kind, args.num_envs)
            result["kinds"][kind] = r = bench_kind(cfg, args.repeats, args.warmup)
            print(f"  {r['env_steps_per_s']:.0f} env-steps/s, compile {r['compile_s']:.1f}s",
                  flush=True)
    if "fusion" not in skip:
        print(f"fusion ({args.fusion_kind}) ...", flush=True)
        cfg = config(args.env, args.fusion_kind, args.num_envs)
        result["fusion"] = bench_fusion(cfg, args.repeats, args.warmup)
    if "memory" not in skip:
        print("memory (default config) ...", flush=True)
        cfg = dataclasses.replace(TrainConfig(), env_id=args.env, num_envs=args.num_envs)
        result["memory"] = bench_memory(cfg, args.memory_iterations, args.memory_chunk)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(report(result))


def report(result: dict) -> str:
    lines = []
    if "kinds" in result:
        lines += ["| reward | env-steps/s (median) | s/iteration | compile s | "
                  "GFLOP/iteration |", "|---|---|---|---|---|"]
        for kind, r in result["kinds"].items():
            lines.append(f"| {kind} | {r['env_steps_per_s']:.0f} | {r['median_s']:.3f} | "
                         f"{r['compile_s']:.1f} | {r['flops'] / 1e9:.1f} |")
    if "fusion" in result:
        f = result["fusion"]
        m = f["median_s"]
        lines += ["", "| stage | median s |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in m.items()]
        lines += [f"| sum of stages | {f['sum_of_stages_s']:.3f} |",
                  f"| fused / sum (medians) | {f['fused_over_sum']:.3f} |",
                  f"| fused / sum (median of per-round ratios) | "
                  f"{f['fused_over_sum_per_round_median']:.3f} |"]
    if "memory" in result:
        mm = result["memory"]
        x = mm["xla_chunk_program"]
        lines += ["", f"memory over {mm['iterations']} iterations (chunks of {mm['chunk']}): "
                  f"peak RSS {mm['peak_rss_bytes'] / 2**20:.0f} MiB; max RSS first half "
                  f"{mm['rss_first_half_max'] / 2**20:.0f} MiB, second half "
                  f"{mm['rss_second_half_max'] / 2**20:.0f} MiB; XLA chunk program: "
                  f"arguments {x['argument_size_in_bytes'] / 2**20:.1f} MiB, temp "
                  f"{x['temp_size_in_bytes'] / 2**20:.1f} MiB, aliased (donated) "
                  f"{x['alias_size_in_bytes'] / 2**20:.1f} MiB"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
