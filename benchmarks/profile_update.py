"""Where one MIMEx update spends its time, per XLA op, from a JAX profiler trace.

Compiles the update at the PixMC size (16,384 sequences, T=5, D=384, paper defaults),
traces ``--updates`` calls with ``jax.profiler.trace`` (Perfetto JSON) and sums the time
of every XLA op. Prints:

* the share of op time in ops that contain a matmul (``dot``) and what they achieve in
  GFLOP/s (FLOPs read from the optimized HLO), against everything else;
* op time by model part (encoder blocks, decoder, head, loss, ...) and direction
  (forward / backward), by kind of op (matmuls in YNNPACK or in XLA's own dot,
  YNNPACK reductions, XLA loop fusions, ...), and the slowest single ops;
* CPU time over wall time for a few untraced updates (how many cores are kept busy);
* the machine's memory stream rate for an array that fits in cache and one that does not.

``--variant`` takes the names of benchmarks/reward_model_ablation.py (``before``,
``flaxdense``, ...) to profile the update with an old building block put back.

    python benchmarks/profile_update.py
    python benchmarks/profile_update.py --variant before
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reward_model_ablation import PATCHES, patched, patches_of  # noqa: E402

from mimex_jax.rewards import MIMExConfig, RewardBatch, mimex  # noqa: E402

SKIP = ("ThunkExecutor", "$", "Threadpool", "end:", "Slinky", "Pjit", "CommonPjRt")
PARTS = (r"(decoder_blocks_\d|blocks_\d|decoder_pred|decoder_embed|encoder_embed|decoder_norm"
         r"|/norm/)")


def op_times(trace_dir: str, updates: int) -> dict[str, tuple[float, float]]:
    """Per update: (seconds, executions) of every XLA op in the trace, by op name."""
    path = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)[0]
    with gzip.open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    seconds: dict[str, float] = collections.Counter()
    runs: dict[str, int] = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith(SKIP):
            seconds[e["name"]] += e["dur"] * 1e-6
            runs[e["name"]] += 1
    return {k: (seconds[k] / updates, runs[k] / updates) for k in seconds}


def hlo_index(hlo: str) -> tuple[dict[str, str], dict[str, str]]:
    """Instruction name -> its HLO line, and fused computation name -> its body."""
    bodies = {m.group(1): m.group(2) for m in
              re.finditer(r"^%([\w.\-]+) .*?\{\n(.*?)\n\}", hlo, re.S | re.M)}
    lines: dict[str, str] = {}
    for line in hlo.split("\n"):
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (.*)", line)
        if m:
            lines.setdefault(m.group(1), m.group(2))
    return lines, bodies


def _dims(shape: str) -> list[int]:
    m = re.match(r"\w+\[([\d,]*)\]", shape)
    return [int(x) for x in m.group(1).split(",") if x] if m else []


def dot_flops(text: str, hlo: str) -> int:
    """FLOPs of the dots in an op's HLO text (2 x output size x contracted size)."""
    total = 0
    for m in re.finditer(r"= (f32\[[\d,]*\])\S* dot\(%([\w.\-]+).*?lhs_contracting_dims="
                         r"\{([\d,]*)\}", text):
        lhs = re.search(r"%" + re.escape(m.group(2)) + r" = (\w+\[[\d,]*\])", text) or \
            re.search(r"%" + re.escape(m.group(2)) + r" = (\w+\[[\d,]*\])", hlo)
        lhs_dims = _dims(lhs.group(1))
        contracted = math.prod(lhs_dims[int(i)] for i in m.group(3).split(","))
        total += 2 * math.prod(_dims(m.group(1))) * contracted
    return total


def op_kind(name: str, line: str, flops: int) -> str:
    """Coarse class of an XLA:CPU op: which library runs it and what it does."""
    custom = "__ynn_fusion" in line or name.startswith("ynn_fusion")
    if flops:
        return "matmul (YNNPACK fusion)" if custom else "matmul (XLA/Eigen dot)"
    if custom:
        return "reduction (YNNPACK fusion)"
    opcode = re.match(r"\S+ (\w[\w-]*)\(", line)
    op = opcode.group(1) if opcode else name.split(".")[0]
    if op == "fusion":
        return "transposing copy" if name.startswith(("copy", "transpose")) else \
            "elementwise/reduce loop fusion"
    return op


