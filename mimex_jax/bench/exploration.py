"""Exploration benchmark: does an intrinsic reward find sparse rewards that PPO alone misses?

    mimex-jax bench exploration                  # full suite (wall time in BENCHMARKS.md)
    mimex-jax bench exploration --quick          # everything, small budgets (<= 15 min, 2 CPUs)
    mimex-jax bench exploration --tasks deepsea --methods none mimex --no-ablations
    python benchmarks/exploration.py ...         # the same entry point

For every task instance and method, ``--seeds`` seeds train as ONE vmapped program
(:func:`mimex_jax.loop.make_runner` with ``sweep=True``) with the same PPO settings and
the same environment-step budget. Methods differ only in the intrinsic reward and its
weight ``k_expl``:

- ``none``: PPO on the extrinsic reward only;
- ``rnd``, ``icm``: the original's RND and ICM (:mod:`mimex_jax.rewards`);
- ``mimex``: MIMEx with the paper's defaults (T=5, uniform token masks at ratio 0.7,
  encoder 128 wide / depth 4 / 4 heads, decoder 64 / depth 1 / 2 heads, cls token,
  reward-model Adam lr 1e-4);
- ``mimex-lr1e-3`` (not in the default set): the same with the reward-model lr at 1e-3.

Every bonus is divided by its running std (``normalize_intrinsic``) so that one
``k_expl`` per task serves every method; ``k_expl`` was set once per task, not tuned per
method. Rewards models see the raw observation (``embedding="obs"``).

Tasks (``TASKS``) and what is scored per seed:

- ``deepsea`` (gymnax ``DeepSea-bsuite``, deterministic, sizes 10 to 30 step 4): an N x N
  grid; the treasure (+1) needs N "right" moves in a row and every "right" costs 0.01 / N,
  so a random policy finds it with probability 2^-N per episode and PPO alone learns to go
  left. Per size: episodes until the first treasure, and whether the size is *solved* by
  bsuite's ``deep_sea`` rule as implemented here: an episode is bad when it misses the
  treasure (in the deterministic env that is exactly leaving the diagonal), and a size is
  solved at the first iteration where the running fraction of bad episodes
  ``total_bad / total_episodes`` is below 0.8, if that happens within
  ``min(10_000, 2^N + 100, budget)`` episodes. Episodes are counted over all parallel envs
  of a seed, at iteration resolution (each env plays exactly one episode per iteration).
  Score = the largest size solved (0 when none is). Which action means "right" is drawn by
  gymnax once from ``jax.random.key(0)``, so all seeds share one action map.
- ``mountaincar`` / ``mountaincar-continuous`` (gymnax ``MountainCar-v0`` /
  ``MountainCarContinuous-v0``): success = the car reaches the flag before the time limit.
  Scores: the final policy's success rate over fresh episodes, and env steps to the first
  successful training episode (never reached counts as the budget: a censored value, the
  ``reached`` column says how many seeds got there).
- ``reacher-sparse`` (``brax:reacher_sparse``, reward 1 inside a 0.005 radius of the
  target, 50-step episodes, :mod:`mimex_jax.envs.sparse`): the final policy's success rate.
- ``cartpole-swingup-sparse`` (MuJoCo Playground ``CartpoleSwingupSparse``, ``impl="jax"``,
  1000-step episodes, reward 1 per step with the pole upright and the cart centred): the
  final policy's evaluation return.

Final policies are evaluated on ``--eval-episodes`` fresh episodes per seed, acting with
the mode of the policy (``greedy``) and, reported beside it, sampling (``sampled``).

Aggregates: interquartile mean over seeds with a 95% percentile-bootstrap CI
(:mod:`mimex_jax.bench.stats`). Learning curves (mean over seeds, band = min..max) are one
PNG per task; raw per-seed results, the budget, seeds, versions and the command are in
the JSON.

Ablations (``ABLATIONS``): from MIMEx's paper defaults, one factor at a time, on DeepSea
size 12 and MountainCarContinuous: mask ratio {0.3, 0.5, 0.7, 0.9} and k_expl
{0.01, 0.05, 0.5, task default} (hyperparameters: one vmapped program, members = values x
seeds), sequence length T {2, 3, 5, 10}, mask distribution {uniform, last token, fully
masked}, n_mask {1, 5} and the reward-model lr {1e-4, 1e-3} (these change shapes or the
program: one program per value). A swept mask ratio is a traced value, so that program
encodes the largest kept-token count for every member (same results, more work).

Runs are deterministic: rerunning a command with the same seeds reproduces its numbers.
The JSON is rewritten after every run, and ``--resume`` skips runs already in it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import mimex_jax
from mimex_jax import loop as loop_lib
from mimex_jax.bench import stats
from mimex_jax.evaluate import make_evaluate
from mimex_jax.rewards import MIMExConfig
from mimex_jax.sweep import cover_mask_ratios, stack
from mimex_jax.trainer import HParams, TrainConfig, make_train

# --------------------------------------------------------------------------- methods


@dataclasses.dataclass(frozen=True)
class Method:
    """An intrinsic reward: the trainer's ``reward`` kind plus config overrides."""

    name: str
    reward: str
    cfg: tuple[tuple[str, Any], ...] = ()
    note: str = ""


