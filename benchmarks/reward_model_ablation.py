"""Where does the MIMEx update spend its time? Interleaved A/B timing of variants.

Each variant is compiled once; then the variants are timed in turn, round after round,
so that background load affects all of them alike. Reports the median sequences/s.

Variants: ``default``; ``depth2`` (2 encoder blocks instead of 4: the difference is the
cost of two blocks); ``mb<N>`` (microbatch of N sequences); ``fastln`` (LayerNorm with
the one-pass variance); ``erfgelu`` (GELU written as 0.5 x (1 + erf(x / sqrt 2))). The
last two patch the model's building blocks for this process only.

    python benchmarks/reward_model_ablation.py default depth2 mb1024 mb4096 fastln erfgelu
"""

from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import jax

import mimex_jax.nn.transformer as transformer
import mimex_jax.rewards.mimex as mimex_module
from mimex_jax.rewards import MIMExConfig, RewardBatch, mimex


def build(variant: str, seq: jax.Array):
    original_ln, original_gelu = transformer.layer_norm, jax.nn.gelu
    if variant == "fastln":
        fast = lambda name: nn.LayerNorm(epsilon=transformer.LN_EPS, name=name)
        transformer.layer_norm = mimex_module.layer_norm = fast
    if variant == "erfgelu":
        transformer.jax.nn.gelu = lambda x, approximate=False: 0.5 * x * (
            1 + jax.lax.erf(x * 0.7071067811865476))
    kw = {}
    if variant == "depth2":
        kw["depth"] = 2
    elif variant.startswith("mb"):
        kw["microbatch"] = int(variant[2:])
    elif variant not in ("default", "fastln", "erfgelu"):
        raise ValueError(f"variant {variant!r} is unknown")
    try:
        fn = mimex(MIMExConfig(seq_len=seq.shape[1], feature_dim=seq.shape[2], **kw))
        batch = RewardBatch(seq=seq)
        state = fn.init(jax.random.key(1), batch)
        compiled = jax.jit(fn.update).lower(state, batch, jax.random.key(2)).compile()
    finally:
        transformer.layer_norm = mimex_module.layer_norm = original_ln
        transformer.jax.nn.gelu = original_gelu
    return lambda: jax.block_until_ready(compiled(state, batch, jax.random.key(2)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("variants", nargs="+")
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--feature-dim", type=int, default=384)
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args()
    seq = jax.random.normal(jax.random.key(0), (args.batch, 5, args.feature_dim))
    fns = {v: build(v, seq) for v in args.variants}
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {v: [] for v in fns}
    for _ in range(args.rounds):
        for v, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[v].append(time.perf_counter() - t0)
    print("| variant | seq/s (median) |\n|---|---|")
    for v in fns:
        print(f"| {v} | {args.batch / statistics.median(times[v]):.0f} |")


if __name__ == "__main__":
    main()
