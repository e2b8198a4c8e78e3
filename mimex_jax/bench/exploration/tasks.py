"""Tasks of the exploration benchmark: what is trained, and how a task scores its seeds.

A :class:`Task` names its instances (configs), its score columns and the hooks that turn
a seed's logged episodes into scores. The generic rules (first success, final success,
the success curve) live in the default hooks; a task with its own rule overrides a hook
in a subclass (:class:`DeepSeaTask`: bsuite's solve rule and "largest size solved").
:func:`register_task` adds a task to :data:`TASKS`, which the runner, the reports and the
command line all read.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mimex_jax.bench import stats
from mimex_jax.trainer import HParams, TrainConfig

NA = "n/a"   # a table cell of a score the task's env does not define
CURVES = ("success", "return")
# seed-row scores where a smaller value is the better outcome
LOWER_IS_BETTER = frozenset({"steps_to_first_success", "episodes_to_first_success",
                             "first_success_iteration"})


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
    """A benchmark task: its instances, score columns and scoring hooks.

    Attributes:
      name: the ``--tasks`` name.
      description: one line for the report and the result JSON.
      instances: ``args -> [Instance]``, the variants trained in the main comparison
        (``args`` is the parsed command line: ``--quick``, ``--iterations``, ...).
      scores: ``(key in a seed row, column title, digits)``; the first is the headline.
      curve: learning-curve metric, ``"success"`` (fraction of an iteration's episodes
        that succeeded) or ``"return"``.
      has_success: whether the env defines success (``metrics["success"]``). ``None``
        asks the env (:attr:`mimex_jax.envs.Env.has_success`) when the task runs; without
        success every success-based number of a seed is ``None`` and shows as ``n/a``.
      ablation: ``args -> Instance`` that the MIMEx ablations run on, or ``None``.
      ablation_score: ``(seed-row key, title)`` of the outcome column of the ablation table.
      seeds, quick_seeds: seeds per method by default and with ``--quick`` (``--seeds``
        overrides both): at least 10 where a run costs seconds, at least 5 elsewhere.
      default: whether the task runs when ``--tasks`` is not given (an expensive task is
        opt-in: ``--tasks NAME``).
      final_eval: whether the final policies are evaluated on fresh episodes (the
        ``final_*`` fields); ``False`` (every ``final_*`` is ``None``) for a task scored
        from its training episodes, whose eval episodes would cost too much.
      note: a few words for ``--help`` beside an opt-in task's name (its budget, its cost).
    """

    name: str
    description: str
    instances: Callable[[argparse.Namespace], list[Instance]]
    scores: tuple[tuple[str, str, int], ...]
    curve: str = "success"
    has_success: bool | None = None
    ablation: Callable[[argparse.Namespace], Instance] | None = None
    ablation_score: tuple[str, str] = ("final_success", "final success rate")
    seeds: int = 5
    quick_seeds: int = 5
    default: bool = True
    final_eval: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"Task.name={self.name!r} is invalid; allowed: a non-empty string")
        if not self.scores:
            raise ValueError(f"Task {self.name!r}: scores={self.scores!r} is invalid; allowed: "
                             "at least one (seed-row key, title, digits)")
        if self.curve not in CURVES:
            raise ValueError(f"Task {self.name!r}: curve={self.curve!r} is invalid; allowed: "
                             f"{list(CURVES)}")
        for field in ("seeds", "quick_seeds"):
            n = getattr(self, field)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"Task {self.name!r}: {field}={n!r} is invalid; allowed: an "
                                 "integer >= 1")
        if self.has_success is False and self.curve == "success":
            raise ValueError(f"Task {self.name!r}: curve='success' is invalid with "
                             "has_success=False; allowed: 'return'")

    # ---- hooks, overridden by tasks with their own rules

    def num_seeds(self, args: argparse.Namespace) -> int:
        """Seeds per method: ``--seeds`` when given, else :attr:`quick_seeds` with
        ``--quick``, else :attr:`seeds`."""
        if getattr(args, "seeds", None) is not None:
            return int(args.seeds)
        return self.quick_seeds if getattr(args, "quick", False) else self.seeds

    def seed_scores(self, inst: Instance, episodes: np.ndarray, successes: np.ndarray
                    ) -> dict[str, Any]:
        """Task-specific fields of one seed's row, from its per-iteration episode counts.

        Called only when the env defines success; the default adds nothing.
        """
        del inst, episodes, successes
        return {}

    def metric_scores(self, inst: Instance, metrics: dict[str, np.ndarray], i: int
                      ) -> dict[str, Any]:
        """Task-specific fields of member ``i``'s row from its training metrics
        (``[members, iterations, ...]`` arrays), whether or not the env defines success;
        the default adds nothing."""
        del inst, metrics, i
        return {}

    def method_scores(self, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Per-seed values of every score key (``None`` when undefined) over one method's
        result entries, plus ``"reached"``: the "seeds reached goal" cell."""
        e = entries[0]
        n = len(e["seeds"])
        out: dict[str, Any] = {k: [s[k] for s in e["seeds"]] for k, _, _ in self.scores}
        reached = [s["reached_goal"] for s in e["seeds"]]
        out["reached"] = NA if None in reached else f"{sum(reached)}/{n}"
        return out

    def budget_text(self, budget: dict[str, Any]) -> str:
        """The per-seed budget of the report's heading, from a result entry's ``budget``."""
        return (f"{budget['env_steps_per_seed']:,} env steps ({budget['num_envs']} envs x "
                f"{budget['rollout_len']} steps x {budget['iterations']} iterations)")

    def extra_tables(self, entries: Sequence[dict[str, Any]]) -> list[str]:
        """Markdown tables the report prints after the task's main table."""
        del entries
        return []


