"""Runs as a researcher launches them: a run directory with config, logs, checkpoints.

:func:`train` takes a validated :class:`~mimex_jax.config.RunConfig` and a run directory
and does everything between: builds the members (sweep settings x seeds; one member
runs unvmapped, several run as one vmapped program), trains through the chunked host
loop (:mod:`mimex_jax.loop`), logs every chunk (:mod:`mimex_jax.logging`), saves
checkpoints (:mod:`mimex_jax.checkpoint`), and at the end evaluates the final policy.

Run directory::

    config.yaml        the fully resolved config (load it again with load_config)
    members.json       one label per member: its swept settings and seed
    metrics.jsonl/.csv per-iteration metrics (and member), TensorBoard files in tb/
    checkpoints/<it>/  orbax checkpoints of the whole TrainState (every member)
    eval.json          final evaluation (deterministic policy), per member
    videos/            with run.video_every: iter_<iteration>.mp4 clips (mimex_jax.video)
    summary.json       run summary, with the per-setting results (mimex_jax.report)
    baseline/          the same run without a bonus, with run.compare_baseline
    run.lock           while training: the owner (:mod:`mimex_jax.runlock`)

``resume=True`` continues from the newest checkpoint in the directory, exactly: the state
holds the RNG key and iteration counter, and log rows past the checkpoint (written
before an interruption) are dropped before logging resumes. A directory without a
complete checkpoint (stopped before its first one) starts again from iteration 0, its
partial logs removed. One process owns the directory while :func:`train` runs (its lock);
another one is refused before anything is written or compiled.

On several devices the run is laid over a mesh (``run.mesh`` / ``run.devices``, see
:mod:`mimex_jax.distributed`); with several processes (``jax.distributed``) every process
runs this same function, checkpoints are written jointly by orbax, and only process 0
writes the logs, the config and the summaries.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from mimex_jax import distributed, loop, report, runlock, xla
from mimex_jax.checkpoint import Checkpointer
from mimex_jax.config import RunConfig, dump_yaml, make_sweep
from mimex_jax.evaluate import make_evaluate
from mimex_jax.logging import (
    METRICS_CSV,
    METRICS_JSONL,
    TENSORBOARD_DIR,
    MetricsLogger,
    ProgressBar,
)
from mimex_jax.trainer import HParams, TrainConfig, TrainState
from mimex_jax.video import Recorder, check_video

_LOGS = (METRICS_JSONL, METRICS_CSV, TENSORBOARD_DIR)  # what a run appends to


@dataclasses.dataclass(frozen=True)
class Members:
    """What a run trains: config, per-member hparams and keys, labels."""

    cfg: TrainConfig
    hparams: HParams            # scalars (one member) or [members] arrays
    keys: jax.Array             # one key, or [members] keys
    labels: list[dict[str, float]]

    @property
    def sweep(self) -> bool:
        return len(self.labels) > 1


def members_of(rc: RunConfig) -> Members:
    """Sweep settings x seeds (seed varies fastest); a single member stays unvmapped."""
    cfg, hps, settings = make_sweep(rc)
    seeds = list(rc.run.seeds)
    labels = [{**s, "seed": seed} for s in settings for seed in seeds]
    if len(labels) == 1:
        hp = jax.tree.map(lambda x: x[0], hps)
        return Members(cfg, hp, jax.random.key(seeds[0]), labels)
    hp = jax.tree.map(lambda x: jnp.repeat(x, len(seeds), axis=0), hps)
    keys = jnp.stack([jax.random.key(lab["seed"]) for lab in labels])
    return Members(cfg, hp, keys, labels)


def _scalar_summary(metrics: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean over the chunk's iterations (and members) of every metric; ``episode_*``
    metrics are averaged over the finished episodes (weighted by ``episodes``), so
    iterations in which no episode ended (reported as 0) do not dilute them."""
    out = {k: float(np.mean(v)) for k, v in metrics.items()}
    if "episodes" in metrics:
        n = np.asarray(metrics["episodes"], np.float64)
        for k, v in metrics.items():
            if k.startswith("episode_"):
                out[k] = float(np.sum(np.asarray(v) * n) / max(float(np.sum(n)), 1.0))
    return out


