"""Benchmark: one MIMEx reward-model update (score + one Adam step) at the PixMC size.

Measures, in one run on this machine:

* mimex-jax's update (16,384 sequences, T=5, D=384, paper defaults) -- sequences/s
  (median of repeats after warm-up), XLA's cost analysis (FLOPs, bytes) and the
  achieved GFLOP/s; also the general path (encoder on all T tokens) for contrast;
* the machine's float32 matmul rate through XLA (the ceiling to compare against);
* a PyTorch implementation of the same architecture (benchmarks/torch_baseline.py),
  run in its own virtualenv (``.venv-torch``, ``pip install torch==2.13.0 numpy``),
  eager, as the original code runs, with explicit attention and with
  ``F.scaled_dot_product_attention``. mimex-jax and the two PyTorch processes take turns
  (a few updates each per round, see ``bench_paired``), so that the VM's drifting
  background load affects all alike; the speed-up is the median over rounds of the
  per-round time ratio.

Writes benchmarks/results/reward_model.json and prints a Markdown table for
BENCHMARKS.md.

    python benchmarks/reward_model.py                 # full size, with PyTorch
    python benchmarks/reward_model.py --batch 1024 --repeats 3 --no-torch   # quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ServeProcess,
    cost_analysis,
    machine,
    matmul_rate,
    summary,
    time_calls,
)

from mimex_jax import xla  # noqa: E402
from mimex_jax.rewards import MIMExConfig, RewardBatch, mimex  # noqa: E402
from mimex_jax.rewards.mimex import microbatch_size  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TORCH_PYTHON = ROOT / ".venv-torch" / "bin" / "python"
TORCH_VARIANTS = (("torch", "explicit"), ("torch_sdpa", "sdpa"))


def prepare_jax(cfg: MIMExConfig, batch: int) -> tuple[Callable[[], Any], dict]:
    """The compiled update as a zero-argument step, and XLA's cost analysis of it."""
    fn = mimex(cfg)
    seq = jax.random.normal(jax.random.key(0), (batch, cfg.seq_len, cfg.feature_dim))
    rb = RewardBatch(seq=seq)
    state = fn.init(jax.random.key(1), rb)
    update = xla.jit(fn.update, donate_argnums=0)
    compiled = update.lower(state, rb, jax.random.key(2)).compile()
    # XLA's cost analysis counts a loop body once, so the FLOPs of a microbatched update
    # come from the whole-batch program (the same arithmetic); its bytes are the loop
    # body's times the number of chunks.
    chunks = batch // microbatch_size(cfg, batch)
    cost = cost_analysis(compiled)
    if chunks > 1:
        whole = mimex(dataclasses.replace(cfg, microbatch=0))
        cost["flops"] = cost_analysis(
            xla.jit(whole.update).lower(state, rb, jax.random.key(2)).compile())["flops"]
        cost["bytes_accessed"] *= chunks
    holder = {"state": state, "key": jax.random.key(3)}

    def step() -> Any:
        holder["key"], k = jax.random.split(holder["key"])
        holder["state"], r, _ = compiled(holder["state"], rb, k)
        return r

    return step, {**cost, "encoder_slots": cfg.num_slots, "chunks": chunks}


def jax_result(times: list[float], batch: int, info: dict) -> dict:
    s = summary(times)
    return {**s, "sequences_per_s": batch / s["median_s"], **info,
            "gflops_per_s": info["flops"] / s["median_s"] / 1e9}


def bench_jax(cfg: MIMExConfig, batch: int, repeats: int, warmup: int) -> dict:
    step, info = prepare_jax(cfg, batch)
    return jax_result(time_calls(step, repeats, warmup), batch, info)


class TorchServer(ServeProcess):
    """benchmarks/torch_baseline.py --serve in .venv-torch: one timed update per call."""

    def __init__(self, args: argparse.Namespace, attention: str) -> None:
        super().__init__([
            str(TORCH_PYTHON), str(ROOT / "benchmarks" / "torch_baseline.py"), "--serve",
            "--batch", str(args.batch), "--seq-len", "5", "--feature-dim",
            str(args.feature_dim), "--warmup", str(args.torch_warmup), "--attention",
            attention])