_PAPER_MIMEX = (("lr", 1e-4), ("mask_ratio", 0.7))

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("none", "none", note="PPO, extrinsic reward only"),
    Method("rnd", "rnd", note="RND on the observation"),
    Method("icm", "icm", note="ICM forward-model error"),
    Method("mimex", "mimex", cfg=(("seq_len", 5), ("mimex", _PAPER_MIMEX)),
           note="MIMEx, paper defaults: T=5, uniform token masks at 0.7, encoder 128/4/4, "
                "decoder 64/1/2, cls token, reward-model lr 1e-4"),
    Method("mimex-lr1e-3", "mimex", cfg=(("seq_len", 5), ("mimex", (("lr", 1e-3),
                                                                     ("mask_ratio", 0.7)))),
           note="MIMEx with the reward-model lr raised to 1e-3"),
)}
DEFAULT_METHODS = ("none", "rnd", "icm", "mimex")


# --------------------------------------------------------------------------- tasks


@dataclasses.dataclass(frozen=True)
class Instance:
    """One trainable task variant: config (reward kind filled in per method) + hparams."""

    task: str
    label: str
    cfg: TrainConfig
    hp: HParams                        # k_expl here is the value for every bonus method
    info: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    description: str
    instances: Callable[[argparse.Namespace], list[Instance]]
    # (metric key in a seed row, column title, digits); the first is the headline
    scores: tuple[tuple[str, str, int], ...]
    curve: str = "success"             # learning-curve metric: "success" or "return"


def _ppo(**over: Any) -> HParams:
    base = dict(lr=3e-4, clip_eps=0.2, value_coef=0.5, entropy_coef=0.01, max_grad_norm=0.5,
                gamma=0.99, lam=0.95, k_expl=0.5, mask_ratio=0.7)
    return HParams(**{**base, **over})


def _cfg(env_id: str, num_envs: int, rollout_len: int, iterations: int, **over: Any
         ) -> TrainConfig:
    base = dict(epochs=4, minibatches=4, reward="none", embedding="obs",
                normalize_intrinsic=True, actor_hidden=(64, 64), critic_hidden=(64, 64),
                activation="tanh", lr_schedule="constant")
    return TrainConfig(env_id=env_id, num_envs=num_envs, rollout_len=rollout_len,
                       total_steps=num_envs * rollout_len * iterations, **{**base, **over})


def deepsea_instance(size: int, num_envs: int, iterations: int) -> Instance:
    episodes = num_envs * iterations   # rollout_len = size: one episode per env per iteration
    return Instance(
        task="deepsea", label=f"deepsea-{size}",
        cfg=_cfg("gymnax:DeepSea-bsuite", num_envs, size, iterations,
                 env_kwargs=(("size", size),)),
        hp=_ppo(k_expl=1.0),
        info={"size": size, "episodes_per_seed": episodes,
              "random_policy_success_per_episode": 2.0 ** -size,
              "bsuite_episode_limit": min(10_000, 2 ** size + 100)})


def _deepsea(args: argparse.Namespace) -> list[Instance]:
    sizes = args.sizes or ([10] if args.quick else list(range(10, 31, 4)))
    its = args.iterations or (12 if args.quick else 60)
    return [deepsea_instance(s, 32 if args.quick else 64, its) for s in sizes]


def _gymnax_car(name: str, env_id: str, discrete: bool):
    def make(args: argparse.Namespace) -> list[Instance]:
        its = args.iterations or (6 if args.quick else 50)
        n = 16 if args.quick else 32
        return [Instance(task=name, label=name,
                         cfg=_cfg(env_id, n, 128, its, normalize_obs=True),
                         hp=_ppo(entropy_coef=0.01 if discrete else 0.0),
                         info={"episode_length": 200 if discrete else 999})]
    return make


def _reacher(args: argparse.Namespace) -> list[Instance]:
    its = args.iterations or (6 if args.quick else 50)
    n = 32 if args.quick else 128
    return [Instance(task="reacher-sparse", label="reacher-sparse",
                     cfg=_cfg("brax:reacher_sparse", n, 32, its, normalize_obs=True),
                     hp=_ppo(entropy_coef=0.0),
                     info={"episode_length": 50, "radius": 0.005,
                           "random_policy_success_per_episode": 0.023})]


def _cartpole(args: argparse.Namespace) -> list[Instance]:
    its = args.iterations or (6 if args.quick else 50)
    n = 16 if args.quick else 64
    return [Instance(task="cartpole-swingup-sparse", label="cartpole-swingup-sparse",
                     cfg=_cfg("playground:CartpoleSwingupSparse", n, 64, its,
                              normalize_obs=True),
                     hp=_ppo(entropy_coef=0.0), info={"episode_length": 1000})]


_CAR_SCORES = (("final_success", "final success rate", 2),
               ("steps_to_first_success", "env steps to 1st success", 0))

