"""Reproducer: vmapped orthogonal initialisers hang XLA:CPU (thread-pool starvation).

Each trial starts a fresh Python process that compiles and runs
``jax.jit(jax.vmap(f))`` over two keys, where ``f`` draws eight 256x256 orthogonal
matrices (what an actor, a critic and an RND predictor/target do at init). With
``--impl lapack`` (``jax.nn.initializers.orthogonal``: a batched ``geqrf`` per matrix)
the compiled program can schedule two batched QRs side by side; each waits inside the
intra-op pool for sub-tasks queued on the same pool, whose threads they occupy, and the
process hangs forever without using any CPU. ``--impl ours``
(:func:`mimex_jax.nn.init.orthogonal`, Gram-Schmidt in plain jnp) has no such call.

The pool has as many threads as the process may use, so the hang needs few cores:
trials run under ``taskset -c 0,1`` where available (2 threads, as on the 2-core CI VM).

    python benchmarks/qr_hang.py --impl lapack --trials 6   # some trials hang (timeout)
    python benchmarks/qr_hang.py --impl ours --trials 6     # none do
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

CHILD = """
import jax
from {module} import orthogonal
init = orthogonal()
def f(key):
    return [init(k, (256, 256)) for k in jax.random.split(key, 8)]
out = jax.jit(jax.vmap(f))(jax.random.split(jax.random.key({seed}), 2))
jax.block_until_ready(out)
"""
MODULES = {"lapack": "jax.nn.initializers", "ours": "mimex_jax.nn.init"}


def trial(impl: str, seed: int, timeout: float) -> tuple[str, float]:
    """Run one child process; ``('ok' | 'hung' | 'error', seconds)``."""
    cmd = [sys.executable, "-c", CHILD.format(module=MODULES[impl], seed=seed)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0,1", *cmd]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hung", time.perf_counter() - t0
    status = "ok" if proc.returncode == 0 else "error"
    if status == "error":
        print(proc.stderr[-2000:], file=sys.stderr)
    return status, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", choices=sorted(MODULES), default="lapack")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds after which a trial counts as hung (a healthy one takes a "
                        "few seconds)")
    args = p.parse_args(argv)
    results = []
    for i in range(args.trials):
        status, secs = trial(args.impl, i, args.timeout)
        results.append(status)
        print(f"trial {i}: {status} ({secs:.1f} s)", flush=True)
    print(f"{args.impl}: {results.count('hung')}/{args.trials} hung, "
          f"{results.count('error')} errors")
    return 1 if "error" in results else 0


if __name__ == "__main__":
    raise SystemExit(main())
