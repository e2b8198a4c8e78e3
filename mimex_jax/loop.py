"""The host loop: train in compiled chunks, with the host acting only between chunks.

``update_step`` is one XLA program; a *chunk* is ``lax.scan`` of it over ``chunk``
iterations, compiled once (plus once more for a shorter final chunk) with the training
state donated, so the device reuses its buffers. After each chunk the host receives the
chunk's per-iteration metrics in one transfer and calls the callbacks (progress bar,
metric logs, checkpoints). Nothing runs in Python per environment step or per iteration.

A single run and a vmapped sweep use the same loop: with ``sweep=True`` every leaf of
the state and of ``hparams`` has a leading member axis and the metrics are
``[members, chunk]``.

With a device ``mesh`` (:mod:`mimex_jax.distributed`) the same programs are compiled with
sharded inputs and outputs: members split over the mesh's ``sweep`` axis, environments
over its ``data`` axis; the host gathers the metrics (from every process, with several).

Running the loop in chunks gives the result of ``train(key, hparams)`` (to the last bits:
XLA compiles the chunk programs separately and may round them differently), and a run
resumed from a state saved at a chunk boundary continues bit for bit as the uninterrupted
run in chunks of the same size (the iteration counter and RNG key live in the state).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from mimex_jax import distributed, xla
from mimex_jax.envs.pixels import check_layout
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
    mesh: Mesh | None = None
    state_sharding: TrainState | None = None  # a NamedSharding per leaf, with a mesh


def make_runner(cfg: TrainConfig, sweep: bool = False, mesh: Mesh | None = None) -> Runner:
    """Jitted ``init`` and a cache of jitted, state-donating chunk programs.

    ``mesh`` (from :func:`mimex_jax.distributed.make_mesh`) shards the state as
    :func:`mimex_jax.distributed.state_specs` says; the caller checks divisibility first
    (:func:`mimex_jax.distributed.plan_mesh`).
    """
    check_layout(cfg.observation == "pixels", mesh=mesh)
    init, update_step, _, _ = make_train(cfg)
    spmd = "sweep" if sweep and mesh is not None else None
    step = jax.vmap(update_step, spmd_axis_name=spmd) if sweep else update_step
    init_v = jax.vmap(init, spmd_axis_name=spmd) if sweep else init
    # MJX physics (Playground) compiles with XLA:CPU's older fusion emitters (mimex_jax.xla)
    jit = functools.partial(xla.jit, mjx=xla.steps_mjx(cfg.env_id))
    jit_init, jit_chunk = jit, functools.partial(jit, donate_argnums=0)
    if mesh is not None:
        if not sweep and mesh.shape["sweep"] > 1:
            raise ValueError(f"a single run cannot use a sweep axis of {mesh.shape['sweep']} "
                             "devices; put them on the data axis")
        one = jax.eval_shape(init, jax.random.key(0), HParams())
        state_sh = distributed.state_shardings(mesh, one, cfg.num_envs, sweep)
        member_sh = distributed.member_sharding(mesh, sweep)
        # Sweep metrics stay split by member (the host gathers them): an in-program
        # all-gather would add collectives over a second mesh axis for nothing.
        metrics_sh = member_sh
        init_v = distributed.under_mesh(init_v, mesh)
        jit_init = functools.partial(jit, in_shardings=(member_sh, member_sh),
                                     out_shardings=state_sh)
        jit_chunk = functools.partial(jit, donate_argnums=0,
                                      in_shardings=(state_sh, member_sh),
                                      out_shardings=(state_sh, metrics_sh))
    init_fn = jit_init(init_v)
    if mesh is not None:
        init_fn = _placed_init(init_fn, jit(jax.vmap(init)) if sweep else jit(init),
                               state_sh)
    cache: dict[int, Callable] = {}

    def chunk(length: int) -> Callable:
        if length not in cache:
            def run_chunk(state: TrainState, hp: HParams) -> tuple[TrainState, dict]:
                state, metrics = jax.lax.scan(lambda s, _: step(s, hp), state, None,
                                              length=length)
                if sweep:  # scan stacks on axis 0: [chunk, members] -> [members, chunk]
                    metrics = jax.tree.map(lambda m: jnp.swapaxes(m, 0, 1), metrics)
                return state, metrics

            cache[length] = jit_chunk(run_chunk if mesh is None else
                                      distributed.under_mesh(run_chunk, mesh))
        return cache[length]

    return Runner(cfg, init_fn, chunk, sweep, mesh, state_sh if mesh is not None else None)


def state_template(runner: Runner, key: jax.Array, hparams: HParams) -> TrainState:
    """Shapes, dtypes and (with a mesh) shardings of ``runner.init(key, hparams)``.

    The template to restore a checkpoint into (:meth:`mimex_jax.checkpoint.Checkpointer.
    restore` places every leaf as its template says).
    """
    template = jax.eval_shape(runner.init, key, hparams)
    if runner.state_sharding is None:
        return template
    return jax.tree.map(lambda t, s: jax.ShapeDtypeStruct(t.shape, t.dtype, sharding=s,
                                                          weak_type=t.weak_type),
                        template, runner.state_sharding)


def _placed_init(sharded_init: Callable, local_init: Callable, state_sh: TrainState
                 ) -> Callable[[jax.Array, HParams], TrainState]:
    """``init`` for a mesh: the single-device init on every process, then placed.

    Initialisation runs once, so it is done as the plain (vmapped, for a sweep) program on
    host copies of the keys and hparams, and the state is then laid out on the mesh (each
    process placing its own shards); partitioning a program that runs once buys nothing. Traced
    (``jax.eval_shape``), it is the partitioned program; :func:`state_template` adds the
    shardings to its shapes.
    """

    def init(key: jax.Array, hp: HParams) -> TrainState:
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((key, hp))):
            return sharded_init(key, hp)
        state = local_init(distributed.to_host(key), distributed.to_host(hp))
        return distributed.put(state, state_sh)

    return init


def iteration_of(state: TrainState) -> int:
    """The number of updates a (possibly sweep-stacked) state has done."""
    it = np.asarray(distributed.to_host(state.iteration))  # gathered across hosts if needed
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
    if runner.mesh is not None:  # global arrays, so that several hosts can feed them
        hparams = distributed.put(hparams, distributed.member_sharding(runner.mesh,
                                                                       runner.sweep))
    if state is None:
        state = runner.init(key, hparams)
    done = iteration_of(state)
    if done > total:
        raise ValueError(f"the state has done {done} iterations, more than the {total} asked")
    history: list[dict[str, np.ndarray]] = []
    while done < total:
        length = min(chunk, total - done)
        t0 = time.perf_counter()
        state, metrics = runner.chunk(length)(state, hparams)
        metrics = distributed.to_host(metrics)  # one transfer per chunk
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