TASKS: dict[str, Task] = {t.name: t for t in (
    Task("deepsea", "gymnax DeepSea-bsuite, sizes 10-30 step 4; score = largest size solved "
         "by the bsuite rule", _deepsea,
         scores=(("largest_size_solved", "largest size solved", 1),)),
    Task("mountaincar", "gymnax MountainCar-v0 (discrete, 200 steps): reach the flag",
         _gymnax_car("mountaincar", "gymnax:MountainCar-v0", True), scores=_CAR_SCORES),
    Task("mountaincar-continuous", "gymnax MountainCarContinuous-v0 (999 steps): reach the "
         "flag", _gymnax_car("mountaincar-continuous", "gymnax:MountainCarContinuous-v0",
                             False), scores=_CAR_SCORES),
    Task("reacher-sparse", "brax:reacher_sparse (50 steps, success inside 0.005 of the "
         "target)", _reacher, scores=(("final_success", "final success rate", 3),)),
    Task("cartpole-swingup-sparse", "MuJoCo Playground CartpoleSwingupSparse (1000 steps, "
         "impl=jax)", _cartpole, scores=(("final_return", "final eval return", 1),),
         curve="return"),
)}


# --------------------------------------------------------------------------- ablations


@dataclasses.dataclass(frozen=True)
class Factor:
    """One ablated MIMEx setting: where it lives and the values tried."""

    name: str
    title: str
    where: str                          # "hp" (vmapped), "cfg" or "mimex" (one program each)
    values: tuple[Any, ...]


ABLATIONS: dict[str, Factor] = {f.name: f for f in (
    Factor("mask_ratio", "mask ratio", "hp", (0.3, 0.5, 0.7, 0.9)),
    Factor("k_expl", "k_expl", "hp", (0.01, 0.05, 0.5)),
    Factor("seq_len", "sequence length T", "cfg", (2, 3, 5, 10)),
    Factor("mask", "mask distribution", "mimex", ("uniform_token", "last_token", "full")),
    Factor("n_mask", "n_mask", "mimex", (1, 5)),
    Factor("lr", "reward-model lr", "mimex", (1e-4, 1e-3)),
)}


ABLATION_TASKS = ("deepsea", "mountaincar-continuous")


def _ablation_instances(args: argparse.Namespace) -> list[tuple[Instance, str]]:
    """(instance, headline score key) of the ablation tasks named in ``args``."""
    ds_its = args.iterations or (12 if args.quick else 60)
    ds = deepsea_instance(12 if not args.quick else 10, 32 if args.quick else 64, ds_its)
    car_its = args.iterations or (6 if args.quick else 25)
    car = Instance(task="mountaincar-continuous", label="mountaincar-continuous-ablation",
                   cfg=_cfg("gymnax:MountainCarContinuous-v0", 16, 64, car_its,
                            normalize_obs=True),
                   hp=_ppo(entropy_coef=0.0), info={"episode_length": 999})
    chosen = {"deepsea": (ds, "solved"), "mountaincar-continuous": (car, "final_success")}
    return [chosen[t] for t in getattr(args, "ablation_tasks", ABLATION_TASKS)]


# --------------------------------------------------------------------------- running


def method_config(inst: Instance, method: Method, cfg_over: dict | None = None
                  ) -> tuple[TrainConfig, HParams]:
    """The instance's config and hparams for ``method`` (k_expl 0 without a bonus)."""
    cfg = dataclasses.replace(inst.cfg, **{"reward": method.reward, **dict(method.cfg),
                                           **(cfg_over or {})})
    hp = inst.hp if method.reward != "none" else inst.hp._replace(k_expl=0.0)
    return cfg, hp


def with_mimex(cfg: TrainConfig, **over: Any) -> TrainConfig:
    """``cfg`` with entries of its ``mimex`` model config replaced."""
    return dataclasses.replace(cfg, mimex=tuple(sorted({**dict(cfg.mimex), **over}.items())))


def init_members(cfg: TrainConfig, members: Sequence[tuple[int, HParams]]) -> Any:
    """The sweep's initial state for its members (seed, hparams), stacked on axis 0."""
    keys = jnp.stack([jax.random.key(s) for s, _ in members])
    hps = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]),
                       *[hp for _, hp in members])
    return jax.jit(jax.vmap(make_train(cfg)[0]))(keys, hps)


def train_members(cfg: TrainConfig, members: Sequence[tuple[int, HParams]], chunk: int,
                  eval_episodes: int, tag: str) -> tuple[dict[str, np.ndarray],
                                                         dict[str, np.ndarray], float]:
    """Train all members in one vmapped program; return (metrics, final eval, seconds)."""
    hps = stack([hp for _, hp in members])
    cfg = cover_mask_ratios(cfg, hps)
    runner = loop_lib.make_runner(cfg, sweep=True)
    t0 = time.perf_counter()
    reached = np.zeros(len(members), bool)

    def progress(r: loop_lib.ChunkResult) -> None:
        succ = np.rint(r.metrics["episode_success"] * r.metrics["episodes"]).sum(axis=1)
        reached[:] |= succ > 0
        ret = np.nanmean(np.where(r.metrics["episodes"] > 0, r.metrics["episode_return"],
                                  np.nan)) if np.any(r.metrics["episodes"] > 0) else float("nan")
        print(f"  [{tag}] it {r.iterations}/{r.total_iterations} steps/member {r.env_steps:,} "
              f"chunk {r.seconds:.1f}s mean episode return {ret:.3g} members that reached "
              f"the goal so far {int(reached.sum())}/{len(members)}", flush=True)

    state = init_members(cfg, members)
    # A chunk length that divides the run: a shorter last chunk would be a second compile.
    chunk = max(c for c in range(1, min(chunk, cfg.num_iterations) + 1)
                if cfg.num_iterations % c == 0)
    state, metrics = loop_lib.run(runner, hps, state=state, chunk=chunk, callbacks=[progress])
    seconds = time.perf_counter() - t0
    ev = make_evaluate(cfg, eval_episodes)

    def both(params: Any, obs_stats: Any, key: jax.Array) -> dict[str, jax.Array]:
        out = {}
        for mode, det in (("greedy", True), ("sampled", False)):
            r = ev(params, obs_stats, key, det)
            out[f"{mode}_success"] = r["success"].mean()
            out[f"{mode}_return"] = r["return"].mean()
        return out

    # one compiled program for both modes, vmapped over members
    final = jax.jit(jax.vmap(both, in_axes=(0, 0, None)))(
        state.params, state.obs_stats, jax.random.key(10_000))
    return metrics, {k: np.asarray(v) for k, v in final.items()}, seconds


