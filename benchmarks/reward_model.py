"""Benchmark: one MIMEx reward-model update (score + one Adam step) at the PixMC size.

Measures, in one run on this machine:

* mimex-jax's update (16,384 sequences, T=5, D=384, paper defaults) -- sequences/s
  (median of repeats after warm-up), XLA's cost analysis (FLOPs, bytes) and the
  achieved GFLOP/s; also the general path (encoder on all T tokens) for contrast;
* the machine's float32 matmul rate through XLA (the ceiling to compare against);
* a PyTorch implementation of the same architecture (benchmarks/torch_baseline.py),
  run in its own virtualenv (``.venv-torch``, ``pip install torch==2.13.0 numpy``),
  eager, as the original code runs.

Writes benchmarks/results/reward_model.json and prints a Markdown table for
BENCHMARKS.md.

    python benchmarks/reward_model.py                 # full size, with PyTorch
    python benchmarks/reward_model.py --batch 1024 --repeats 3 --no-torch   # quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cost_analysis, machine, matmul_rate, summary, time_calls  # noqa: E402

from mimex_jax.rewards import MIMExConfig, RewardBatch, mimex  # noqa: E402
from mimex_jax.rewards.mimex import microbatch_size  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def bench_jax(cfg: MIMExConfig, batch: int, repeats: int, warmup: int) -> dict:
    fn = mimex(cfg)
    seq = jax.random.normal(jax.random.key(0), (batch, cfg.seq_len, cfg.feature_dim))
    rb = RewardBatch(seq=seq)
    state = fn.init(jax.random.key(1), rb)
    update = jax.jit(fn.update, donate_argnums=0)
    compiled = update.lower(state, rb, jax.random.key(2)).compile()
    # XLA's cost analysis counts a loop body once, so the FLOPs of a microbatched update
    # come from the whole-batch program (the same arithmetic); its bytes are the loop
    # body's times the number of chunks.
    chunks = batch // microbatch_size(cfg, batch)
    cost = cost_analysis(compiled)
    if chunks > 1:
        whole = mimex(dataclasses.replace(cfg, microbatch=0))
        cost["flops"] = cost_analysis(
            jax.jit(whole.update).lower(state, rb, jax.random.key(2)).compile())["flops"]
        cost["bytes_accessed"] *= chunks
    holder = {"state": state, "key": jax.random.key(3)}

    def step():
        holder["key"], k = jax.random.split(holder["key"])
        holder["state"], r, _ = compiled(holder["state"], rb, k)
        return r

    times = time_calls(step, repeats, warmup)
    s = summary(times)
    return {**s, "sequences_per_s": batch / s["median_s"], **cost,
            "gflops_per_s": cost["flops"] / s["median_s"] / 1e9,
            "encoder_slots": cfg.num_slots, "chunks": chunks}


def bench_torch(args: argparse.Namespace, attention: str) -> dict | None:
    python = ROOT / ".venv-torch" / "bin" / "python"
    if not python.exists():
        print(f"[torch] {python} not found; create it with: python3 -m venv .venv-torch && "
              ".venv-torch/bin/pip install torch==2.13.0 numpy", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "torch.json"
        cmd = [str(python), str(ROOT / "benchmarks" / "torch_baseline.py"), "--batch",
               str(args.batch), "--seq-len", "5", "--feature-dim", str(args.feature_dim),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--json", str(out),
               "--attention", attention]
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--feature-dim", type=int, default=384)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    p.add_argument("--no-variants", action="store_true",
                   help="skip the whole-batch and K=T variants")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reward_model.json")
    args = p.parse_args()

    cfg = MIMExConfig(seq_len=5, feature_dim=args.feature_dim)
    result: dict = {"machine": machine(), "command": " ".join(["python"] + sys.argv),
                    "config": dataclasses.asdict(cfg), "batch": args.batch}
    print("matmul rate ...", flush=True)
    result["matmul"] = matmul_rate()
    print(f"  {result['matmul']['gflops']:.1f} GFLOP/s", flush=True)
    print("mimex-jax update (fast path) ...", flush=True)
    result["jax"] = bench_jax(cfg, args.batch, args.repeats, args.warmup)
    print(f"  {result['jax']['sequences_per_s']:.0f} seq/s", flush=True)
    if not args.no_variants:
        variants = {"jax_whole_batch": dataclasses.replace(cfg, microbatch=0),
                    "jax_general": dataclasses.replace(cfg, encoder_slots=cfg.seq_len)}
        for key, variant in variants.items():
            print(f"mimex-jax update ({key}) ...", flush=True)
            result[key] = bench_jax(variant, args.batch, args.repeats, args.warmup)
            print(f"  {result[key]['sequences_per_s']:.0f} seq/s", flush=True)
    if not args.no_torch:
        print("pytorch baseline, explicit attention ...", flush=True)
        result["torch"] = bench_torch(args, "explicit")
        print("pytorch baseline, fused SDPA attention (timm's default) ...", flush=True)
        result["torch_sdpa"] = bench_torch(args, "sdpa")
    j = result["jax"]
    result["matmul_fraction"] = j["gflops_per_s"] / result["matmul"]["gflops"]
    for key in ("torch", "torch_sdpa"):
        if result.get(key):
            result[f"speedup_vs_{key}"] = j["sequences_per_s"] / result[key]["seqs_per_s"]
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
            print(f"| PyTorch {t.get('torch_version', '')} eager, same architecture, {what} | "
                  f"{t['seqs_per_s']:.0f} | {t['median_s']:.3f} | - | - | - |")
    print(f"\nmatmul rate (XLA, {result['matmul']['n']}^3 float32): "
          f"{result['matmul']['gflops']:.1f} GFLOP/s; the update reaches "
          f"{100 * result['matmul_fraction']:.0f}% of it")
    for key in ("torch", "torch_sdpa"):
        if f"speedup_vs_{key}" in result:
            print(f"speed-up over {key}: {result[f'speedup_vs_{key}']:.2f}x")


if __name__ == "__main__":
    main()
