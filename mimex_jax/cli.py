"""The ``mimex-jax`` command: train, sweep, eval, plot, report (and a reward-model demo).

``mimex-jax`` with no arguments runs ``mimex-jax train`` on the embedded default config
(``configs/default.yaml``): PPO + MIMEx on a sparse-reward task, small enough for a
laptop CPU, ending with a table of the final policy against a baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mimex_jax import __version__

if TYPE_CHECKING:
    from mimex_jax.config import RunConfig

COMMANDS = ("train", "sweep", "eval", "plot", "report", "demo", "bench")
BENCHMARKS = ("exploration", "novelty")


def _fmt(values: list[float]) -> str:
    """Mean, with min-max over members when there are several."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def _default_out(cfg, kind: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = cfg.env_id.split(":", 1)[-1].replace("/", "_")
    return Path("runs") / f"{stamp}-{name}-{cfg.reward}" if kind == "train" else \
        Path("runs") / f"{stamp}-{name}-{cfg.reward}-sweep"


def _table(rows: list[tuple[str, dict]], has_success: bool = True) -> str:
    """The final table; success columns read ``n/a`` for tasks without a success flag."""
    lines = ["| run | env steps | eval return | eval success | train return (last chunk) | "
             "train success (last chunk) |", "|---|---|---|---|---|---|"]
    for name, s in rows:
        ev = s.get("eval", {}).get("members", [])
        last = s.get("last_chunk_all_members", {})
        train = [f"{last[k]:.3f}" if k in last else "-"
                 for k in ("episode_return", "episode_success")]
        succ = _fmt([m['success'] for m in ev]) if ev else '-'
        if not has_success:
            succ = train[1] = "n/a"
        lines.append(
            f"| {name} | {s.get('env_steps', '-')} | "
            f"{_fmt([m['return'] for m in ev]) if ev else '-'} | "
            f"{succ} | {train[0]} | {train[1]} |")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace, sweep: bool = False) -> int:
    from mimex_jax import runlock  # no JAX yet: a refused process stops in well under 1 s

    if args.distributed:  # before anything touches a device
        from mimex_jax import distributed

        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    elif any(v is not None for v in (args.coordinator, args.num_processes, args.process_id)):
        raise ValueError("--coordinator / --num-processes / --process-id need --distributed")
    overrides = list(args.set or [])
    if args.seeds is not None:
        overrides.append(f"run.seeds={args.seeds}")
    with contextlib.ExitStack() as stack:
        # One owner per run directory: an existing directory is locked before the config is
        # even read (a refused process touches nothing, not even a device); a new one once
        # the config is valid, so a config error leaves no directory behind.
        if args.resume is not None:
            run_dir = Path(args.resume)
            config_path = args.config or [run_dir / "config.yaml"]
            if not Path(config_path[0]).exists():
                raise ValueError(f"--resume {run_dir}: no config.yaml there (not a run "
                                 "directory)")
            stack.enter_context(runlock.hold(run_dir, force=args.force_unlock))
            from mimex_jax.config import load_config

            rc = load_config(config_path, overrides)
        else:
            if args.out and Path(args.out).is_dir():
                stack.enter_context(runlock.hold(args.out, force=args.force_unlock))
            from mimex_jax.config import load_config

            rc = load_config(args.config or None, overrides)
            if sweep and rc.sweep is None:
                raise ValueError("mimex-jax sweep: the config has no 'sweep:' section (grid "
                                 "or random); see configs/sweeps/ for examples")
            run_dir = Path(args.out) if args.out else _default_out(rc.train, "sweep" if sweep
                                                                    else "train")
            stack.enter_context(runlock.hold(run_dir, force=args.force_unlock))
        return _train_command(args, rc, run_dir)