def stream_rate(n: int) -> float:
    """GB/s of ``x * 2 + 1`` over ``n`` float32 values (read + write)."""
    x = jax.random.normal(jax.random.key(0), (n,))
    f = jax.jit(lambda v: v * 2.0 + 1.0).lower(x).compile()
    for _ in range(3):
        jax.block_until_ready(f(x))
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        jax.block_until_ready(f(x))
        times.append(time.perf_counter() - t0)
    return 2 * n * 4 / statistics.median(times) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", default="default",
                   help=f"default, before or one of {', '.join(PATCHES)}")
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--updates", type=int, default=2, help="traced updates")
    p.add_argument("--top", type=int, default=15, help="slowest single ops to list")
    p.add_argument("--kind", default=None,
                   help="list the slowest ops of this kind only (e.g. 'reduction')")
    args = p.parse_args()
    names = patches_of(args.variant)
    if names is None:
        p.error(f"--variant {args.variant!r} is unknown; allowed: default, before, "
                f"{', '.join(PATCHES)}")

    seq = jax.random.normal(jax.random.key(0), (args.batch, 5, 384))
    batch = RewardBatch(seq=seq)
    with patched(names):
        fn = mimex(MIMExConfig(seq_len=5, feature_dim=384))
        state = fn.init(jax.random.key(1), batch)
        compiled = jax.jit(fn.update).lower(state, batch, jax.random.key(2)).compile()
    hlo = compiled.as_text()

    def run() -> None:
        jax.block_until_ready(compiled(state, batch, jax.random.key(2)))

    for _ in range(2):
        run()
    t0, c0 = time.perf_counter(), os.times()
    for _ in range(3):
        run()
    wall, c1 = time.perf_counter() - t0, os.times()
    cores = ((c1.user - c0.user) + (c1.system - c0.system)) / wall
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            for _ in range(args.updates):
                run()
        times = op_times(tmp, args.updates)

    lines, bodies = hlo_index(hlo)
    total = sum(sec for sec, _ in times.values())
    dot_s = dot_gflop = 0.0
    by_part: dict[tuple[str, str], float] = collections.Counter()
    by_kind: dict[str, float] = collections.Counter()
    rows = []
    for name, (sec, runs) in times.items():
        line = lines.get(name, "")
        called = re.search(r"calls=%([\w.\-]+)", line)
        text = bodies.get(called.group(1), "") if called else f"  %{name} = {line}"
        flops = dot_flops(text, hlo)
        meta = re.search(r'op_name="([^"]*)"', line)
        where = meta.group(1) if meta else ""
        direction = "backward" if "transpose(jvp" in where else \
            "forward" if "jvp" in where else "outside grad"
        part = re.search(PARTS, where)
        by_part[(part.group(1).strip("/") if part else "other", direction)] += sec
        by_kind[op_kind(name, line, flops)] += sec
        if flops:
            dot_s += sec
            dot_gflop += flops * runs / 1e9
        if args.kind is None or args.kind in op_kind(name, line, flops):
            rows.append((sec, name, line.split(" ")[0], where[-70:]))

    print(f"variant {args.variant}: op time {total * 1e3:.0f} ms per update; "
          f"{cores:.2f} cores busy (CPU time / wall, untraced)")
    print(f"ops with a matmul: {dot_s * 1e3:.0f} ms ({100 * dot_s / total:.0f}%), "
          f"{dot_gflop:.0f} GFLOP -> {dot_gflop / dot_s:.0f} GFLOP/s; other ops: "
          f"{(total - dot_s) * 1e3:.0f} ms ({100 * (total - dot_s) / total:.0f}%)")
    print("\n| part | direction | ms per update | share |\n|---|---|---|---|")
    for (part, direction), sec in sorted(by_part.items(), key=lambda kv: -kv[1]):
        print(f"| {part} | {direction} | {sec * 1e3:.1f} | {100 * sec / total:.1f}% |")
    print("\n| kind of op | ms per update | share |\n|---|---|---|")
    for kind, sec in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {sec * 1e3:.1f} | {100 * sec / total:.1f}% |")
    print(f"\nslowest {args.top} {args.kind or ''} ops (ms per update, all loop iterations):")
    for sec, name, shape, where in sorted(rows, reverse=True)[:args.top]:
        print(f"  {sec * 1e3:7.1f}  {name:28s} {shape:26s} {where}")
    print(f"\nmemory stream rate: {stream_rate(2 ** 21):.1f} GB/s on an 8 MB array, "
          f"{stream_rate(2 ** 26):.1f} GB/s on a 268 MB array")


if __name__ == "__main__":
    main()
