"""Where one DrQ-v2 agent update spends its time, per XLA op, from a JAX profiler trace.

The update is ``benchmarks/drqv2.py``'s (``make_drqv2(...).agent.update`` at batch 256 on
random 84x84x9 ``uint8`` images, or 24-d states), compiled with mimex-jax's XLA options
(:mod:`mimex_jax.xla`). Traces ``--updates`` calls with ``jax.profiler.trace`` and sums the
time of every XLA op, then prints op time by kind (convolutions, matrix products, slice /
concatenate copies, other fusions) and the slowest single ops, so that a change to the
conv encoder's gradients (:mod:`mimex_jax.nn.conv`) can be read op by op. Run it with
``taskset -c 0`` for one core's view, without to use all of them.

    python benchmarks/profile_drqv2.py
    python benchmarks/profile_drqv2.py --obs state --top 10 --json /tmp/prof.json
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from drqv2 import update_step  # noqa: E402
from profile_update import hlo_index, op_times  # noqa: E402


def kind_of(name: str, line: str) -> str:
    """Coarse class of an op of the compiled update, from its HLO line."""
    if " convolution(" in line:
        return "convolution"
    if " dot(" in line:
        return "matrix product"
    if name.startswith(("slice", "concatenate")):
        return "slice / concatenate copy"
    return "other"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--obs", choices=("pixels", "state"), default="pixels")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--updates", type=int, default=2, help="traced updates")
    p.add_argument("--repeats", type=int, default=3, help="timed updates before tracing")
    p.add_argument("--top", type=int, default=20, help="slowest single ops to list")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()

    call = update_step(args.obs, args.batch)
    for _ in range(2):
        jax.block_until_ready(call())
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            for _ in range(args.updates):
                jax.block_until_ready(call())
        ops = op_times(tmp, args.updates)
    lines, _ = hlo_index(call.compiled_text())
    total = sum(sec for sec, _ in ops.values())
    by_kind: dict[str, float] = collections.Counter()
    rows = []
    for name, (sec, _) in ops.items():
        line = lines.get(name, "")
        by_kind[kind_of(name, line)] += sec
        rows.append((sec, name, line.split(" ")[0]))
    median = statistics.median(times)
    print(f"{args.obs}, batch {args.batch}: {median:.3f} s per update (median of "
          f"{args.repeats}, untraced); op time in the trace {total * 1e3:.0f} ms per update")
    print("\n| kind of op | ms per update | share |\n|---|---|---|")
    for kind, sec in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {sec * 1e3:.1f} | {100 * sec / total:.1f}% |")
    print(f"\nslowest {args.top} ops (ms per update):")
    top = sorted(rows, reverse=True)[:args.top]
    for sec, name, shape in top:
        print(f"  {sec * 1e3:7.1f}  {name:32s} {shape}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": machine(), "command": " ".join(["python"] + sys.argv),
            "obs": args.obs, "batch": args.batch, "seconds_per_update": median,
            "op_ms_per_update": total * 1e3,
            "by_kind_ms": {k: v * 1e3 for k, v in by_kind.items()},
            "top_ops_ms": [[name, shape, sec * 1e3] for sec, name, shape in top]}, indent=2))


if __name__ == "__main__":
    main()
