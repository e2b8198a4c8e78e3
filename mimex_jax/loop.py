"""The host loop: train in compiled chunks, with the host acting only between chunks.

``update_step`` is one XLA program; a *chunk* is ``lax.scan`` of it over ``chunk``
iterations, compiled once (plus once more for a shorter final chunk) with the training
state donated, so the device reuses its buffers. After each chunk the host receives the
chunk's per-iteration metrics in one transfer and calls the callbacks (progress bar,
metric logs, checkpoints). Nothing runs in Python per environment step or per iteration.

A single run and a vmapped sweep use the same loop: with ``sweep=True`` every leaf of
the state and of ``hparams`` has a leading member axis and the metrics are
``[members, chunk]``.

Running the loop in chunks gives exactly the result of ``train(key, hparams)``, and a
run resumed from a state saved at a chunk boundary continues exactly (the iteration
counter and RNG key live in the state).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mimex_jax.trainer import HParams, TrainConfig, TrainState, make_train


class ChunkResult(NamedTuple):
    """What a callback sees after each chunk."""

    first_iteration: int          # iteration index of the chunk's first update
    iterations: int               # iterations done so far, in total
    total_iterations: int
    env_steps: int                # env steps done so far (per member)
    metrics: dict[str, np.ndarray]  # [chunk] or [members, chunk], on the host
    state: TrainState             # device state after the chunk (valid until the next chunk)
    seconds: float                # wall time of this chunk (compile included the first time)


Callback = Callable[[ChunkResult], None]


class Runner(NamedTuple):
    """The compiled pieces of a run: ``init`` and ``chunk(length)``."""

    cfg: TrainConfig
    init: Callable[[jax.Array, HParams], TrainState]
    chunk: Callable[[int], Callable[[TrainState, HParams], tuple[TrainState, dict]]]
    sweep: bool


def make_runner(cfg: TrainConfig, sweep: bool = False) -> Runner:
    """Jitted ``init`` and a cache of jitted, state-donating chunk programs."""
    init, update_step, _, _ = make_train(cfg)
    step = jax.vmap(update_step) if sweep else update_step
    init_fn = jax.jit(jax.vmap(init) if sweep else init)
    cache: dict[int, Callable] = {}

    def chunk(length: int) -> Callable:
        if length not in cache:
            def run_chunk(state: TrainState, hp: HParams) -> tuple[TrainState, dict]:
                state, metrics = jax.lax.scan(lambda s, _: step(s, hp), state, None,
                                              length=length)
                if sweep:  # scan stacks on axis 0: [chunk, members] -> [members, chunk]
                    metrics = jax.tree.map(lambda m: jnp.swapaxes(m, 0, 1), metrics)
                return state, metrics

            cache[length] = jax.jit(run_chunk, donate_argnums=0)
        return cache[length]

    return Runner(cfg, init_fn, chunk, sweep)


def iteration_of(state: TrainState) -> int:
    """The number of updates a (possibly sweep-stacked) state has done."""
    it = np.asarray(jax.device_get(state.iteration))
    if it.ndim and not np.all(it == it.flat[0]):
        raise ValueError(f"sweep members are at different iterations: {it.tolist()}")
    return int(it.flat[0]) if it.ndim else int(it)


def run(runner: Runner, hparams: HParams, key: jax.Array | None = None, *,
        state: TrainState | None = None, chunk: int = 10, iterations: int | None = None,
        callbacks: Sequence[Callback] = ()) -> tuple[TrainState, dict[str, np.ndarray]]:
    """Train from ``key`` (or continue ``state``) up to ``iterations`` total updates.

    Args:
      runner: from :func:`make_runner`.
      hparams: scalars, or ``[members]`` arrays for a sweep runner.
      key: PRNG key (``[members]`` keys for a sweep); ignored when ``state`` is given.
      state: a state to continue (e.g. restored from a checkpoint).
      chunk: iterations per compiled chunk; the host runs between chunks.
      iterations: stop after this many updates in total (default: the config's
        ``num_iterations``).
      callbacks: called with a :class:`ChunkResult` after every chunk.
    Returns:
      ``(final state, metrics of the iterations run by this call)``, metrics as host
      arrays ``[iterations]`` (or ``[members, iterations]``).
    """
    cfg = runner.cfg
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk={chunk!r} is invalid; allowed: an integer >= 1")
    total = cfg.num_iterations if iterations is None else iterations
    if not isinstance(total, int) or total < 0:
        raise ValueError(f"iterations={total!r} is invalid; allowed: an integer >= 0")
    if state is None:
        if key is None:
            raise ValueError("run() needs a PRNG key or a state to continue")
        if not runner.sweep:
            hparams.validate()
        state = runner.init(key, hparams)
    done = iteration_of(state)
    if done > total:
        raise ValueError(f"the state has done {done} iterations, more than the {total} asked")
    history: list[dict[str, np.ndarray]] = []
    while done < total:
        length = min(chunk, total - done)
        t0 = time.perf_counter()
        state, metrics = runner.chunk(length)(state, hparams)
        metrics = jax.device_get(metrics)  # one transfer per chunk
        seconds = time.perf_counter() - t0
        history.append(metrics)
        result = ChunkResult(done, done + length, total,
                             (done + length) * cfg.steps_per_iteration, metrics, state, seconds)
        done += length
        for cb in callbacks:
            cb(result)
    axis = 1 if runner.sweep else 0
    if history:
        out = {k: np.concatenate([h[k] for h in history], axis=axis) for k in history[0]}
    else:
        out = {}
    return state, out