def fmt_cell(values: Sequence[float | None], digits: int = 2) -> str:
    """``IQM [95% CI]`` of per-seed values, ``n/a`` if any is undefined (``None``)."""
    if any(v is None for v in values):
        return NA
    return stats.fmt(stats.summarize(np.asarray(values, float)), digits)


TASKS: dict[str, Task] = {}


def register_task(task: Task, replace: bool = False) -> Task:
    """Add ``task`` to :data:`TASKS` (and so to ``--tasks``); returns it.

    A name already registered raises ``ValueError`` unless ``replace``.
    """
    if not isinstance(task, Task):
        raise ValueError(f"register_task: {task!r} is invalid; allowed: a Task")
    if task.name in TASKS and not replace:
        raise ValueError(f"task name {task.name!r} is already registered; allowed: a new "
                         f"name (registered: {list(TASKS)}) or replace=True")
    TASKS[task.name] = task
    return task


def unregister_task(name: str) -> Task:
    """Remove and return the task ``name`` (``ValueError`` if not registered)."""
    if name not in TASKS:
        raise ValueError(f"task {name!r} is not registered; registered: {list(TASKS)}")
    return TASKS.pop(name)


# --------------------------------------------------------------------------- settings


def ppo_hparams(**over: Any) -> HParams:
    """The benchmark's PPO hyperparameters (k_expl 0.5) with ``over`` replaced."""
    base = dict(lr=3e-4, clip_eps=0.2, value_coef=0.5, entropy_coef=0.01, max_grad_norm=0.5,
                gamma=0.99, lam=0.95, k_expl=0.5, mask_ratio=0.7)
    return HParams(**{**base, **over})


def train_config(env_id: str, num_envs: int, rollout_len: int, iterations: int, **over: Any
                 ) -> TrainConfig:
    """The benchmark's PPO config (64-64 tanh, 4 epochs x 4 minibatches, normalized bonus,
    rewards on the raw observation) for ``iterations`` iterations, ``over`` replaced."""
    base = dict(epochs=4, minibatches=4, reward="none", embedding="obs",
                normalize_intrinsic=True, actor_hidden=(64, 64), critic_hidden=(64, 64),
                activation="tanh", lr_schedule="constant")
    return TrainConfig(env_id=env_id, num_envs=num_envs, rollout_len=rollout_len,
                       total_steps=num_envs * rollout_len * iterations, **{**base, **over})


# --------------------------------------------------------------------------- DeepSea


