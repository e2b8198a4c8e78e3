"""XLA compiler options for mimex-jax's own compiled programs, and :func:`jit` to use them.

On the CPU backend, jax 0.10's XLA hands convolutions (and some dots and elementwise ops)
to YNNPACK "fusions" by default (``xla_cpu_experimental_ynn_fusion_type``). On the 2-core
VM these made DrQ-v2's conv encoder several times slower than XLA's own Eigen path: the
pixel DrQ-v2 agent update (batch 256, 84x84x9) took 5.49 s with them and 2.89 s without
(medians, ``benchmarks/drqv2.py --only torch --obs pixels``, BENCHMARKS.md). So every
program that mimex-jax compiles (the trainer's chunks and init, evaluation, videos, the
benchmarks) passes :func:`compiler_options`, which turns those fusions off on the CPU
backend only.

The options are per program (``jax.jit(..., compiler_options=...)``), not process-wide:
importing mimex-jax changes nothing else a user compiles. A user who sets
``xla_cpu_experimental_ynn_fusion_type`` in ``XLA_FLAGS`` keeps their own choice (no option
is passed then), and ``MIMEX_JAX_XLA_DEFAULTS=0`` turns this module off.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax

#: what :func:`compiler_options` passes on the CPU backend (an empty list: no YNNPACK fusions)
CPU_OPTIONS: dict[str, str] = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def _accepted(backend: str) -> bool:
    """Whether this jaxlib knows the options (a tiny program compiled with them)."""
    try:
        jax.jit(lambda x: x + 1, backend=backend,
                compiler_options=CPU_OPTIONS).lower(1.0).compile()
    except Exception:  # an unknown flag in another jaxlib: compile as jax does by default
        return False
    return True


def compiler_options() -> dict[str, str] | None:
    """``compiler_options`` for ``jax.jit`` on the default backend: :data:`CPU_OPTIONS` on
    CPU, ``None`` elsewhere, when the user has set the flag in ``XLA_FLAGS``, when
    ``MIMEX_JAX_XLA_DEFAULTS=0``, or when this jaxlib does not know the flag."""
    if os.environ.get("MIMEX_JAX_XLA_DEFAULTS", "1") == "0":
        return None
    if any(k in os.environ.get("XLA_FLAGS", "") for k in CPU_OPTIONS):
        return None
    if jax.default_backend() != "cpu" or not _accepted("cpu"):
        return None
    return dict(CPU_OPTIONS)


class _Jitted:
    """A jitted function compiled with :func:`compiler_options` when called at the top
    level, and as a plain ``jax.jit`` when called inside another trace (``jax.jit``,
    ``jax.eval_shape``, ``vmap`` of a caller's program...), where XLA takes its options from
    the outer program and jax refuses nested ones. Everything else (``lower``, ``trace``,
    ``eval_shape``) is the top-level function's."""

    def __init__(self, fn: Callable, options: dict[str, str], kwargs: dict[str, Any]):
        self._top = jax.jit(fn, compiler_options=options, **kwargs)
        self._nested = jax.jit(fn, **kwargs)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs)))
        return (self._nested if traced else self._top)(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._top, name)


def jit(fn: Callable, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` with :func:`compiler_options` (explicit ones win); callable
    inside other traces too (there without options: jax allows them on top-level programs
    only)."""
    opts = compiler_options()
    if opts is None or "compiler_options" in kwargs:
        return jax.jit(fn, **kwargs)
    return _Jitted(fn, opts, kwargs)