def _train_command(args: argparse.Namespace, rc: RunConfig, run_dir: Path) -> int:
    """The body of ``train`` / ``sweep`` once ``run_dir`` is locked by this process."""
    from mimex_jax import distributed, experiment

    cfg = rc.train
    n_settings = 1 if rc.sweep is None else len(experiment.make_sweep(rc)[2])
    n_members = len(rc.run.seeds) * n_settings
    main = distributed.is_main_process()
    show = print if main else (lambda *a, **k: None)  # one process reports
    show(f"mimex-jax {__version__}: {cfg.env_id}, reward {cfg.reward}, {n_members} "
         f"member(s), {cfg.num_iterations} iterations x {cfg.steps_per_iteration} env steps "
         f"-> {run_dir}", flush=True)
    summary = experiment.train(rc, run_dir, resume=args.resume is not None,
                               progress=not args.no_progress, stop_at=args.stop_at)
    if summary["iterations"] < summary["total_iterations"]:
        show(f"stopped at iteration {summary['iterations']} of "
             f"{summary['total_iterations']}; continue with: mimex-jax train --resume "
             f"{run_dir}" + (f"; the per-setting table so far: mimex-jax report {run_dir}"
                             if n_settings > 1 else ""))
        return 0
    rows = [(f"{cfg.reward} (this run)", summary)]
    if rc.run.compare_baseline and cfg.reward != "none":
        show("training the no-bonus baseline on the same budget ...", flush=True)
        base = experiment.train(experiment.baseline_config(rc), run_dir / "baseline",
                                resume=(run_dir / "baseline" / "checkpoints").exists(),
                                progress=not args.no_progress)
        rows.append(("none (same budget)", base))
    elif rc.run.eval_episodes > 0 and n_settings == 1:
        rnd = experiment.random_policy(rc, rc.run.eval_episodes)
        rows.append(("untrained policy, sampled actions",
                     {"env_steps": 0, "eval": {"members": [rnd]}}))
    if n_settings > 1:  # one row per setting over its seeds, ranked (mimex_jax.report)
        show(f"\nfinished in {summary['seconds']:.0f}s")
        if main:
            _print_report(run_dir)
        return 0
    show(f"\nfinished in {summary['seconds']:.0f}s; eval over {rc.run.eval_episodes} "
         "episodes per member, deterministic policy (mean [min, max] over members)")
    from mimex_jax.report import _has_success

    show(_table(rows, _has_success(rc)))
    show(f"\nrun directory: {run_dir}  (plot: mimex-jax plot {run_dir})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import jax

    from mimex_jax import experiment, loop
    from mimex_jax.checkpoint import Checkpointer, config_from_metadata
    from mimex_jax.trainer import HParams

    path = Path(args.checkpoint)
    ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    # Read-only and without the run's lock: works while the run is still training, and
    # writes nothing into the run directory.
    with Checkpointer(ckpt_dir, read_only=True) as ckpt:
        meta = ckpt.metadata(args.step)
        cfg = config_from_metadata(meta)
        labels = meta["extra"].get("labels") or [{"seed": 0}]
        if args.video is not None:  # refuse a task without a renderer before compiling
            _check_video_args(args, cfg, len(labels))
        sweep = len(labels) > 1
        runner = loop.make_runner(cfg, sweep=sweep)
        hp = HParams()
        if sweep:
            import jax.numpy as jnp

            hp = jax.tree.map(lambda x: jnp.full((len(labels),), x, jnp.float32), hp)
            keys = jnp.stack([jax.random.key(0)] * len(labels))
        else:
            keys = jax.random.key(0)
        template = jax.eval_shape(runner.init, keys, hp)
        state, hp, meta = ckpt.restore(template, step=meta["step"])
    if args.video is not None:
        return _eval_video(args, cfg, state, labels, meta["step"])
    members = experiment.Members(cfg, hp, keys, labels)
    ev = experiment.evaluate_members(members, state, args.episodes,
                                     deterministic=not args.stochastic, seed=args.seed)
    print(f"checkpoint {ckpt_dir} step {meta['step']} ({cfg.env_id}, reward {cfg.reward}): "
          f"{args.episodes} episodes per member, "
          f"{'sampled' if args.stochastic else 'deterministic'} policy")
    print("| member | return | success | length |\n|---|---|---|---|")
    for m in ev["members"]:
        lab = ", ".join(f"{k}={v:g}" for k, v in m.items()
                        if k not in ("return", "success", "length"))
        print(f"| {lab} | {m['return']:.3f} | {m['success']:.3f} | {m['length']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"step": meta["step"], **ev}, indent=1))
    return 0


def _camera_arg(text: str | None) -> str | int | None:
    return int(text) if text is not None and text.isdigit() else text


def _check_video_args(args: argparse.Namespace, cfg, members: int) -> None:
    from mimex_jax import video

    video.check_size(args.video_size, "--video-size")
    if args.video_episodes < 1:
        raise ValueError(f"--video-episodes={args.video_episodes} is invalid; allowed: an "
                         "integer >= 1")
    if not 0 <= args.video_member < members:
        raise ValueError(f"--video-member={args.video_member} is invalid; allowed: 0 .. "
                         f"{members - 1} (the checkpoint's members)")
    if args.video_fps is not None and not args.video_fps > 0:
        raise ValueError(f"--video-fps={args.video_fps} is invalid; allowed: a number > 0")
    video.check_video(cfg, _camera_arg(args.video_camera))


def _eval_video(args: argparse.Namespace, cfg, state, labels: list[dict], step: int) -> int:
    """``eval --video``: record the deterministic (or sampled) policy's episodes."""
    import time

    import jax

    from mimex_jax import video, xla

    i = args.video_member
    params, obs_stats = state.params, state.obs_stats
    if len(labels) > 1:
        params, obs_stats = jax.tree.map(lambda x: x[i], (params, obs_stats))
    fn = video.make_video(cfg, args.video_episodes, args.video_size,
                          _camera_arg(args.video_camera))
    t0 = time.perf_counter()
    out = jax.device_get(xla.jit(fn, static_argnums=3, mjx=xla.steps_mjx(cfg.env_id))(
        params, obs_stats, jax.random.key(args.seed), not args.stochastic))
    clip = video.episode_clip(out["frames"], out["length"])
    fps = args.video_fps if args.video_fps is not None else video.video_fps(cfg)
    written = video.write_video(args.video, clip, fps)
    lab = ", ".join(f"{k}={v:g}" for k, v in labels[i].items())
    print(f"checkpoint step {step} ({cfg.env_id}, reward {cfg.reward}), member {lab}: "
          f"{args.video_episodes} episode(s), "
          f"{'sampled' if args.stochastic else 'deterministic'} policy, "
          f"{time.perf_counter() - t0:.0f}s")
    print("| episode | return | success | length |\n|---|---|---|---|")
    for e in range(args.video_episodes):
        print(f"| {e} | {out['return'][e]:.3f} | {out['success'][e]:.3f} | "
              f"{out['length'][e]:.0f} |")
    print(f"wrote {written} ({len(clip)} frames, {clip.shape[2]}x{clip.shape[1]}, "
          f"{fps:g} fps)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "step": step, "video": str(written), "frames": len(clip), "fps": fps,
            "episodes": [{"return": float(out["return"][e]), "success": float(out["success"][e]),
                          "length": float(out["length"][e])}
                         for e in range(args.video_episodes)]}, indent=1))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from mimex_jax.plot import plot_runs

    out = Path(args.out) if args.out else Path(args.run_dirs[0]) / "curves.png"
    metrics = [m for m in args.metrics.split(",") if m]
    path = plot_runs(args.run_dirs, out, metrics=metrics, smooth=args.smooth)
    print(f"wrote {path}")
    return 0