def bsuite_deep_sea_solve(episodes: np.ndarray, successes: np.ndarray, thresh: float = 0.8
                          ) -> tuple[bool, int | None]:
    """bsuite's rule on per-iteration counts: first time ``cum_bad / cum_episodes < thresh``.

    Returns ``(solved, episodes done at the end of the first iteration that satisfies it)``.
    """
    cum_ep = np.cumsum(episodes)
    cum_bad = cum_ep - np.cumsum(successes)
    ok = (cum_ep > 0) & (cum_bad < thresh * np.maximum(cum_ep, 1))
    if not ok.any():
        return False, None
    return True, int(cum_ep[int(np.argmax(ok))])


def seed_row(inst: Instance, cfg: TrainConfig, metrics: dict[str, np.ndarray],
             final: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """Per-seed results of member ``i``: first success, solve rule, final eval, curves."""
    episodes = np.rint(metrics["episodes"][i]).astype(np.int64)
    successes = np.rint(metrics["episode_success"][i] * episodes).astype(np.int64)
    cum_ep = np.cumsum(episodes)
    hit = np.flatnonzero(successes > 0)
    first = int(hit[0]) if hit.size else None
    per_iter = cfg.steps_per_iteration
    budget = cfg.num_iterations * per_iter
    row: dict[str, Any] = {
        "reached_goal": first is not None,
        "first_success_iteration": first,
        "steps_to_first_success": budget if first is None else (first + 1) * per_iter,
        "episodes_to_first_success": None if first is None else int(cum_ep[first]),
        "success_episodes": int(successes.sum()),
        "episodes": int(cum_ep[-1]),
        "final_success": float(final["greedy_success"][i]),
        "final_return": float(final["greedy_return"][i]),
        "final_sampled_success": float(final["sampled_success"][i]),
        "final_sampled_return": float(final["sampled_return"][i]),
    }
    if inst.task == "deepsea":
        solved, at = bsuite_deep_sea_solve(episodes, successes)
        limit = inst.info["bsuite_episode_limit"]
        row.update(solved=bool(solved and at <= limit), solve_episode=at,
                   solved_after_bsuite_limit=bool(solved and at > limit))
    row.update({
        "episodes_per_iteration": episodes.tolist(),
        "successes_per_iteration": successes.tolist(),
        "return_per_iteration": np.round(np.where(episodes > 0, metrics["episode_return"][i],
                                                  np.nan), 4).tolist(),
        "reward_int_per_iteration": np.round(metrics["reward_int"][i], 5).tolist(),
    })
    return row


def run_entry(inst: Instance, cfg: TrainConfig, variants: list[tuple[dict, HParams]],
              seeds: list[int], args: argparse.Namespace, tag: str) -> list[dict[str, Any]]:
    """Train ``variants x seeds`` in one program; one result entry per variant."""
    members = [(s, hp) for _, hp in variants for s in seeds]
    metrics, final, seconds = train_members(cfg, members, args.chunk, args.eval_episodes, tag)
    out = []
    for v, (labels, hp) in enumerate(variants):
        rows = []
        for j, s in enumerate(seeds):
            rows.append({"seed": s, **seed_row(inst, cfg, metrics, final, v * len(seeds) + j)})
        out.append({
            "task": inst.task, "instance": inst.label, **labels,
            "train_seconds_for_program": round(seconds, 1), "members_in_program": len(members),
            "config": dataclasses.asdict(cfg),
            "hparams": {k: float(v) for k, v in hp._asdict().items()},
            "budget": {"env_steps_per_seed": cfg.num_iterations * cfg.steps_per_iteration,
                       "iterations": cfg.num_iterations, "num_envs": cfg.num_envs,
                       "rollout_len": cfg.rollout_len, "eval_episodes": args.eval_episodes},
            "info": inst.info, "seeds": rows})
    return out


def ablation_programs(inst: Instance, factors: list[str]
                      ) -> list[tuple[str, TrainConfig, list[tuple[dict, HParams]]]]:
    """(program name, config, variants) for the ablations of one task, duplicates dropped.

    The base (paper MIMEx) runs once; every "cfg"/"mimex" value that differs from it is
    its own program; each "hp" factor is one program over all its values (the base value
    included, so each sweep also contains its own reference point).
    """
    cfg0, hp0 = method_config(inst, METHODS["mimex"])
    base_labels = {"method": "mimex", "ablation": "base", "value": None}
    programs = [("base", cfg0, [(base_labels, hp0)])]
    for name in factors:
        f = ABLATIONS[name]
        if f.where == "hp":
            values = sorted(set(f.values) | {float(getattr(hp0, name))})
            variants = [({"method": "mimex", "ablation": name, "value": v},
                         hp0._replace(**{name: v})) for v in values]
            programs.append((name, cfg0, variants))
            continue
        for v in f.values:
            if v == _setting(cfg0, name):
                continue   # the base run
            cfg = (dataclasses.replace(cfg0, **{name: v}) if f.where == "cfg"
                   else with_mimex(cfg0, **{name: v}))
            programs.append((f"{name}={v}", cfg,
                             [({"method": "mimex", "ablation": name, "value": v}, hp0)]))
    return programs


def _key(entry: dict[str, Any]) -> str:
    return "|".join(str(entry.get(k)) for k in ("instance", "method", "ablation", "value"))


# --------------------------------------------------------------------------- reports


def task_table(task: Task, entries: list[dict[str, Any]]) -> str:
    """Markdown: method x (headline scores as IQM [95% CI], reached goal)."""
    head = "| method | " + " | ".join(f"{t} IQM [95% CI]" for _, t, _ in task.scores)
    head += " | seeds reached goal | per-seed " + task.scores[0][1] + " |"
    lines = [head, "|" + "---|" * (3 + len(task.scores))]
    for method, rows in _per_method_scores(task, entries).items():
        cells = [stats.fmt(stats.summarize(rows[k]), d) for k, _, d in task.scores]
        first = task.scores[0]
        lines.append(f"| {method} | " + " | ".join(cells)
                     + f" | {rows['reached']} | "
                     + ", ".join(f"{x:.{first[2]}f}" for x in rows[first[0]]) + " |")
    return "\n".join(lines)


def _per_method_scores(task: Task, entries: list[dict[str, Any]]) -> dict[str, dict]:
    """Per method: per-seed headline scores (DeepSea: largest size solved over sizes)."""
    out: dict[str, dict] = {}
    for method in dict.fromkeys(e["method"] for e in entries):
        mine = [e for e in entries if e["method"] == method]
        n = len(mine[0]["seeds"])
        if task.name == "deepsea":
            largest = np.zeros(n)
            reached = np.zeros(n, bool)
            for e in mine:
                for j, s in enumerate(e["seeds"]):
                    if s["solved"]:
                        largest[j] = max(largest[j], e["info"]["size"])
                    reached[j] |= s["reached_goal"]
            out[method] = {"largest_size_solved": largest,
                           "reached": f"{int(reached.sum())}/{n} (any size)"}
        else:
            e = mine[0]
            out[method] = {k: np.array([s[k] for s in e["seeds"]], float)
                           for k, _, _ in task.scores}
            out[method]["reached"] = f"{sum(s['reached_goal'] for s in e['seeds'])}/{n}"
    return out


def deepsea_size_table(entries: list[dict[str, Any]]) -> str:
    """Per size and method: solved, reached, episodes to first treasure (IQM, censored)."""
    lines = ["| size | method | solved (bsuite rule) | solved later in the budget | reached "
             "treasure | episodes to 1st treasure, IQM [95% CI] (never = budget) | per seed |",
             "|---|---|---|---|---|---|---|"]
    for e in entries:
        s = e["seeds"]
        budget = e["info"]["episodes_per_seed"]
        eps = [budget if x["episodes_to_first_success"] is None
               else x["episodes_to_first_success"] for x in s]
        lines.append(
            f"| {e['info']['size']} | {e['method']} | {sum(x['solved'] for x in s)}/{len(s)} "
            f"| {sum(x.get('solved_after_bsuite_limit', False) for x in s)}/{len(s)} "
            f"| {sum(x['reached_goal'] for x in s)}/{len(s)} | "
            f"{stats.fmt(stats.summarize(eps), 0)} | "
            + ", ".join("-" if x["episodes_to_first_success"] is None
                        else str(x["episodes_to_first_success"]) for x in s) + " |")
    return "\n".join(lines)


def ablation_table(entries: list[dict[str, Any]], score: str) -> str:
    """Markdown: factor, value, env steps to the first success (IQM [CI], the plotted
    score), seeds that reached the goal, and the task's outcome score (IQM [CI])."""
    title = {"solved": "solved (bsuite rule)", "final_success": "final success rate"}[score]
    lines = ["| factor | value | env steps to 1st success, IQM [95% CI] (never = budget) "
             f"| seeds reached goal | {title} IQM [95% CI] |", "|---|---|---|---|---|"]
    for e in sorted(entries, key=_ablation_order):
        s = e["seeds"]
        vals = [float(x[score]) for x in s]
        steps = [x["steps_to_first_success"] for x in s]
        label = "paper defaults" if e["ablation"] == "base" else e["ablation"]
        lines.append(f"| {label} | {'' if e['value'] is None else e['value']} "
                     f"| {stats.fmt(stats.summarize(steps), 0)} "
                     f"| {sum(x['reached_goal'] for x in s)}/{len(s)} "
                     f"| {stats.fmt(stats.summarize(vals))} |")
    return "\n".join(lines)


def _ablation_order(e: dict[str, Any]) -> tuple:
    names = ["base", *ABLATIONS]
    v = e["value"]
    return (names.index(e["ablation"]), (0, v) if isinstance(v, (int, float)) else (1, str(v)))


def plot_curves(task: Task, entries: list[dict[str, Any]], path: Path) -> bool:
    """Learning curves per task instance: mean over seeds, band = min..max of seeds."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = list(dict.fromkeys(e["instance"] for e in entries))
    cols = min(3, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(labels):]:
        ax.axis("off")
    for ax, label in zip(axes.flat, labels, strict=False):
        for j, e in enumerate(x for x in entries if x["instance"] == label):
            steps = (np.arange(e["budget"]["iterations"]) + 1) * (
                e["budget"]["num_envs"] * e["budget"]["rollout_len"])
            if task.curve == "return":
                ys = np.array([s["return_per_iteration"] for s in e["seeds"]], float)
            else:  # fraction of the iteration's finished episodes that succeeded
                ep = np.array([s["episodes_per_iteration"] for s in e["seeds"]], float)
                ys = np.array([s["successes_per_iteration"] for s in e["seeds"]], float)
                ys = np.where(ep > 0, ys / np.maximum(ep, 1), np.nan)
            ys = _carry_forward(ys)
            ax.plot(steps, np.nanmean(ys, axis=0), color=f"C{j}", lw=1.4, label=e["method"])
            ax.fill_between(steps, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0),
                            color=f"C{j}", alpha=0.15, lw=0)
        ax.set_title(f"{label} ({len(e['seeds'])} seeds)", fontsize=10)
        ax.set_xlabel("env steps per seed")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.set_ylabel("episode return" if task.curve == "return"
                      else "success rate of episodes")
        ax.legend(fontsize=7)
    fig.suptitle(f"{task.name}: mean over seeds, band = min..max", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _carry_forward(ys: np.ndarray) -> np.ndarray:
    """Fill iterations without a finished episode with the previous value (0 at the start)."""
    out = ys.copy()
    for row in out:
        last = 0.0
        for i, v in enumerate(row):
            if np.isnan(v):
                row[i] = last
            else:
                last = v
    return out


def plot_ablations(entries: list[dict[str, Any]], path: Path) -> bool:
    """One panel per (task, factor): env steps to the first success (IQM, 95% CI error
    bars; never = the budget, the dashed line) over the factor's values."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    instances = list(dict.fromkeys(e["instance"] for e in entries))
    factors = [f for f in ABLATIONS if any(e["ablation"] == f for e in entries)]
    if not instances or not factors:
        return False
    fig, axes = plt.subplots(len(instances), len(factors),
                             figsize=(2.9 * len(factors), 2.8 * len(instances)), squeeze=False)
    for r, inst in enumerate(instances):
        mine = [e for e in entries if e["instance"] == inst]
        base = next((e for e in mine if e["ablation"] == "base"), None)
        for c, f in enumerate(factors):
            ax = axes[r, c]
            pts = [e for e in mine if e["ablation"] == f]
            if base is not None and f != "mask_ratio" and f != "k_expl":
                pts.append({**base, "value": _base_value(base, f)})
            pts = sorted(pts, key=lambda e: (str(type(e["value"])), e["value"]))
            xs = [str(e["value"]) for e in pts]
            summ = [stats.summarize([s["steps_to_first_success"] for s in e["seeds"]])
                    for e in pts]
            y = np.array([s["iqm"] for s in summ])
            err = np.array([[s["iqm"] - s["ci_low"] for s in summ],
                            [s["ci_high"] - s["iqm"] for s in summ]])
            ax.errorbar(range(len(xs)), y, yerr=err, fmt="o", capsize=3)
            ax.set_xticks(range(len(xs)), xs, fontsize=7, rotation=20)
            ax.set_ylim(0, 1.05 * pts[0]["budget"]["env_steps_per_seed"])
            ax.axhline(pts[0]["budget"]["env_steps_per_seed"], color="grey", lw=0.6, ls="--")
            ax.set_title(f"{ABLATIONS[f].title}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{inst}\nenv steps to 1st success", fontsize=8)
    fig.suptitle("MIMEx ablations: env steps until the first success (lower = faster "
                 "exploration), IQM over seeds, 95% bootstrap CI", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _setting(cfg: TrainConfig, name: str) -> Any:
    """The effective value of an ablated setting in ``cfg`` (model defaults filled in)."""
    return _effective(cfg.seq_len, cfg.mimex, name)


def _base_value(base: dict[str, Any], factor: str) -> Any:
    """:func:`_setting` of a result entry's recorded config."""
    return _effective(base["config"]["seq_len"], base["config"]["mimex"], factor)


def _effective(seq_len: int, mimex: Any, name: str) -> Any:
    if name == "seq_len":
        return seq_len
    value = dict(mimex).get(name, getattr(MIMExConfig, name, None))
    return "uniform_token" if name == "mask" and value is None else value


def write_reports(out: dict[str, Any], json_path: Path, plot_png: bool = True) -> None:
    """``<json>.md`` (tables + command/machine/budget) and the PNGs beside the JSON."""
    m = out["machine"]
    parts = [f"# Exploration benchmark{' (quick mode)' if out['quick'] else ''}\n",
             f"Command: `{out['command']}`  ",
             f"Wall time: {out['wall_seconds']:.0f} s on {m['processor']} ({m['cpu_count']} "
             f"CPUs, jax {m['jax']}, {m['backend']}), finished {m['date']}; load average at "
             f"the end {m['loadavg']}  ",
             f"Seeds: {out['seeds']} (one vmapped program per task instance and method); "
             f"mimex-jax {out['mimex_jax']}  ",
             "Scores: interquartile mean over seeds with a 95% percentile-bootstrap CI "
             "(10,000 resamples of the seeds).\n"]
    main = [e for e in out["results"] if e.get("ablation") is None]
    pngs = []
    for name, task in TASKS.items():
        entries = [e for e in main if e["task"] == name]
        if not entries:
            continue
        b = entries[0]["budget"]
        if name == "deepsea":
            budget = (f"{b['num_envs'] * b['iterations']:,} episodes per size ({b['num_envs']} "
                      f"envs x {b['iterations']} iterations of one N-step episode each), i.e. "
                      f"{b['num_envs'] * b['iterations']:,} x N env steps")
        else:
            budget = (f"{b['env_steps_per_seed']:,} env steps ({b['num_envs']} envs x "
                      f"{b['rollout_len']} steps x {b['iterations']} iterations)")
        parts.append(f"## {name}\n\n{task.description}. Budget per seed: {budget}; k_expl "
                     f"{entries[-1]['hparams']['k_expl']:g} for every bonus.\n")
        parts.append(task_table(task, entries) + "\n")
        if name == "deepsea":
            parts.append(deepsea_size_table(entries) + "\n")
        png = json_path.with_name(f"{json_path.stem}_{name}.png")
        if plot_png and plot_curves(task, entries, png):
            pngs.append(png)
            parts.append(f"![{name} learning curves]({png.name})\n")
    abl = [e for e in out["results"] if e.get("ablation") is not None]
    if abl:
        scores = {}
        parts.append("## Ablations (MIMEx, one factor at a time from the paper defaults)\n")
        for inst in dict.fromkeys(e["instance"] for e in abl):
            mine = [e for e in abl if e["instance"] == inst]
            scores[inst] = "solved" if mine[0]["task"] == "deepsea" else "final_success"
            b = mine[0]["budget"]
            parts.append(f"### {inst}\n\nBudget per seed: {b['env_steps_per_seed']:,} env "
                         f"steps ({b['num_envs']} envs x {b['rollout_len']} x "
                         f"{b['iterations']}).\n")
            parts.append(ablation_table(mine, scores[inst]) + "\n")
        stem = json_path.stem
        png = json_path.with_name(stem + ("" if stem.endswith("ablations") else "_ablations")
                                  + ".png")
        if plot_png and plot_ablations(abl, png):
            pngs.append(png)
            parts.append(f"![ablations]({png.name})\n")
    md_path = json_path.with_suffix(".md")
    md_path.write_text("\n".join(parts))
    print(f"wrote {md_path}" + "".join(f", {p.name}" for p in pngs))


# --------------------------------------------------------------------------- main


def dumps(out: dict[str, Any]) -> str:
    """Indented JSON with every flat list of numbers on one line (NaN -> null)."""
    text = json.dumps(out, indent=1, default=str).replace("NaN", "null")
    return re.sub(r"\[([^\[\]{}\"]*)\]",
                  lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text)


def default_out(quick: bool) -> Path:
    """``benchmarks/results/`` when run from a checkout of the repo, else ``./``."""
    name = "exploration_quick.json" if quick else "exploration.json"
    base = Path.cwd() / "benchmarks" / "results"
    return base / name if base.parent.is_dir() else Path.cwd() / name


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Exploration benchmark: no bonus vs RND vs ICM vs MIMEx on "
        "sparse-reward tasks, IQM with 95% bootstrap CIs, plus MIMEx ablations.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS),
                   help="tasks of the main comparison (none given: ablations only)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   choices=list(METHODS))
    p.add_argument("--ablations", nargs="*", default=list(ABLATIONS), choices=list(ABLATIONS),
                   help="ablation factors (none given: no ablations)")
    p.add_argument("--no-ablations", action="store_true", help="skip the ablations")
    p.add_argument("--ablation-tasks", nargs="+", default=list(ABLATION_TASKS),
                   choices=list(ABLATION_TASKS), help="tasks the ablations run on")
    p.add_argument("--seeds", type=int, default=5, help="seeds per method (one vmapped run)")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="DeepSea sizes (default 10 14 18 22 26 30; --quick: 10)")
    p.add_argument("--iterations", type=int, default=None,
                   help="PPO iterations per run, every task (default: per task, see the doc)")
    p.add_argument("--chunk", type=int, default=10, help="iterations per compiled chunk")
    p.add_argument("--eval-episodes", type=int, default=64,
                   help="fresh episodes per seed for the final policy")
    p.add_argument("--quick", action="store_true",
                   help="every task and ablation factor with small budgets, 3 seeds, 16 eval "
                        "episodes, ablations on DeepSea only (<= 15 min on 2 CPUs)")
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
    args = build_parser(prog).parse_args(argv)
    if args.render is not None:
        write_reports(json.loads(args.render.read_text()), args.render, not args.no_plot)
        return 0
    for name in ("seeds", "chunk", "eval_episodes"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}={getattr(args, name)} is invalid; "
                             "allowed: an integer >= 1")
    given = argv if argv is not None else sys.argv[1:]
    if args.quick:  # the 15-minute budget on 2 CPUs: fewer seeds, eval episodes, ablations
        if "--seeds" not in given:
            args.seeds = 3
        if "--eval-episodes" not in given:
            args.eval_episodes = 16
        if "--ablation-tasks" not in given:
            args.ablation_tasks = ["deepsea"]
    if args.no_ablations:
        args.ablations = []
    out_path = args.out or default_out(args.quick)
    seeds = list(range(args.seeds))
    command = " ".join(["mimex-jax bench exploration" if prog else
                        "python benchmarks/exploration.py",
                        *(sys.argv[1:] if argv is None else argv)]).strip()
    done: dict[str, dict] = {}
    if args.resume and out_path.exists():
        prev = json.loads(out_path.read_text())
        if prev.get("seeds") != seeds:
            raise ValueError(f"--resume: {out_path} has seeds {prev.get('seeds')}, this run "
                             f"{seeds}")
        done = {_key(e): e for e in prev["results"]}
        print(f"resuming: {len(done)} runs already in {out_path}")

    plan: list[tuple[str, Instance, TrainConfig, list[tuple[dict, HParams]]]] = []
    for task_name in args.tasks:
        for inst in TASKS[task_name].instances(args):
            for name in args.methods:
                cfg, hp = method_config(inst, METHODS[name])
                plan.append((f"{inst.label} / {name}", inst, cfg,
                             [({"method": name, "ablation": None, "value": None}, hp)]))
    if args.ablations:
        for inst, _score in _ablation_instances(args):
            for prog_name, cfg, variants in ablation_programs(inst, args.ablations):
                plan.append((f"{inst.label} ablation {prog_name}", inst, cfg, variants))

    t_start = time.perf_counter()
    results: list[dict[str, Any]] = []
    header = {"benchmark": "exploration", "command": command, "quick": args.quick,
              "seeds": seeds, "mimex_jax": mimex_jax.__version__,
              "versions": _versions(),
              "methods": {k: dataclasses.asdict(v) for k, v in METHODS.items()
                          if k in args.methods or (k == "mimex" and args.ablations)},
              "tasks": {k: TASKS[k].description for k in args.tasks},
              "ablations": {k: dataclasses.asdict(ABLATIONS[k]) for k in args.ablations}}
    for i, (tag, inst, cfg, variants) in enumerate(plan):
        keys = [_key({"instance": inst.label, **labels}) for labels, _ in variants]
        if all(k in done for k in keys):
            results.extend(done[k] for k in keys)
            continue
        print(f"[{i + 1}/{len(plan)}] {tag}: {len(variants)} setting(s) x {len(seeds)} seeds "
              f"in one vmapped program", flush=True)
        entries = run_entry(inst, cfg, variants, seeds, args, tag)
        print(f"  done in {entries[0]['train_seconds_for_program']}s; "
              + "; ".join(_brief(e) for e in entries), flush=True)
        results.extend(entries)
        _write(out_path, header, results, time.perf_counter() - t_start,
               complete=i + 1 == len(plan))
    wall = time.perf_counter() - t_start
    out = _write(out_path, header, results, wall, complete=True)
    print(f"\nwrote {out_path} (wall {wall:.0f}s)")
    write_reports(out, out_path, plot_png=not args.no_plot)
    if args.compare is not None:
        return 0 if compare(out, json.loads(args.compare.read_text()), args.compare) else 1
    return 0


