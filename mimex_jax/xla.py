"""XLA compiler options for mimex-jax's own compiled programs, and :func:`jit` to use them.

On the CPU backend, jax 0.10's XLA hands convolutions (and some dots and elementwise ops)
to YNNPACK "fusions" by default (``xla_cpu_experimental_ynn_fusion_type``). On the 2-core
VM these made DrQ-v2's conv encoder several times slower than XLA's own Eigen path: the
pixel DrQ-v2 agent update (batch 256, 84x84x9) took 5.49 s with them and 2.89 s without
(medians, ``benchmarks/drqv2.py --only torch --obs pixels``, BENCHMARKS.md). So every
program that mimex-jax compiles (the trainer's chunks and init, evaluation, videos, the
benchmarks) passes :func:`compiler_options`, which turns those fusions off on the CPU
backend only.

Programs that step MuJoCo Playground's MJX physics (``env_id`` ``playground:*``) also pass
:data:`MJX_CPU_OPTIONS`: XLA:CPU's newer fusion emitters (the default in jax 0.10) compile
some of MJX's contact code (long chains of small scatters concatenated into one fusion)
into loops that recompute their inputs per output element. On the 2-core VM Playground's
``PandaOpenCabinetSparse`` stepped (random actions, state) at 9.7 env steps/s with one env
and 4.5 with eight under XLA's defaults, and at 469 and 1,444 with these options
(``benchmarks/env_speed.py --xla jax,mimex``, BENCHMARKS.md). Other programs keep XLA's
default emitters (in an ad-hoc check the pixel DrQ-v2 update was slower with the older
ones).

The options are per program (``jax.jit(..., compiler_options=...)``), not process-wide:
importing mimex-jax changes nothing else a user compiles. A user who sets either flag
(``xla_cpu_experimental_ynn_fusion_type``, ``xla_cpu_use_fusion_emitters``) in
``XLA_FLAGS`` keeps their own choice (that option is not passed then), and
``MIMEX_JAX_XLA_DEFAULTS=0`` turns this module off.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax

#: what :func:`compiler_options` passes on the CPU backend (an empty list: no YNNPACK fusions)
CPU_OPTIONS: dict[str, str] = {"xla_cpu_experimental_ynn_fusion_type": ""}
#: added for programs that step MJX physics (``mjx=True``): XLA:CPU's older fusion emitters
MJX_CPU_OPTIONS: dict[str, str | bool] = {"xla_cpu_use_fusion_emitters": False}


def steps_mjx(env_id: str) -> bool:
    """Whether ``env_id``'s physics is MuJoCo Playground's MJX (``playground:*``), whose
    programs take :data:`MJX_CPU_OPTIONS` on CPU."""
    return env_id.startswith("playground:")


@functools.cache
def _accepted(backend: str, names: tuple[str, ...]) -> bool:
    """Whether this jaxlib knows the options ``names`` (a tiny program compiled with
    them)."""
    opts = {**CPU_OPTIONS, **MJX_CPU_OPTIONS}
    try:
        jax.jit(lambda x: x + 1, backend=backend,
                compiler_options={k: opts[k] for k in names}).lower(1.0).compile()
    except Exception:  # an unknown flag in another jaxlib: compile as jax does by default
        return False
    return True


def compiler_options(mjx: bool = False) -> dict[str, str | bool] | None:
    """``compiler_options`` for ``jax.jit`` on the default backend: :data:`CPU_OPTIONS` on
    CPU (with ``mjx``, :data:`MJX_CPU_OPTIONS` too), ``None`` elsewhere, with
    ``MIMEX_JAX_XLA_DEFAULTS=0``, or when none is left. An option is left out when the user
    has set its flag in ``XLA_FLAGS`` or this jaxlib does not know it."""
    if os.environ.get("MIMEX_JAX_XLA_DEFAULTS", "1") == "0" or jax.default_backend() != "cpu":
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    out: dict[str, str | bool] = {}
    for group in (CPU_OPTIONS, MJX_CPU_OPTIONS) if mjx else (CPU_OPTIONS,):
        mine = {k: v for k, v in group.items() if k not in flags}
        if mine and _accepted("cpu", tuple(sorted(mine))):
            out.update(mine)
    return out or None


class _Jitted:
    """A jitted function compiled with :func:`compiler_options` when called at the top
    level, and as a plain ``jax.jit`` when called inside another trace (``jax.jit``,
    ``jax.eval_shape``, ``vmap`` of a caller's program...), where XLA takes its options from
    the outer program and jax refuses nested ones. Everything else (``lower``, ``trace``,
    ``eval_shape``) is the top-level function's."""

    def __init__(self, fn: Callable, options: dict[str, Any], kwargs: dict[str, Any]):
        self._top = jax.jit(fn, compiler_options=options, **kwargs)
        self._nested = jax.jit(fn, **kwargs)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs)))
        return (self._nested if traced else self._top)(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._top, name)


def jit(fn: Callable, *, mjx: bool = False, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` with :func:`compiler_options` (``mjx``: the program steps
    MJX physics, see :func:`steps_mjx`; explicit ``compiler_options`` win); callable inside
    other traces too (there without options: jax allows them on top-level programs
    only)."""
    opts = compiler_options(mjx)
    if opts is None or "compiler_options" in kwargs:
        return jax.jit(fn, **kwargs)
    return _Jitted(fn, opts, kwargs)