def _truncate_logs(run_dir: Path, iteration: int) -> None:
    """Drop log rows of iterations >= ``iteration`` (written after the last checkpoint)."""
    jl = run_dir / "metrics.jsonl"
    if jl.exists():
        rows = [ln for ln in jl.read_text().splitlines() if ln.strip()]
        keep = [ln for ln in rows if json.loads(ln)["iteration"] < iteration]
        jl.write_text("".join(ln + "\n" for ln in keep))
    path = run_dir / "metrics.csv"
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if rows:
            col = rows[0].index("iteration")
            keep = [rows[0]] + [r for r in rows[1:] if int(r[col]) < iteration]
            with open(path, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(keep)


def _clear_logs(run_dir: Path) -> bool:
    """Remove the metric logs (JSONL, CSV, TensorBoard) of a run that starts over; returns
    whether there were any."""
    found = False
    for name in _LOGS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        found = True
    return found


def evaluate_members(m: Members, state: TrainState, episodes: int,
                     deterministic: bool = True, seed: int = 12345) -> dict[str, Any]:
    """Mean return / success / length of ``episodes`` fresh episodes, per member."""
    evaluate = make_evaluate(m.cfg, episodes)
    fn = lambda p, s, k: evaluate(p, s, k, deterministic)  # noqa: E731
    keys = jax.random.split(jax.random.key(seed), len(m.labels))
    mjx = xla.steps_mjx(m.cfg.env_id)
    if m.sweep:
        out = xla.jit(jax.vmap(fn), mjx=mjx)(state.params, state.obs_stats, keys)
    else:
        out = jax.tree.map(lambda x: x[None], xla.jit(fn, mjx=mjx)(state.params,
                                                                   state.obs_stats, keys[0]))
    out = jax.device_get(out)
    return {
        "episodes": episodes, "deterministic": deterministic,
        "members": [
            {**lab, "return": float(np.mean(out["return"][i])),
             "success": float(np.mean(out["success"][i])),
             "length": float(np.mean(out["length"][i]))}
            for i, lab in enumerate(m.labels)],
    }


def train(rc: RunConfig, run_dir: str | Path, *, resume: bool = False,
          progress: bool = True, stream: TextIO | None = None,
          stop_at: int | None = None, force_unlock: bool = False) -> dict[str, Any]:
    """Train ``rc`` into ``run_dir`` (or continue it); returns the run summary.

    ``stop_at`` ends this call after that many iterations in total (with a checkpoint
    there), as a job with a time limit would; ``resume=True`` later continues the run
    exactly as if it had not stopped (from iteration 0, its partial logs cleared, when it
    stopped before its first checkpoint). The summary (also written to ``summary.json``)
    holds the final evaluation (only once the run is complete), the mean of the last
    chunk's training metrics over all members, the per-setting aggregates over seeds,
    ranked (``settings``, see :mod:`mimex_jax.report`), iterations, env steps and wall
    time.

    The run directory's lock (:mod:`mimex_jax.runlock`) is held throughout: a directory
    owned by another live process raises :class:`~mimex_jax.runlock.RunLockedError`
    before anything is written or compiled; ``force_unlock`` takes over a lock whose owner
    cannot be checked (another host).
    """
    with runlock.hold(run_dir, force=force_unlock):
        return _train(rc, Path(run_dir), resume=resume, progress=progress,
                      stream=stream or sys.stderr, stop_at=stop_at)


def _train(rc: RunConfig, run_dir: Path, *, resume: bool, progress: bool, stream: TextIO,
           stop_at: int | None) -> dict[str, Any]:
    m = members_of(rc)
    cfg, opts = m.cfg, rc.run
    ckpt_dir = run_dir / "checkpoints"
    if resume:
        if not (run_dir / "config.yaml").exists() and not ckpt_dir.exists():
            raise ValueError(f"--resume {run_dir}: not a run directory (no config.yaml or "
                             "checkpoints/)")
    elif ckpt_dir.exists() and any(ckpt_dir.iterdir()):
        raise ValueError(f"run directory {run_dir} already holds checkpoints; resume it "
                         "(--resume) or choose another --out")
    recorder = _recorder(rc, m, run_dir)  # refuses a task without a renderer first
    run_dir.mkdir(parents=True, exist_ok=True)
    mesh = distributed.mesh_for_run(opts.mesh, opts.devices, len(m.labels), cfg)
    runner = loop.make_runner(cfg, sweep=m.sweep, mesh=mesh)
    main = distributed.is_main_process()  # only process 0 writes logs and run files
    checkpointer = Checkpointer(ckpt_dir, keep_last=opts.keep_last,
                                best_metric=opts.best_metric, best_mode=opts.best_mode)
    state = None
    if checkpointer.latest_step() is None:
        # A new run, or one stopped before its first checkpoint (e.g. killed while
        # compiling): nothing to restore, so it starts at iteration 0, and the logs of an
        # earlier start are dropped rather than appended to.
        cleared = main and _clear_logs(run_dir)
        if main and resume:
            print(f"{run_dir} holds no complete checkpoint yet (the run stopped before its "
                  "first one): starting it from iteration 0 with its config"
                  + (", its partial logs cleared" if cleared else ""), file=stream, flush=True)
        elif cleared:
            print(f"{run_dir}: removed the logs of an earlier start that stopped before its "
                  "first checkpoint", file=stream, flush=True)
    else:
        template = loop.state_template(runner, m.keys, m.hparams)  # with shardings
        state, saved_hp, meta = checkpointer.restore(template, cfg=cfg)
        if not all(np.array_equal(np.asarray(a), np.asarray(b))
                   for a, b in zip(saved_hp, m.hparams, strict=True)):
            warnings.warn("resuming with hyperparameters that differ from the checkpoint's; "
                          "the run continues with the new ones", stacklevel=2)
        start = loop.iteration_of(state)
        if main:
            _truncate_logs(run_dir, start)
            print(f"resuming {run_dir} from iteration {start} (checkpoint step {meta['step']})",
                  file=stream, flush=True)
    if main:
        dump_yaml(rc, run_dir / "config.yaml")
    total = cfg.num_iterations
    if stop_at is not None and not 0 < stop_at <= total:
        raise ValueError(f"stop_at={stop_at} is invalid; allowed: 1 .. {total} (the run's "
                         "iterations)")
    end = total if stop_at is None else stop_at
    every = opts.checkpoint_every
    logger = MetricsLogger(run_dir, backends=opts.log_backends if main else (),
                           wandb_project=opts.wandb_project,
                           labels=m.labels if main else None, config_dict=None)
    desc = f"{cfg.env_id} {cfg.reward}" + (f" x{len(m.labels)}" if m.sweep else "")
    bar = ProgressBar(total * cfg.steps_per_iteration, desc=desc, stream=stream,
                      enabled=progress and main)
    last: dict[str, float] = {}
    last_saved = [loop.iteration_of(state) if state is not None else -1]
    videos: list[str] = []

    def on_chunk(r: loop.ChunkResult) -> None:
        last.clear()
        last.update(_scalar_summary(r.metrics))
        logger.log_chunk(r.first_iteration, r.metrics, cfg.steps_per_iteration)
        bar.update(r.env_steps, ret=last["episode_return"], succ=last["episode_success"],
                   r_int=last["reward_int"])
        crossed = every > 0 and r.iterations // every > r.first_iteration // every
        if (crossed or r.iterations == end) and r.iterations > last_saved[0]:
            checkpointer.save(r.iterations, r.state, cfg, m.hparams, metrics=last,
                              extra={"labels": m.labels})
            last_saved[0] = r.iterations
        ve = opts.video_every
        if recorder is not None and main and (
                r.iterations // ve > r.first_iteration // ve or r.iterations == end):
            params, obs_stats = r.state.params, r.state.obs_stats
            if m.sweep:  # member 0
                params, obs_stats = jax.tree.map(lambda x: x[0], (params, obs_stats))
            path, clip, fps = recorder.record(params, obs_stats, r.iterations, stream=stream)
            logger.log_video(path, clip, fps, r.iterations * cfg.steps_per_iteration,
                             member=0 if m.sweep else None)
            videos.append(str(path.relative_to(run_dir)))

    t0 = time.perf_counter()
    try:
        state, _ = loop.run(runner, m.hparams, m.keys, state=state, chunk=opts.chunk,
                            iterations=end, callbacks=[on_chunk])
    finally:
        bar.close()
        logger.close()
        checkpointer.close()
    seconds = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "iterations": end, "total_iterations": total,
        "env_steps": end * cfg.steps_per_iteration,
        "seconds": seconds, "members": m.labels, "last_chunk_all_members": last,
    }
    if videos:
        summary["videos"] = videos
    if opts.eval_episodes > 0 and end == total:
        if jax.process_count() > 1:  # host copies: evaluation runs on each process's devices
            state = state._replace(params=distributed.to_host(state.params),
                                   obs_stats=distributed.to_host(state.obs_stats))
        summary["eval"] = evaluate_members(m, state, opts.eval_episodes)
        if main:
            (run_dir / "eval.json").write_text(json.dumps(summary["eval"], indent=1))
    if main:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        # then the per-setting results over seeds (read back from the files just written)
        summary.update(report.summary_entries(run_dir))
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _recorder(rc: RunConfig, m: Members, run_dir: Path) -> Recorder | None:
    """The clip recorder of ``run.video_every`` (None when off), checked before compiling."""
    if rc.run.video_every == 0:
        return None
    if jax.process_count() > 1:
        raise ValueError(f"run.video_every={rc.run.video_every} is invalid in a run of "
                         f"{jax.process_count()} processes (clips are recorded by one "
                         "process); allowed: 0")
    check_video(m.cfg)
    return Recorder(m.cfg, run_dir, rc.run.video_size)


def baseline_config(rc: RunConfig) -> RunConfig:
    """``rc`` without an exploration bonus (same budget, seeds and PPO settings)."""
    train_cfg = dataclasses.replace(rc.train, reward="none", normalize_intrinsic=False,
                                    center_intrinsic="none",
                                    mimex=(), bonus=())
    run = dataclasses.replace(rc.run, compare_baseline=False)
    return dataclasses.replace(rc, train=train_cfg, run=run, sweep=None)


def random_policy(rc: RunConfig, episodes: int) -> dict[str, float]:
    """The untrained policy sampling its actions (near-uniform at initialisation)."""
    m = members_of(dataclasses.replace(rc, sweep=None))
    runner = loop.make_runner(m.cfg, sweep=m.sweep)
    state = runner.init(m.keys, m.hparams)
    ev = evaluate_members(m, state, episodes, deterministic=False)
    return {k: float(np.mean([r[k] for r in ev["members"]])) for k in ("return", "success")}