def bench_paired(cfg: MIMExConfig, args: argparse.Namespace) -> dict:
    """mimex-jax and both PyTorch variants timed in turns, round by round.

    On a shared VM the background load drifts over minutes, so the implementations take
    turns: in each round each one runs ``1 + per_round`` updates back to back, the first
    of which (the switch-over, when caches and the CPU were busy with another process)
    is not counted. Reported: each one's median over all counted updates, and the median
    over rounds of the per-round ratio (PyTorch's median / mimex-jax's median).
    """
    step, info = prepare_jax(cfg, args.batch)
    for _ in range(args.warmup):
        jax.block_until_ready(step())
    servers = {key: TorchServer(args, attention) for key, attention in TORCH_VARIANTS}

    def jax_step() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(step())
        return time.perf_counter() - t0

    runners: dict[str, Callable[[], float]] = {"jax": jax_step,
                                               **{k: v.step for k, v in servers.items()}}
    rounds: list[dict[str, list[float]]] = []
    try:
        for r in range(args.repeats):
            order = list(runners) if r % 2 == 0 else list(runners)[::-1]
            this: dict[str, list[float]] = {}
            for key in order:
                runners[key]()  # switch-over update, not counted
                this[key] = [runners[key]() for _ in range(args.per_round)]
            rounds.append(this)
            print(f"  round {r + 1}/{args.repeats}: " + ", ".join(
                f"{k} {statistics.median(this[k]):.2f} s" for k in runners), flush=True)
    finally:
        for server in servers.values():
            server.close()
    times = {k: [t for rd in rounds for t in rd[k]] for k in runners}
    out = {"protocol": {"rounds": args.repeats, "per_round": args.per_round,
                        "uncounted_per_round": 1},
           "jax": jax_result(times["jax"], args.batch, info)}
    out["jax"]["times_s"] = times["jax"]
    for key, server in servers.items():
        ratios = [statistics.median(rd[key]) / statistics.median(rd["jax"]) for rd in rounds]
        out[key] = {"torch_version": server.info["torch_version"],
                    "num_threads": server.info["num_threads"],
                    "attention": server.info["attention"], **summary(times[key]),
                    "seqs_per_s": args.batch / statistics.median(times[key]),
                    "times_s": times[key]}
        out[f"speedup_vs_{key}"] = statistics.median(ratios)
        out[f"speedup_vs_{key}_rounds"] = ratios
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--feature-dim", type=int, default=384)
    p.add_argument("--repeats", type=int, default=10,
                   help="timed updates; with PyTorch: rounds of turns")
    p.add_argument("--per-round", type=int, default=2,
                   help="counted updates per implementation per round (with PyTorch)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--torch-warmup", type=int, default=10,
                   help="PyTorch warm-up updates; eager PyTorch keeps speeding up over its "
                   "first several updates here, mimex-jax is steady after one")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    p.add_argument("--no-variants", action="store_true",
                   help="skip the whole-batch and K=T variants")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reward_model.json")
    args = p.parse_args()
    if not args.no_torch and not TORCH_PYTHON.exists():
        p.error(f"{TORCH_PYTHON} not found; create it with: python3 -m venv .venv-torch && "
                ".venv-torch/bin/pip install torch==2.13.0 numpy (or pass --no-torch)")

    cfg = MIMExConfig(seq_len=5, feature_dim=args.feature_dim)
    result: dict = {"machine": machine(), "command": " ".join(["python"] + sys.argv),
                    "config": dataclasses.asdict(cfg), "batch": args.batch}
    print("matmul rate ...", flush=True)
    result["matmul"] = matmul_rate()
    print(f"  {result['matmul']['gflops']:.1f} GFLOP/s", flush=True)
    if args.no_torch:
        print("mimex-jax update ...", flush=True)
        result["jax"] = bench_jax(cfg, args.batch, args.repeats, args.warmup)
    else:
        print(f"mimex-jax and PyTorch updates, {args.repeats} rounds of turns ...", flush=True)
        result.update(bench_paired(cfg, args))
    print(f"  mimex-jax {result['jax']['sequences_per_s']:.0f} seq/s", flush=True)
    if not args.no_variants:
        variants = {"jax_whole_batch": dataclasses.replace(cfg, microbatch=0),
                    "jax_general": dataclasses.replace(cfg, encoder_slots=cfg.seq_len)}
        for key, variant in variants.items():
            print(f"mimex-jax update ({key}) ...", flush=True)
            result[key] = bench_jax(variant, args.batch, args.repeats, args.warmup)
            print(f"  {result[key]['sequences_per_s']:.0f} seq/s", flush=True)
    j = result["jax"]
    result["matmul_fraction"] = j["gflops_per_s"] / result["matmul"]["gflops"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    print("\n| implementation | seq/s (median) | s/update (median) | GFLOP/update (XLA) | "
          "GB accessed (XLA) | achieved GFLOP/s |")
    print("|---|---|---|---|---|---|")
    rows = (("mimex-jax default: kept tokens gathered, 2048-sequence microbatches", "jax"),
            ("mimex-jax, whole batch at once (microbatch=0)", "jax_whole_batch"),
            ("mimex-jax, encoder on all T tokens (encoder_slots=T)", "jax_general"))
    for name, key in rows:
        if key in result:
            r = result[key]
            print(f"| {name} (K={r['encoder_slots']}) | {r['sequences_per_s']:.0f} | "
                  f"{r['median_s']:.3f} | {r['flops'] / 1e9:.1f} | "
                  f"{r['bytes_accessed'] / 1e9:.2f} | {r['gflops_per_s']:.1f} |")
    for key, what in (("torch", "explicit attention"), ("torch_sdpa", "F.sdpa attention")):
        if result.get(key):
            t = result[key]
            print(f"| PyTorch {t['torch_version']} eager, same architecture, {what} | "
                  f"{t['seqs_per_s']:.0f} | {t['median_s']:.3f} | - | - | - |")
    print(f"\nmatmul rate (XLA, {result['matmul']['n']}^3 float32): "
          f"{result['matmul']['gflops']:.1f} GFLOP/s; the update reaches "
          f"{100 * result['matmul_fraction']:.0f}% of it")
    for key in ("torch", "torch_sdpa"):
        if f"speedup_vs_{key}" in result:
            ratios = result[f"speedup_vs_{key}_rounds"]
            print(f"speed-up over {key}: median of per-round ratios "
                  f"{result[f'speedup_vs_{key}']:.2f}x (rounds: {min(ratios):.2f}-"
                  f"{max(ratios):.2f}x)")


if __name__ == "__main__":
    main()
