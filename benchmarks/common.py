"""Shared helpers for the benchmark scripts: timing, XLA cost analysis, machine info."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

import jax

from mimex_jax.bench.machine import machine  # noqa: F401  (re-exported for the scripts)


def block(x: Any) -> Any:
    return jax.block_until_ready(x)


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int,
               deadline: float | None = None) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` calls (each blocked).

    With ``deadline`` (a ``time.perf_counter()`` value), stops early once it has passed,
    after at least one timed call: fewer repeats, never none.
    """
    for _ in range(warmup):
        block(fn())
    times: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
        if deadline is not None and time.perf_counter() > deadline:
            break
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


def matmul_rate(n: int = 2048, repeats: int = 10, dtype: Any = None,
                precision: str | None = None,
                deadline: float | None = None) -> dict[str, Any]:
    """Measured matmul GFLOP/s of this machine through XLA (n x n x n).

    ``dtype`` of the operands (default float32); ``precision`` is passed to
    ``jax.default_matmul_precision`` while compiling (``"float32"``: full float32;
    ``"tensorfloat32"``: TF32 where the device has it; None: jax's default).
    """
    import contextlib

    import jax.numpy as jnp

    dtype = jnp.float32 if dtype is None else dtype
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    ctx = (jax.default_matmul_precision(precision) if precision is not None
           else contextlib.nullcontext())
    with ctx:
        f = jax.jit(jnp.dot).lower(a, b).compile()
    times = time_calls(lambda: f(a, b), repeats=repeats, warmup=2, deadline=deadline)
    med = statistics.median(times)
    return {"n": n, "dtype": jnp.dtype(dtype).name, "precision": precision or "default",
            "median_s": med, "gflops": 2 * n**3 / med / 1e9,
            "best_gflops": 2 * n**3 / min(times) / 1e9, "repeats": len(times)}


def memory_analysis(compiled: Any) -> dict[str, int] | None:
    """XLA's buffer sizes (bytes) of a compiled program; None where the backend has none."""
    try:
        mem = compiled.memory_analysis()
    except (AttributeError, NotImplementedError, RuntimeError):
        return None
    if mem is None:
        return None
    keys = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
            "temp_size_in_bytes", "peak_memory_in_bytes")
    return {k: int(getattr(mem, k)) for k in keys if hasattr(mem, k)}


def device_peak_bytes() -> int | None:
    """The first device's peak bytes in use so far in this process (``memory_stats``);
    None where the backend does not report it (CPU)."""
    stats = jax.devices()[0].memory_stats()
    if not stats:
        return None
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else int(peak)


class ServeProcess:
    """A benchmark worker in another interpreter (e.g. the PyTorch virtualenv) speaking
    the ``--serve`` protocol: one JSON info line after its warm-up, then one
    ``{"seconds": ...}`` line per ``step`` line on stdin; ``quit`` stops it."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the benchmark worker exited (code {self.proc.wait()})")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(out["error"])
        return out

    def step(self) -> float:
        """Seconds of one timed call in the worker."""
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return float(self._read()["seconds"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
