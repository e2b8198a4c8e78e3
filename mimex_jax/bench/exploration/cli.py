"""Command line of the exploration benchmark (``mimex-jax bench exploration``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import mimex_jax
from mimex_jax.bench.exploration.methods import (
    ABLATIONS,
    DEFAULT_METHODS,
    METHODS,
    ablation_programs,
    method_config,
)
from mimex_jax.bench.exploration.report import write_reports
from mimex_jax.bench.exploration.runner import (
    brief,
    compare,
    run_entry,
    run_key,
    versions,
    write_result,
)
from mimex_jax.bench.exploration.tasks import (
    ABLATION_TASKS,
    TASKS,
    Instance,
    ablation_instances,
    ablation_task_names,
)
from mimex_jax.bench.machine import git_commit
from mimex_jax.trainer import HParams, TrainConfig


def default_out(quick: bool) -> Path:
    """``benchmarks/results/`` when run from a checkout of the repo, else ``./``."""
    name = "exploration_quick.json" if quick else "exploration.json"
    base = Path.cwd() / "benchmarks" / "results"
    return base / name if base.parent.is_dir() else Path.cwd() / name


def default_tasks() -> list[str]:
    """The registered tasks that run when ``--tasks`` is not given (``Task.default``)."""
    return [n for n, t in TASKS.items() if t.default]


def plan_seeds(args: argparse.Namespace) -> dict[str, list[int]]:
    """Seeds per task of the run (main tasks and ablation tasks): ``{task: [0..n-1]}``."""
    names = list(args.tasks)
    if args.ablations:
        names += [i.task for i in ablation_instances(args)]
    return {n: list(range(TASKS[n].num_seeds(args))) for n in dict.fromkeys(names)}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The benchmark's argument parser; ``--tasks`` lists the tasks registered now."""
    p = argparse.ArgumentParser(
        prog=prog, description="Exploration benchmark: no bonus vs RND vs ICM vs MIMEx on "
        "sparse-reward tasks, IQM with 95% bootstrap CIs, plus MIMEx ablations.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tasks", nargs="*", default=default_tasks(), choices=list(TASKS),
                   help="tasks of the main comparison (none given: ablations only; opt-in "
                        "tasks: " + (", ".join(n + (f" ({t.note})" if t.note else "")
                                               for n, t in TASKS.items() if not t.default)
                                     or "none") + ")")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   choices=list(METHODS))
    p.add_argument("--ablations", nargs="*", default=list(ABLATIONS), choices=list(ABLATIONS),
                   help="ablation factors (none given: no ablations)")
    p.add_argument("--no-ablations", action="store_true", help="skip the ablations")
    p.add_argument("--ablation-tasks", nargs="+", default=list(ABLATION_TASKS),
                   choices=ablation_task_names(), help="tasks the ablations run on")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per method (one vmapped run); default per task: "
                        + ", ".join(f"{n} {t.seeds} (--quick {t.quick_seeds})"
                                    for n, t in TASKS.items()))
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="DeepSea sizes (default 10 14 18 22 26 30; --quick: 10)")
    p.add_argument("--iterations", type=int, default=None,
                   help="PPO iterations per run, every task (default: per task, see the doc)")
    p.add_argument("--num-envs", type=int, default=None,
                   help="parallel envs per run of the pixel tasks (default: per task, see the "
                        "doc; the other tasks keep theirs)")
    p.add_argument("--chunk", type=int, default=10, help="iterations per compiled chunk")
    p.add_argument("--one-by-one", action="store_true",
                   help="train each program's members (seeds x settings) one after another "
                        "through one single-run program instead of one vmapped program: one "
                        "member's device memory at a time, same results")
    p.add_argument("--eval-episodes", type=int, default=64,
                   help="fresh episodes per seed for the final policy")
    p.add_argument("--quick", action="store_true",
                   help="every default task and ablation factor with small budgets, 16 eval "
                        "episodes, ablations on DeepSea only")
    p.add_argument("--out", type=Path, default=None,
                   help="result JSON (default benchmarks/results/exploration.json, --quick: "
                        "exploration_quick.json); .md and .png files beside it")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs already in --out and run only the missing ones")
    p.add_argument("--compare", type=Path, default=None, metavar="JSON",
                   help="after the run, check that every run also in JSON (e.g. the "
                        "committed results) has identical per-seed numbers; exit 1 if not")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--render", type=Path, default=None, metavar="JSON",
                   help="only rewrite the report (.md) and plots of an existing result")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the benchmark (or ``--render`` a result); 0 on success, 1 if ``--compare``
    finds differing runs."""
    args = build_parser(prog).parse_args(argv)
    if args.render is not None:
        write_reports(json.loads(args.render.read_text()), args.render, not args.no_plot)
        return 0
    for name in ("seeds", "chunk", "eval_episodes", "num_envs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}={getattr(args, name)} is invalid; "
                             "allowed: an integer >= 1")
    given = argv if argv is not None else sys.argv[1:]
    if args.quick:  # small budgets: fewer eval episodes and ablation tasks
        if "--eval-episodes" not in given:
            args.eval_episodes = 16
        if "--ablation-tasks" not in given:
            args.ablation_tasks = ["deepsea"]
    if args.no_ablations:
        args.ablations = []
    out_path = args.out or default_out(args.quick)
    seeds = plan_seeds(args)
    command = " ".join(["mimex-jax bench exploration" if prog else
                        "python benchmarks/exploration.py",
                        *(sys.argv[1:] if argv is None else argv)]).strip()
    done: dict[str, dict] = {}
    if args.resume and out_path.exists():
        prev = json.loads(out_path.read_text())
        if prev.get("seeds") != seeds:
            raise ValueError(f"--resume: {out_path} has seeds {prev.get('seeds')}, this run "
                             f"{seeds}")
        done = {run_key(e): e for e in prev["results"]}
        print(f"resuming: {len(done)} runs already in {out_path}")

    plan: list[tuple[str, Instance, TrainConfig, list[tuple[dict, HParams]]]] = []
    for task_name in args.tasks:
        for inst in TASKS[task_name].instances(args):
            for name in args.methods:
                cfg, hp = method_config(inst, METHODS[name])
                plan.append((f"{inst.label} / {name}", inst, cfg,
                             [({"method": name, "ablation": None, "value": None}, hp)]))
    if args.ablations:
        for inst in ablation_instances(args):
            for prog_name, cfg, variants in ablation_programs(inst, args.ablations):
                plan.append((f"{inst.label} ablation {prog_name}", inst, cfg, variants))

    t_start = time.perf_counter()
    results: list[dict[str, Any]] = []
    header = {"benchmark": "exploration", "command": command, "quick": args.quick,
              "seeds": seeds, "git_commit": git_commit(), "mimex_jax": mimex_jax.__version__,
              "versions": versions(),
              "methods": {k: dataclasses.asdict(v) for k, v in METHODS.items()
                          if k in args.methods or (k == "mimex" and args.ablations)},
              "tasks": {k: TASKS[k].description for k in args.tasks},
              "ablations": {k: dataclasses.asdict(ABLATIONS[k]) for k in args.ablations}}
    for i, (tag, inst, cfg, variants) in enumerate(plan):
        keys = [run_key({"instance": inst.label, **labels}) for labels, _ in variants]
        if all(k in done for k in keys):
            results.extend(done[k] for k in keys)
            continue
        task_seeds = list(range(TASKS[inst.task].num_seeds(args)))
        layout = ("one after another through one compiled program" if args.one_by_one
                  else "in one vmapped program")
        print(f"[{i + 1}/{len(plan)}] {tag}: {len(variants)} setting(s) x {len(task_seeds)} "
              f"seeds {layout}", flush=True)
        entries = run_entry(inst, cfg, variants, task_seeds, args, tag)
        print(f"  done in {entries[0]['train_seconds_for_program']}s; "
              + "; ".join(brief(e) for e in entries), flush=True)
        results.extend(entries)
        write_result(out_path, header, results, time.perf_counter() - t_start,
                     complete=i + 1 == len(plan))
    wall = time.perf_counter() - t_start
    out = write_result(out_path, header, results, wall, complete=True)
    print(f"\nwrote {out_path} (wall {wall:.0f}s)")
    write_reports(out, out_path, plot_png=not args.no_plot)
    if args.compare is not None:
        return 0 if compare(out, json.loads(args.compare.read_text()), args.compare) else 1
    return 0