# per-run fields that are measurements of the machine, not of the algorithm
_TIMING = ("train_seconds_for_program",)


def compare(new: dict[str, Any], old: dict[str, Any], old_name: Any = "reference") -> bool:
    """Print whether the runs of ``new`` that ``old`` also has gave identical numbers."""
    old_runs = {_key(e): e for e in old["results"]}
    same, differ, missing = 0, [], 0
    for e in new["results"]:
        ref = old_runs.get(_key(e))
        if ref is None:
            missing += 1
            continue
        a = json.loads(dumps({k: v for k, v in e.items() if k not in _TIMING}))
        b = json.loads(dumps({k: v for k, v in ref.items() if k not in _TIMING}))
        if a == b:
            same += 1
        else:
            fields = sorted({k for sa, sb in zip(a["seeds"], b["seeds"], strict=False)
                             for k in sa if sa.get(k) != sb.get(k)}
                            | {k for k in a if k != "seeds" and a.get(k) != b.get(k)})
            differ.append(f"{_key(e)}: {', '.join(fields)}")
    print(f"compare with {old_name}: {same} run(s) identical, {len(differ)} differ, "
          f"{missing} not in the reference")
    for line in differ:
        print(f"  differs: {line}")
    return not differ and same > 0


def _brief(e: dict[str, Any]) -> str:
    s = e["seeds"]
    label = e["method"] if e["ablation"] in (None, "base") else f"{e['ablation']}={e['value']}"
    return (f"{label}: reached {sum(x['reached_goal'] for x in s)}/{len(s)}, final success "
            f"{np.mean([x['final_success'] for x in s]):.2f}, final return "
            f"{np.mean([x['final_return'] for x in s]):.3g}")


def _write(path: Path, header: dict, results: list, wall: float, complete: bool) -> dict:
    from mimex_jax.bench.machine import machine

    out = {**header, "complete": complete, "wall_seconds": round(wall, 1),
           "machine": machine(), "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(dumps(out))
    tmp.replace(path)
    return out


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "brax", "gymnax", "playground", "mujoco",
                "mujoco-mjx", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


if __name__ == "__main__":
    raise SystemExit(main())