def _print_report(run_dir: str | Path, plots: bool = True) -> None:
    from mimex_jax import report

    text, files = report.write(run_dir, plots=plots)
    print(text)
    print("wrote " + ", ".join(str(f) for f in files))


def cmd_report(args: argparse.Namespace) -> int:
    """Per-setting tables (and plots) of finished or interrupted run directories."""
    for i, run_dir in enumerate(args.run_dirs):
        if i:
            print()
        _print_report(run_dir, plots=not args.no_plot)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import jax

    from mimex_jax.demo import run_demo

    if args.updates < 1 or args.batch < 1:
        raise ValueError("--updates and --batch must be >= 1")
    print(f"mimex-jax {__version__} on {jax.default_backend()}: training MIMEx, RND and the "
          f"running-mean baseline on familiar random-walk sequences ({args.updates} updates "
          f"x {args.batch} sequences)", flush=True)
    results = run_demo(args.updates, args.batch, args.seed)
    print("\n| method | reward, familiar | reward, novel | novel / familiar |")
    print("|---|---|---|---|")
    for name, (fam, nov) in results.items():
        print(f"| {name} | {fam:.4f} | {nov:.4f} | {nov / fam:.1f}x |")
    return 0


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the empty ones (None / False) that say nothing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    fmt = _Formatter
    parser = argparse.ArgumentParser(prog="mimex-jax", description=__doc__.split("\n\n")[0],
                                     formatter_class=fmt)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command")

    def run_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", action="append", metavar="FILE",
                       help="YAML config (repeat to merge several, later wins; default: the "
                            "embedded configs/default.yaml)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override one key, e.g. --set train.num_envs=64 "
                            "--set hparams.lr=3e-4 (repeatable)")
        p.add_argument("--seeds", type=int, help="train seeds 0..N-1 in one vmapped program "
                                                 "(overrides run.seeds)")
        p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its "
                                                       "newest checkpoint")
        p.add_argument("--out", metavar="DIR",
                       help="run directory (default: runs/<time>-<task>-<reward>)")
        p.add_argument("--stop-at", type=int, metavar="ITERATION",
                       help="stop after this many iterations in total, with a checkpoint "
                            "(continue later with --resume)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--force-unlock", action="store_true",
                       help="take over the run directory's lock even though its owner "
                            "cannot be checked (a process on another host that you know "
                            "is gone); a lock of a live process on this host is never "
                            "taken over")
        p.add_argument("--distributed", action="store_true",
                       help="join a multi-process run (jax.distributed.initialize): every "
                            "process runs the same command; process 0 writes the logs")
        p.add_argument("--coordinator", metavar="HOST:PORT",
                       help="address of process 0 (default: $JAX_COORDINATOR_ADDRESS or "
                            "cluster detection)")
        p.add_argument("--num-processes", type=int, metavar="N",
                       help="processes in the run (default: $JAX_NUM_PROCESSES or cluster "
                            "detection)")
        p.add_argument("--process-id", type=int, metavar="I",
                       help="this process's index, 0 .. N-1 (default: $JAX_PROCESS_ID or "
                            "cluster detection)")

    t = sub.add_parser("train", help="train PPO with an exploration bonus (the default "
                                     "command)", formatter_class=fmt)
    run_args(t)
    s = sub.add_parser("sweep", help="train every setting of a config's sweep: section x "
                                     "seeds as one program", formatter_class=fmt)
    run_args(s)
    e = sub.add_parser("eval", help="evaluate a checkpoint's policy", formatter_class=fmt)
    e.add_argument("checkpoint", help="a run directory or its checkpoints/ directory")
    e.add_argument("--episodes", type=int, default=16, help="episodes per member")
    e.add_argument("--step", type=int, help="checkpoint step (default: newest)")
    e.add_argument("--stochastic", action="store_true", help="sample actions instead of "
                                                             "the policy's mode")
    e.add_argument("--seed", type=int, default=12345, help="evaluation seed")
    e.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    e.add_argument("--video", metavar="PATH.mp4",
                   help="record a video instead of the --episodes table: the policy's "
                        "episodes rendered by MuJoCo's batch renderer (MP4; a GIF when the "
                        "path ends in .gif or ffmpeg is missing); MuJoCo tasks only")
    e.add_argument("--video-episodes", type=int, default=1, metavar="N",
                   help="episodes in the video, one after another")
    e.add_argument("--video-size", type=int, default=128, metavar="PIXELS",
                   help="frame height and width (an even number >= 16)")
    e.add_argument("--video-camera", metavar="NAME|INDEX",
                   help="the model's camera (default: the pixel task's camera, else "
                        "camera 0)")
    e.add_argument("--video-member", type=int, default=0, metavar="I",
                   help="which member of a sweep checkpoint to record")
    e.add_argument("--video-fps", type=float, metavar="FPS",
                   help="frames per second (default: real time from the task's control "
                        "timestep and action repeat, else 30)")
    pl = sub.add_parser("plot", help="learning curves of run directories as a PNG",
                        formatter_class=fmt)
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    pl.add_argument("--out", help="PNG path (default: <first RUN_DIR>/curves.png)")
    pl.add_argument("--metrics", default="episode_return,episode_success,reward_int",
                    help="comma-separated metric names, one panel each")
    pl.add_argument("--smooth", type=int, default=1, help="moving-average window "
                                                          "(iterations)")
    r = sub.add_parser("report", help="per-setting results over seeds, ranked, of finished or "
                                      "interrupted run directories (table, CSV, plots)",
                       formatter_class=fmt)
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    r.add_argument("--no-plot", action="store_true", help="write the tables only")
    d = sub.add_parser("demo", help="reward-model demo: novel vs familiar sequences",
                       formatter_class=fmt)
    d.add_argument("--updates", type=int, default=200, help="training updates per method")
    d.add_argument("--batch", type=int, default=256, help="sequences per update")
    d.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("bench", help="packaged benchmarks: 'bench exploration --help', "
                       "'bench novelty --help'",
                       formatter_class=fmt)
    b.add_argument("benchmark", choices=BENCHMARKS, help="which benchmark")
    b.add_argument("bench_args", nargs=argparse.REMAINDER,
                   help="the benchmark's own arguments (see 'bench <name> --help')")
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    """Run a benchmark of :mod:`mimex_jax.bench` with its own argument parser."""
    from mimex_jax.bench import exploration, novelty

    mains = {"exploration": exploration.main, "novelty": novelty.main}
    return mains[args.benchmark](args.bench_args, prog=f"mimex-jax bench {args.benchmark}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help",
                                                                  "--version")):
        argv = ["train", *argv]  # the embedded default
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"train": cmd_train, "sweep": lambda a: cmd_train(a, sweep=True),
                "eval": cmd_eval, "plot": cmd_plot, "report": cmd_report, "demo": cmd_demo,
                "bench": cmd_bench}
    try:
        return handlers[args.command](args)
    except ValueError as e:  # configuration and input errors: a message, not a traceback
        print(f"mimex-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; resume with --resume <run directory>", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
