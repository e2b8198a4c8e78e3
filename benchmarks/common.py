"""Shared helpers for the benchmark scripts: timing, XLA cost analysis, machine info."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax

from mimex_jax.bench.machine import machine  # noqa: F401  (re-exported for the scripts)


def block(x: Any) -> Any:
    return jax.block_until_ready(x)


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` calls (each blocked)."""
    for _ in range(warmup):
        block(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "repeats": len(times)}


def cost_analysis(compiled: Any) -> dict[str, float]:
    """FLOPs and bytes accessed from XLA's cost analysis of a compiled function."""
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0]
    return {"flops": float(ca.get("flops", float("nan"))),
            "bytes_accessed": float(ca.get("bytes accessed", float("nan")))}


def matmul_rate(n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """Measured float32 matmul GFLOP/s of this machine through XLA (n x n x n)."""
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(jnp.dot)
    times = time_calls(lambda: f(a, b), repeats=repeats, warmup=2)
    med = statistics.median(times)
    return {"n": n, "median_s": med, "gflops": 2 * n**3 / med / 1e9,
            "best_gflops": 2 * n**3 / min(times) / 1e9}