def deepsea_instance(size: int, num_envs: int, iterations: int) -> Instance:
    """DeepSea of ``size`` with one ``size``-step episode per env and iteration."""
    episodes = num_envs * iterations   # rollout_len = size: one episode per env per iteration
    return Instance(
        task="deepsea", label=f"deepsea-{size}",
        cfg=train_config("gymnax:DeepSea-bsuite", num_envs, size, iterations,
                         env_kwargs=(("size", size),)),
        hp=ppo_hparams(k_expl=1.0),
        info={"size": size, "episodes_per_seed": episodes,
              "random_policy_success_per_episode": 2.0 ** -size,
              "bsuite_episode_limit": min(10_000, 2 ** size + 100)})


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


def deepsea_size_table(entries: Sequence[dict[str, Any]]) -> str:
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
            f"{fmt_cell(eps, 0)} | "
            + ", ".join("-" if x["episodes_to_first_success"] is None
                        else str(x["episodes_to_first_success"]) for x in s) + " |")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class DeepSeaTask(Task):
    """DeepSea: a seed solves a size by bsuite's rule; the score is the largest size solved.

    Instances are sizes (``info["size"]``); every other number is the generic one.
    """

    def seed_scores(self, inst: Instance, episodes: np.ndarray, successes: np.ndarray
                    ) -> dict[str, Any]:
        """``solved`` (within bsuite's episode limit), ``solve_episode`` and
        ``solved_after_bsuite_limit``."""
        solved, at = bsuite_deep_sea_solve(episodes, successes)
        limit = inst.info["bsuite_episode_limit"]
        return dict(solved=bool(solved and at <= limit), solve_episode=at,
                    solved_after_bsuite_limit=bool(solved and at > limit))

    def method_scores(self, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Per seed: the largest size solved over the method's sizes (0 when none is)."""
        n = len(entries[0]["seeds"])
        largest = np.zeros(n)
        reached = np.zeros(n, bool)
        for e in entries:
            for j, s in enumerate(e["seeds"]):
                if s["solved"]:
                    largest[j] = max(largest[j], e["info"]["size"])
                reached[j] |= s["reached_goal"]
        return {"largest_size_solved": largest.tolist(),
                "reached": f"{int(reached.sum())}/{n} (any size)"}

    def budget_text(self, budget: dict[str, Any]) -> str:
        """Episodes per size (one N-step episode per env and iteration)."""
        n = budget["num_envs"] * budget["iterations"]
        return (f"{n:,} episodes per size ({budget['num_envs']} envs x {budget['iterations']} "
                f"iterations of one N-step episode each), i.e. {n:,} x N env steps")

    def extra_tables(self, entries: Sequence[dict[str, Any]]) -> list[str]:
        """The per-size table (:func:`deepsea_size_table`)."""
        return [deepsea_size_table(entries)]


def _deepsea(args: argparse.Namespace) -> list[Instance]:
    sizes = args.sizes or ([10] if args.quick else list(range(10, 31, 4)))
    its = args.iterations or (12 if args.quick else 60)
    return [deepsea_instance(s, 32 if args.quick else 64, its) for s in sizes]


def _deepsea_ablation(args: argparse.Namespace) -> Instance:
    its = args.iterations or (12 if args.quick else 60)
    return deepsea_instance(12 if not args.quick else 10, 32 if args.quick else 64, its)


# --------------------------------------------------------------------------- the others


def _gymnax_car(name: str, env_id: str, discrete: bool
                ) -> Callable[[argparse.Namespace], list[Instance]]:
    def make(args: argparse.Namespace) -> list[Instance]:
        its = args.iterations or (6 if args.quick else 50)
        n = 16 if args.quick else 32
        return [Instance(task=name, label=name,
                         cfg=train_config(env_id, n, 128, its, normalize_obs=True),
                         hp=ppo_hparams(entropy_coef=0.01 if discrete else 0.0),
                         info={"episode_length": 200 if discrete else 999})]
    return make


def _car_ablation(args: argparse.Namespace) -> Instance:
    its = args.iterations or (6 if args.quick else 25)
    return Instance(task="mountaincar-continuous", label="mountaincar-continuous-ablation",
                    cfg=train_config("gymnax:MountainCarContinuous-v0", 16, 64, its,
                                     normalize_obs=True),
                    hp=ppo_hparams(entropy_coef=0.0), info={"episode_length": 999})


def _reacher(args: argparse.Namespace) -> list[Instance]:
    its = args.iterations or (6 if args.quick else 50)
    n = 32 if args.quick else 128
    return [Instance(task="reacher-sparse", label="reacher-sparse",
                     cfg=train_config("brax:reacher_sparse", n, 32, its, normalize_obs=True),
                     hp=ppo_hparams(entropy_coef=0.0),
                     info={"episode_length": 50, "radius": 0.005,
                           "random_policy_success_per_episode": 0.023})]


def _cartpole(args: argparse.Namespace) -> list[Instance]:
    its = args.iterations or (6 if args.quick else 50)
    n = 16 if args.quick else 64
    return [Instance(task="cartpole-swingup-sparse", label="cartpole-swingup-sparse",
                     cfg=train_config("playground:CartpoleSwingupSparse", n, 64, its,
                                      normalize_obs=True),
                     hp=ppo_hparams(entropy_coef=0.0), info={"episode_length": 1000})]


def _doorkey(args: argparse.Namespace) -> list[Instance]:
    """MiniGrid DoorKey-5x5 (xminigrid): key, locked door, goal; reward only at the goal."""
    its = args.iterations or (8 if args.quick else 128)
    n = 16 if args.quick else 64
    return [Instance(task="minigrid-doorkey", label="minigrid-doorkey-5x5",
                     cfg=train_config("minigrid:DoorKey-5x5", n, 32, its, episode_length=None),
                     hp=ppo_hparams(entropy_coef=0.01), info={"episode_length": 250})]


def _minigrid(name: str, env: str, episode_length: int
              ) -> Callable[[argparse.Namespace], list[Instance]]:
    """A harder MiniGrid task at DoorKey-5x5's settings: 64 envs x 32 steps x 128
    iterations (262k env steps per seed; ``--quick``: 16 envs x 8 iterations)."""
    def make(args: argparse.Namespace) -> list[Instance]:
        its = args.iterations or (8 if args.quick else 128)
        n = 16 if args.quick else 64
        return [Instance(task=name, label=name,
                         cfg=train_config(f"minigrid:{env}", n, 32, its, episode_length=None),
                         hp=ppo_hparams(entropy_coef=0.01),
                         info={"episode_length": episode_length})]
    return make


# --------------------------------------------------------------------------- Craftax

# the share of training iterations, at the end, whose finished episodes score a Craftax seed
CRAFTAX_LATE = 0.25
# published method -> ours
CRAFTAX_METHODS = {"PPO": "none", "RND": "rnd", "ICM": "icm"}


def late_window(iterations: int, share: float = CRAFTAX_LATE) -> int:
    """How many final iterations make the last ``share`` of training (at least one)."""
    return max(1, int(round(share * iterations)))


def episode_weighted_mean(values: np.ndarray, episodes: np.ndarray) -> float | None:
    """Mean of per-iteration episode means weighted by the episodes that finished in each
    iteration; ``None`` when none finished."""
    n = float(np.sum(episodes))
    if n <= 0:
        return None
    return float(np.sum(np.where(episodes > 0, values, 0.0) * episodes) / n)


@dataclasses.dataclass(frozen=True)
class CraftaxTask(Task):
    """Craftax: no success and no goal; a seed scores the episodes that finished in the
    last :data:`CRAFTAX_LATE` of its training iterations (the Craftax paper reports
    training-episode returns): return, return as a % of the maximum (the published
    metric) and % of achievements unlocked. No final eval (an episode may last 10,000
    steps). The report puts the published scores (:mod:`mimex_jax.bench.published`) beside
    ours, each with its budget."""

    env_name: str = "Craftax-Classic-Symbolic-v1"

    def metric_scores(self, inst: Instance, metrics: dict[str, np.ndarray], i: int
                      ) -> dict[str, Any]:
        """``late_*`` scores over the last iterations' finished episodes (``None`` when no
        episode finished there) and the per-iteration achievements curve."""
        episodes = np.asarray(metrics["episodes"][i], np.float64)
        ret = np.asarray(metrics["episode_return"][i], np.float64)
        ach = np.asarray(metrics["episode_achievements"][i], np.float64)
        w = late_window(episodes.size)
        late_ret = episode_weighted_mean(ret[-w:], episodes[-w:])
        return {
            "late_iterations": w, "late_episodes": int(np.rint(episodes[-w:].sum())),
            "late_return": late_ret,
            "late_return_pct_max": (None if late_ret is None
                                    else 100.0 * late_ret / inst.info["max_return"]),
            "late_achievements_pct": episode_weighted_mean(ach[-w:], episodes[-w:]),
            "achievements_per_iteration": np.round(
                np.where(episodes > 0, ach, np.nan), 3).tolist(),
        }

    def budget_text(self, budget: dict[str, Any]) -> str:
        """The generic budget, with the share of the published 1M-step budget."""
        return (super().budget_text(budget) + f" = {budget['env_steps_per_seed'] / 1e4:.2g}% "
                "of 1M (the published Craftax-1M budget); scored on the episodes that "
                f"finished in the last {CRAFTAX_LATE:.0%} of the iterations, no final eval")

    def extra_tables(self, entries: Sequence[dict[str, Any]]) -> list[str]:
        """Ours beside the published scores (:func:`craftax_published_table`)."""
        return [craftax_published_table(entries, f"craftax:{self.env_name}")]


def craftax_published_table(entries: Sequence[dict[str, Any]], env_id: str) -> str:
    """Markdown: the published Craftax scores (return as % of the maximum) and ours, each
    row labelled with its env-step budget."""
    from mimex_jax.bench.published import published

    pub = published(env_id)
    lines = ["| source | method | env steps per run | episode return, % of max |",
             "|---|---|---|---|"]
    if pub is not None:
        for budget in sorted(pub["scores"], reverse=True):
            for name, v in pub["scores"][budget].items():
                ours = CRAFTAX_METHODS.get(name)
                label = name + (f" (ours: {ours})" if ours else "")
                lines.append(f"| published | {label} | {budget:,} | {v:g} |")
    for e in entries:
        pct = [s["late_return_pct_max"] for s in e["seeds"]]
        lines.append(f"| this run, {len(pct)} seeds, IQM [95% CI] | {e['method']} | "
                     f"{e['budget']['env_steps_per_seed']:,} | {fmt_cell(pct, 1)} |")
    src = ("no published scores for this env in mimex_jax/bench/published.py" if pub is None
           else f"published: {pub['source']}; metric: {pub['metric']}; note: {pub['note']}")
    steps = entries[0]["budget"]["env_steps_per_seed"] if entries else 0
    return ("Published Craftax baselines beside ours, each row with its budget: the "
            f"published runs took 1M or 1B env steps; ours took {steps:,} per seed "
            f"({steps / 1e4:.2g}% of 1M), so unless the budgets match our rows are an early "
            "point of the learning curve, not a reproduction. " + src + ".\n\n"
            + "\n".join(lines))


def _craftax(task: str, env_name: str) -> Callable[[argparse.Namespace], list[Instance]]:
    """Craftax instances: 16 envs x 32 steps per iteration (64-64 MLPs, 4 epochs), sized
    from ``benchmarks/results/craftax_speed.md`` (a few hundred env steps/s on 2 cores)."""
    def make(args: argparse.Namespace) -> list[Instance]:
        from mimex_jax.envs.craftax_suite import MAX_RETURN

        its = args.iterations or (4 if args.quick else 32)
        return [Instance(task=task, label=task,
                         cfg=train_config(f"craftax:{env_name}", 16, 32, its),
                         hp=ppo_hparams(entropy_coef=0.01),
                         info={"max_return": MAX_RETURN[env_name], "episode_length": None,
                               "late_share": CRAFTAX_LATE})]
    return make


_CRAFTAX_SCORES = (("late_return_pct_max", "return % of max, last 25% of training", 1),
                   ("late_return", "episode return, last 25%", 2),
                   ("late_achievements_pct", "achievements unlocked %, last 25%", 1))


# --------------------------------------------------------------------------- pixels

# the share of training iterations, at the end, whose finished episodes score a pixel seed
PIXEL_LATE = 0.5
# default PPO iterations of cartpole-swingup-sparse-pixels (4 envs x 32 steps each), sized in
# :func:`_cartpole_pixels`'s docstring
CARTPOLE_PIXELS_ITERATIONS = 64


@dataclasses.dataclass(frozen=True)
class TrainingEpisodesTask(Task):
    """A task scored from its training episodes, with no final eval (the pixel tasks: a
    fresh rendered episode per eval env costs more than training at a CPU budget).

    Per seed: ``reward_collected`` (extrinsic reward summed over every env step of
    training: how often exploration found the sparse reward), ``late_return`` and, when the
    env defines success, ``late_success`` (over the episodes that finished in the last
    :attr:`late_share` of the iterations; ``None`` when none finished there).
    """

    late_share: float = PIXEL_LATE
    final_eval: bool = False

    def seed_scores(self, inst: Instance, episodes: np.ndarray, successes: np.ndarray
                    ) -> dict[str, Any]:
        """``late_success``: the successful share of the late episodes."""
        w = late_window(episodes.size, self.late_share)
        done = int(episodes[-w:].sum())
        return {"late_success": None if done == 0 else float(successes[-w:].sum() / done)}

    def metric_scores(self, inst: Instance, metrics: dict[str, np.ndarray], i: int
                      ) -> dict[str, Any]:
        """``reward_collected``, ``late_iterations``, ``late_episodes`` and ``late_return``."""
        episodes = np.asarray(metrics["episodes"][i], np.float64)
        w = late_window(episodes.size, self.late_share)
        reward = np.asarray(metrics["reward_ext"][i], np.float64)  # mean per agent step
        return {"reward_collected": float(reward.sum() * inst.cfg.steps_per_iteration),
                "late_iterations": w, "late_episodes": int(np.rint(episodes[-w:].sum())),
                "late_return": episode_weighted_mean(
                    np.asarray(metrics["episode_return"][i], np.float64)[-w:], episodes[-w:])}

    def budget_text(self, budget: dict[str, Any]) -> str:
        """The generic budget, with what the scores read."""
        return (super().budget_text(budget) + "; scored on the training episodes (the last "
                f"{self.late_share:.0%} of the iterations for late_*), no final eval")


def pixel_settings(camera: str, action_repeat: int, size: int = 64) -> dict[str, Any]:
    """``train_config`` overrides of a pixel task: ``size``x``size`` RGB of ``camera``, 3
    stacked frames, DrQ-v2's learned conv encoder, the bonus on its detached features."""
    pixels = dict(camera=camera, height=size, width=size, frame_stack=3,
                  action_repeat=action_repeat, proprio=False, encoder="conv")
    return dict(observation="pixels", embedding="encoder", pixels=tuple(sorted(pixels.items())))


def pixel_num_envs(args: argparse.Namespace, quick: int, default: int) -> int:
    """Envs per run of a pixel task: ``--num-envs`` when given, else ``quick`` with
    ``--quick``, else ``default``."""
    n = getattr(args, "num_envs", None)
    return int(n) if n is not None else (quick if args.quick else default)


def _cartpole_pixels(args: argparse.Namespace) -> list[Instance]:
    """Cart-pole swing-up (sparse) from 64x64 pixels with the state task's PPO settings
    (rollout 32 instead of 64: 1.8x more env steps/s here, measured below).

    Default budget: 4 envs x 32 steps x 64 iterations = 8,192 env steps per seed (16,384
    physics steps; 4 finished 500-step episodes per env), sized for none / RND / ICM /
    MIMEx x 5 seeds in about an hour on the shared 2-core CPU (far below what learning the
    task takes). Measured 2026-12-02 07:27-07:32 UTC, load average 5.2-6.6, with
    ``python -m mimex_jax.bench.exploration --tasks cartpole-swingup-sparse-pixels --methods
    none rnd icm mimex --seeds 1 --iterations 3 --chunk 1 --no-ablations``: after each
    method's first chunk, every 128-step iteration took 2.0-2.5 s (median 2.15 s over the 8,
    about 60 env steps/s, no method slower than another); each method's run took 46-86 s
    more than its iterations (compiles, env and renderer set-up; MIMEx the most). Estimate:
    20 runs x 64 x 2.15 s + 4 x ~65 s = about 51 minutes. Rollout 64 (4 envs), the same
    command at 07:21-07:27 UTC (load 4.7-6.0): 7.0-8.4 s per 256-step iteration (30-37
    env steps/s); 16 envs x rollout 32 (06:58-07:09 UTC, load 2.8-4.7): 18.4-36.8 s per
    512-step iteration (14-28 env steps/s). ``--quick``: 2 iterations, a smoke run.
    """
    its = args.iterations or (2 if args.quick else CARTPOLE_PIXELS_ITERATIONS)
    n = pixel_num_envs(args, 4, 4)
    return [Instance(task="cartpole-swingup-sparse-pixels",
                     label="cartpole-swingup-sparse-pixels",
                     cfg=train_config("playground:CartpoleSwingupSparse", n, 32, its,
                                      **pixel_settings("fixed", 2)),
                     hp=ppo_hparams(entropy_coef=0.0),
                     info={"episode_length": 500, "physics_steps_per_episode": 1000,
                           "pixels": "64x64 camera fixed, 3 frames, action repeat 2"})]


def _panda_pixels(args: argparse.Namespace) -> list[Instance]:
    """Panda open-cabinet (sparse) from 64x64 pixels of the scene's ``side`` camera; a GPU
    budget by default (1024 envs x 32 steps x 100 iterations, 3.3M env steps per seed)."""
    its = args.iterations or (2 if args.quick else 100)
    n = pixel_num_envs(args, 2, 1024)
    rollout = 8 if args.quick else 32
    return [Instance(task="panda-open-cabinet-sparse-pixels",
                     label="panda-open-cabinet-sparse-pixels",
                     cfg=train_config("playground:PandaOpenCabinetSparse", n, rollout, its,
                                      env_kwargs=(("success_threshold", 0.05),),
                                      **pixel_settings("side", 1)),
                     hp=ppo_hparams(entropy_coef=0.0),
                     info={"episode_length": 150, "success_threshold": 0.05,
                           "pixels": "64x64 camera side, 3 frames, action repeat 1"})]


_PIXEL_SCORES = (("reward_collected", "extrinsic reward collected in training", 0),
                 ("late_return", "training episode return, last half", 1),
                 ("steps_to_first_success", "env steps to 1st reward", 0))
_PANDA_SCORES = (("late_success", "success rate of training episodes, last half", 2),
                 ("steps_to_first_success", "env steps to 1st success", 0),
                 ("reward_collected", "extrinsic reward collected in training", 0))


_CAR_SCORES = (("final_success", "final success rate", 2),
               ("steps_to_first_success", "env steps to 1st success", 0))

for _task in (
    DeepSeaTask("deepsea", "gymnax DeepSea-bsuite, sizes 10-30 step 4; score = largest size "
                "solved by the bsuite rule", _deepsea,
                scores=(("largest_size_solved", "largest size solved", 1),),
                ablation=_deepsea_ablation, ablation_score=("solved", "solved (bsuite rule)"),
                seeds=10, quick_seeds=10),
    Task("mountaincar", "gymnax MountainCar-v0 (discrete, 200 steps): reach the flag",
         _gymnax_car("mountaincar", "gymnax:MountainCar-v0", True), scores=_CAR_SCORES),
    Task("mountaincar-continuous", "gymnax MountainCarContinuous-v0 (999 steps): reach the "
         "flag", _gymnax_car("mountaincar-continuous", "gymnax:MountainCarContinuous-v0",
                             False), scores=_CAR_SCORES, ablation=_car_ablation),
    Task("reacher-sparse", "brax:reacher_sparse (50 steps, success inside 0.005 of the "
         "target)", _reacher, scores=(("final_success", "final success rate", 3),)),
    Task("cartpole-swingup-sparse", "MuJoCo Playground CartpoleSwingupSparse (1000 steps, "
         "impl=jax)", _cartpole, scores=(("final_return", "final eval return", 1),),
         curve="return"),
    Task("minigrid-doorkey", "MiniGrid DoorKey-5x5 (xminigrid, 250 steps, egocentric one-hot "
         "view): pick up the key, open the door, reach the goal", _doorkey,
         scores=_CAR_SCORES, seeds=10, quick_seeds=10),
    Task("minigrid-doorkey-8x8", "MiniGrid DoorKey-8x8 (xminigrid, 640 steps, egocentric "
         "one-hot view; a random policy succeeds in ~3% of episodes)",
         _minigrid("minigrid-doorkey-8x8", "DoorKey-8x8", 640), scores=_CAR_SCORES,
         seeds=10, quick_seeds=10, default=False,
         note="262k env steps per seed, ~35 min for 4 methods x 10 seeds on 2 CPU cores"),
    Task("minigrid-keycorridor", "MiniGrid KeyCorridorS3R3 (mimex_jax.envs.minigrid_tasks on "
         "xminigrid, 270 steps): fetch the key from a side room, unlock the ball's room, "
         "pick the ball up; a random policy succeeds in ~0.5% of episodes",
         _minigrid("minigrid-keycorridor", "KeyCorridorS3R3", 270), scores=_CAR_SCORES,
         seeds=10, quick_seeds=10, default=False,
         note="262k env steps per seed, ~35 min for 4 methods x 10 seeds on 2 CPU cores"),
    Task("minigrid-multiroom", "MiniGrid MultiRoom-N4-S5 (mimex_jax.envs.minigrid_tasks on "
         "xminigrid, 80 steps): four rooms in a chain, three closed doors, the goal in the "
         "last room", _minigrid("minigrid-multiroom", "MultiRoom-N4-S5", 80),
         scores=_CAR_SCORES, seeds=10, quick_seeds=10, default=False,
         note="262k env steps per seed, ~35 min for 4 methods x 10 seeds on 2 CPU cores"),
    CraftaxTask("craftax-classic", "Craftax-Classic-Symbolic-v1 (craftax, 22 achievements, "
                "episodes up to 10,000 steps; no success)",
                _craftax("craftax-classic", "Craftax-Classic-Symbolic-v1"),
                scores=_CRAFTAX_SCORES, curve="return", has_success=False, default=False,
                final_eval=False, env_name="Craftax-Classic-Symbolic-v1"),
    CraftaxTask("craftax", "Craftax-Symbolic-v1 (craftax, the full game; no success)",
                _craftax("craftax", "Craftax-Symbolic-v1"), scores=_CRAFTAX_SCORES,
                curve="return", has_success=False, default=False, final_eval=False,
                env_name="Craftax-Symbolic-v1"),
    TrainingEpisodesTask(
        "cartpole-swingup-sparse-pixels", "MuJoCo Playground CartpoleSwingupSparse from "
        "64x64 pixels (camera fixed, 3 stacked frames, action repeat 2: 500-step episodes; "
        "DrQ-v2 conv encoder, bonus on its detached features)", _cartpole_pixels,
        scores=_PIXEL_SCORES, curve="return", default=False,
        note="8,192 env steps per seed, about 1 h for 4 methods x 5 seeds on 2 CPU cores; "
             "GPU: --num-envs 256 --iterations 250"),
    TrainingEpisodesTask(
        "panda-open-cabinet-sparse-pixels", "MuJoCo Playground PandaOpenCabinetSparse from "
        "64x64 pixels (camera side, 3 stacked frames, 150-step episodes; reward 1 while the "
        "handle is within 0.05 m of its target; needs MuJoCo Menagerie's Panda model)",
        _panda_pixels, scores=_PANDA_SCORES, default=False,
        note="a GPU budget, 3.3M env steps per seed; CPU hour: --num-envs 4 "
             "--iterations 60"),
):
    register_task(_task)
del _task

# the tasks the ablations run on by default (``--ablation-tasks``)
ABLATION_TASKS = ("deepsea", "mountaincar-continuous")


def ablation_instances(args: argparse.Namespace) -> list[Instance]:
    """The ablation instances of the tasks in ``args.ablation_tasks`` (default
    :data:`ABLATION_TASKS`), in that order."""
    names = getattr(args, "ablation_tasks", ABLATION_TASKS)
    out = []
    for name in names:
        task = TASKS.get(name)
        if task is None or task.ablation is None:
            raise ValueError(f"ablation task {name!r} is invalid; allowed: "
                             f"{ablation_task_names()}")
        out.append(task.ablation(args))
    return out


def ablation_task_names() -> list[str]:
    """Registered tasks that define an ablation instance."""
    return [n for n, t in TASKS.items() if t.ablation is not None]
