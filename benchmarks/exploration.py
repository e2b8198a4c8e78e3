"""Exploration benchmark: does an intrinsic reward find a sparse reward that PPO alone misses?

For every task instance and method, ``--seeds`` seeds train as ONE vmapped program
(:func:`mimex_jax.loop.make_runner` with ``sweep=True``) with the same PPO settings and the
same environment-step budget. Methods differ only in the intrinsic reward (``none``,
``mimex``, ``rnd``, ``icm``) and its weight ``k_expl``. Per seed the script records whether
the sparse reward was ever reached, how many episodes that took, whether the task counts as
solved (the task's rule, below), the final policy's success rate (greedy and sampled) and the
per-iteration success curve.

    python benchmarks/exploration.py            # default run: sizes 12, 16, 20 (~20 min, 2 CPUs)
    python benchmarks/exploration.py --quick    # size 10, 32 envs, 1024 episodes (a few min)
    python benchmarks/exploration.py --tasks deepsea --sizes 20 --methods none mimex

Tasks and methods are tables (``TASKS``, ``METHODS``): a new task is one :class:`Task`
entry (env id, variants, PPO config, budget, solve rule), a new method one
:class:`Method` entry.

DeepSea (gymnax ``DeepSea-bsuite``, deterministic): an N x N grid, one step down per action,
episodes last exactly N steps. The treasure (+1) is paid for "right" in the bottom-right
cell, so it needs N "right" actions in a row; every "right" costs 0.01 / N. An episode's
return is 0.99 after the treasure and <= 0 otherwise, and the adapter's
``metrics["success"]`` (the env's ``denoised_return`` went up) marks exactly those episodes.
Which action index means "right" differs per cell, drawn by gymnax ONCE from
``jax.random.key(0)`` (``randomize_actions=True``, ``sample_action_map=False``), so all seeds
share one mapping (bsuite draws one per seed). A uniformly random policy finds the treasure
with probability 2^-N per episode.

Solve rule (bsuite's ``deep_sea/analysis.py``): bsuite counts an episode as bad when the agent
leaves the diagonal (in the deterministic env: every episode without the treasure) and calls
a size solved at the first episode where the running fraction of bad episodes
``total_bad / episodes`` drops below 0.8; its score also asks for that within
``2^N + 100`` episodes and the 10k-episode budget. Here ``solved`` = the cumulative fraction
of successful episodes reaches 0.2 at the end of some iteration within the budget;
``solved_bsuite`` additionally asks for it within min(10_000, 2^N + 100) episodes. Episodes
are counted over all parallel environments of a seed. "Episodes to first goal" is the number
of episodes done by the end of the first iteration that contained a goal episode (resolution:
one iteration = ``num_envs`` episodes).

DeepSea settings, the same for every method (chosen in short tuning runs at sizes 12-20):
64 envs x ``rollout_len = N`` (each env plays one whole episode
per iteration), 6400 episodes per seed, PPO lr 3e-4 constant, 4 epochs x 4 minibatches,
clip 0.2, entropy 0.01, value coef 0.5, gamma 0.99, lambda 0.95, MLPs 64-64 tanh, the
reward models see the raw one-hot observation (``embedding="obs"``) and their rewards are
divided by their running std (``normalize_intrinsic``) so one ``k_expl = 1`` serves every
method. Without a bonus PPO turns to "left" everywhere within ~25 iterations (the move
cost), so after that it cannot find the treasure by chance. MIMEx uses the paper's model and
masks (T=5, ratio 0.7) with a reward-model lr of 1e-3: the trainer takes one reward-model
Adam step per iteration, and at the paper's 1e-4 the MIMEx reward was flat over the grid
after 20-30 iterations (2.13-2.26 on every visited cell of size 12), so it carried no
novelty signal; ``mimex-lr1e-4`` keeps the paper's value for comparison.

Sweep members are initialised one by one and stacked (:func:`init_members`): the vmapped
init of the rnd/icm/mimex reward states hung on the 2-core CPU this was written on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

import mimex_jax  # noqa: E402
from mimex_jax import envs  # noqa: E402
from mimex_jax import loop as loop_lib  # noqa: E402
from mimex_jax.agents.ppo import ActorCritic  # noqa: E402
from mimex_jax.sweep import cover_mask_ratios, stack  # noqa: E402
from mimex_jax.trainer import HParams, TrainConfig, make_train  # noqa: E402
from mimex_jax.trainer import _normalize as normalize_obs  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------- methods


@dataclasses.dataclass(frozen=True)
class Method:
    """An intrinsic reward: the trainer's ``reward`` kind plus config / hparam overrides."""

    name: str
    reward: str
    cfg: tuple[tuple[str, Any], ...] = ()
    hp: tuple[tuple[str, float], ...] = ()
    note: str = ""


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("none", "none", hp=(("k_expl", 0.0),), note="PPO, extrinsic reward only"),
    Method("mimex", "mimex",
           cfg=(("seq_len", 5), ("mimex", (("lr", 1e-3), ("mask_ratio", 0.7)))),
           note="MIMEx: paper model (T=5, mask ratio 0.7, uniform token masks, embed 128, "
                "depth 4), reward-model Adam lr 1e-3 instead of the paper's 1e-4"),
    Method("mimex-lr1e-4", "mimex",
           cfg=(("seq_len", 5), ("mimex", (("lr", 1e-4), ("mask_ratio", 0.7)))),
           note="MIMEx with every paper default, reward-model lr 1e-4 included"),
    Method("rnd", "rnd", note="RND on the observation"),
    Method("icm", "icm", note="ICM forward-model error"),
)}


# --------------------------------------------------------------------------- tasks


@dataclasses.dataclass(frozen=True)
class Instance:
    """One trainable task variant: a config (reward kind filled in per method) + hparams."""

    task: str
    label: str
    cfg: TrainConfig
    hp: HParams
    k_expl: dict[str, float]          # per intrinsic reward kind
    eval_steps: int                   # steps of one evaluation episode
    info: dict[str, Any]              # facts reported with the results (chance rate, ...)
    solve: Callable[[np.ndarray, np.ndarray], tuple[bool, int | None]]
    # extra per-iteration curves from the metrics ([members, iterations] arrays)
    curves: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] = lambda m: {}


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    description: str
    instances: Callable[[argparse.Namespace], list[Instance]]


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


def deepsea_curves(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fraction of "right" actions per iteration, read off the mean episode return.

    A DeepSea episode of N steps returns ``success - 0.01 / N * (#right)``, so the mean
    fraction of right actions is ``(success rate - mean return) / 0.01``. Deterministic
    env with the default move cost only.
    """
    return {"right_action_fraction":
            (metrics["episode_success"] - metrics["episode_return"]) / 0.01}


def deepsea_instances(args: argparse.Namespace) -> list[Instance]:
    out = []
    for size in args.sizes:
        num_envs = 32 if args.quick else args.num_envs
        rollout_len = size  # every env finishes exactly one episode per iteration
        episodes = args.episodes or (1_024 if args.quick else 6_400)
        iterations = max(1, math.ceil(episodes / num_envs))
        cfg = TrainConfig(
            env_id="gymnax:DeepSea-bsuite", env_kwargs=(("size", size),),
            num_envs=num_envs, rollout_len=rollout_len, epochs=4, minibatches=4,
            total_steps=iterations * num_envs * rollout_len, reward="none", embedding="obs",
            normalize_intrinsic=True, actor_hidden=(64, 64), critic_hidden=(64, 64),
            activation="tanh", lr_schedule="constant")
        hp = HParams(lr=3e-4, clip_eps=0.2, value_coef=0.5, entropy_coef=0.01,
                     max_grad_norm=0.5, gamma=0.99, lam=0.95, k_expl=0.0, mask_ratio=0.7)
        out.append(Instance(
            task="deepsea", label=f"deepsea-{size}", cfg=cfg, hp=hp,
            k_expl={"mimex": 1.0, "rnd": 1.0, "icm": 1.0}, eval_steps=size,
            info={"size": size, "episode_length": size,
                  "random_policy_success_per_episode": 2.0 ** -size,
                  "p_random_policy_finds_within_budget":
                      1.0 - (1.0 - 2.0 ** -size) ** (iterations * num_envs),
                  "bsuite_episode_limit": min(10_000, 2 ** size + 100)},
            solve=bsuite_deep_sea_solve, curves=deepsea_curves))
    return out


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("deepsea", "gymnax DeepSea-bsuite (deterministic, fixed action map), treasure reached",
         deepsea_instances),
)}


# --------------------------------------------------------------------------- running


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; VALUE is a number, a bool, a string or JSON (lists -> tuples)."""
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        out[name] = _tuples(json.loads(value)) if value[:1] in "[{" else _number(value)
    return out


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def method_config(inst: Instance, method: Method, cfg_over: dict, hp_over: dict
                  ) -> tuple[TrainConfig, HParams]:
    cfg = dataclasses.replace(inst.cfg, **{"reward": method.reward, **dict(method.cfg),
                                           **cfg_over})
    hp = inst.hp._replace(**dict(method.hp))
    if method.reward != "none":
        hp = hp._replace(k_expl=inst.k_expl[method.reward])
    return cfg, hp._replace(**hp_over)


def evaluate(cfg: TrainConfig, state: Any, steps: int, episodes: int, key: jax.Array
             ) -> dict[str, np.ndarray]:
    """Success rate of each member's final policy: greedy (argmax / mean) and sampled."""
    env = envs.make(cfg.env_id, num_envs=episodes, auto_reset=False,
                    episode_length=cfg.episode_length, **dict(cfg.env_kwargs))
    discrete = env.action_kind == "discrete"
    net = ActorCritic(action_dim=env.num_actions if discrete else env.action_size,
                      discrete=discrete, actor_hidden=cfg.actor_hidden,
                      critic_hidden=cfg.critic_hidden, act=cfg.activation,
                      intrinsic_value_head=cfg.intrinsic_value_head)

    def one(params, stats, key, greedy):
        def body(carry, k):
            s, alive, succ = carry
            obs = normalize_obs(stats, s.obs) if cfg.normalize_obs else s.obs
            dist = net.apply({"params": params}, obs)[0]
            action = dist.mode() if greedy else dist.sample(k)
            s = env.step(s, action)
            succ = jnp.maximum(succ, alive * s.metrics["episode_success"])
            return (s, alive * (1.0 - s.done), succ), None

        k0, k1 = jax.random.split(key)
        init = (env.reset(k0), jnp.ones(episodes), jnp.zeros(episodes))
        (_, _, succ), _ = jax.lax.scan(body, init, jax.random.split(k1, steps))
        return jnp.mean(succ)

    fn = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)), static_argnums=3)
    return {"greedy": np.asarray(fn(state.params, state.obs_stats, key, True)),
            "sampled": np.asarray(fn(state.params, state.obs_stats, key, False))}


def per_seed(inst: Instance, metrics: dict[str, np.ndarray], seed_index: int,
             steps_per_iter: int) -> dict[str, Any]:
    episodes = np.rint(metrics["episodes"][seed_index]).astype(np.int64)
    successes = np.rint(metrics["episode_success"][seed_index] * episodes).astype(np.int64)
    cum_ep = np.cumsum(episodes)
    hit = np.flatnonzero(successes > 0)
    first = int(hit[0]) if hit.size else None
    solved, solve_ep = inst.solve(episodes, successes)
    limit = inst.info.get("bsuite_episode_limit")
    tail = max(1, len(episodes) // 10)
    return {
        "reached_goal": first is not None,
        "first_goal_iteration": first,
        "episodes_to_first_goal": None if first is None else int(cum_ep[first]),
        "episodes_before_first_goal_iteration": None if first is None
        else int(cum_ep[first] - episodes[first]),
        "env_steps_to_first_goal": None if first is None else (first + 1) * steps_per_iter,
        "goal_episodes": int(successes.sum()),
        "episodes": int(cum_ep[-1]),
        "solved": solved,
        "solve_episode": solve_ep,
        "solved_bsuite": bool(solved and limit is not None and solve_ep <= limit),
        "success_rate_last_10pct": float(successes[-tail:].sum() / max(episodes[-tail:].sum(), 1)),
        "successes_per_iteration": successes.tolist(),
        "episodes_per_iteration": episodes.tolist(),
        "reward_int_mean_per_iteration": np.round(metrics["reward_int"][seed_index], 5).tolist(),
        **{f"{k}_per_iteration": np.round(v[seed_index], 4).tolist()
           for k, v in inst.curves(metrics).items()},
    }


def init_members(cfg: TrainConfig, hp: HParams, seeds: list[int]) -> Any:
    """The sweep's initial state, member by member, stacked on a leading axis.

    Equal to ``jax.vmap(init)(keys, hparams)`` for identical hparams. The vmapped init
    program of the rnd/icm/mimex reward states never finished on this 2-core CPU
    (jax/jaxlib 0.10.2: every XLA worker thread asleep, a lost wake-up), while the same
    init unvmapped, and the vmapped training chunks, run fine.
    """
    init = jax.jit(make_train(cfg)[0])
    states = [init(jax.random.key(s), hp) for s in seeds]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def run_one(inst: Instance, method: Method, seeds: list[int], args: argparse.Namespace
            ) -> dict[str, Any]:
    cfg, hp = method_config(inst, method, args.cfg, args.hp)
    hps = stack([hp] * len(seeds))
    cfg = cover_mask_ratios(cfg, hps)
    runner = loop_lib.make_runner(cfg, sweep=True)
    t0 = time.perf_counter()
    seen = {"goal": np.zeros(len(seeds), bool)}

    def progress(r: loop_lib.ChunkResult) -> None:
        succ = np.rint(r.metrics["episode_success"] * r.metrics["episodes"]).sum(axis=1)
        seen["goal"] |= succ > 0
        extra = "".join(f" {k} {np.round(v.mean(axis=1), 2).tolist()}"
                        for k, v in inst.curves(r.metrics).items())
        print(f"  [{inst.label} {method.name}] it {r.iterations}/{r.total_iterations} "
              f"steps {r.env_steps} chunk {r.seconds:.1f}s goal-episodes this chunk "
              f"{succ.astype(int).tolist()}{extra} seeds reached so far "
              f"{int(seen['goal'].sum())}", flush=True)

    state = init_members(cfg, hp, seeds)
    state, metrics = loop_lib.run(runner, hps, state=state, chunk=args.chunk,
                                  callbacks=[progress])
    train_s = time.perf_counter() - t0
    ev = evaluate(cfg, state, inst.eval_steps, args.eval_episodes, jax.random.key(10_000))
    seeds_out = []
    for i, s in enumerate(seeds):
        row = per_seed(inst, metrics, i, cfg.steps_per_iteration)
        row.update(seed=s, final_greedy_success=float(ev["greedy"][i]),
                   final_sampled_success=float(ev["sampled"][i]))
        seeds_out.append(row)
    return {
        "task": inst.task, "instance": inst.label, "method": method.name,
        "method_note": method.note, "train_seconds": round(train_s, 1),
        "config": {k: v for k, v in dataclasses.asdict(cfg).items()},
        "hparams": {k: float(v) for k, v in hp._asdict().items()},
        "budget": {"env_steps_per_seed": cfg.num_iterations * cfg.steps_per_iteration,
                   "iterations": cfg.num_iterations, "num_envs": cfg.num_envs,
                   "rollout_len": cfg.rollout_len,
                   "episodes_per_seed": int(seeds_out[0]["episodes"])},
        "info": inst.info, "seeds": seeds_out,
    }


def _fmt_mean(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    return "-" if not got else f"{np.mean(got):.0f}"


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| task | method | k_expl | env steps / seed | reached goal | episodes to 1st goal "
             "(per seed) | solved (bsuite) | greedy success | sampled success |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["seeds"]
        n = len(s)
        firsts = [x["episodes_to_first_goal"] for x in s]
        lines.append(
            f"| {r['instance']} | {r['method']} | {r['hparams']['k_expl']:g} "
            f"| {r['budget']['env_steps_per_seed']:,} "
            f"| {sum(x['reached_goal'] for x in s)}/{n} "
            f"| {', '.join('-' if f is None else str(f) for f in firsts)} "
            f"(mean {_fmt_mean(firsts)}) "
            f"| {sum(x['solved'] for x in s)}/{n} ({sum(x['solved_bsuite'] for x in s)}/{n}) "
            f"| {np.mean([x['final_greedy_success'] for x in s]):.2f} "
            f"| {np.mean([x['final_sampled_success'] for x in s]):.2f} |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> bool:
    """Per task instance: cumulative goal fraction per seed, and any extra curves."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = list(dict.fromkeys(r["instance"] for r in results))
    extra = sorted({k for r in results for k in r["seeds"][0]
                    if k.endswith("_per_iteration") and k not in
                    ("successes_per_iteration", "episodes_per_iteration",
                     "reward_int_mean_per_iteration")})
    rows = 1 + len(extra)
    fig, axes = plt.subplots(rows, len(labels), figsize=(5 * len(labels), 3.4 * rows),
                             squeeze=False)
    for col, label in enumerate(labels):
        runs = [x for x in results if x["instance"] == label]
        for j, r in enumerate(runs):
            for k, s in enumerate(r["seeds"]):
                ep = np.cumsum(s["episodes_per_iteration"])
                frac = np.cumsum(s["successes_per_iteration"]) / np.maximum(ep, 1)
                axes[0, col].plot(ep, frac, color=f"C{j}", alpha=0.7, lw=1,
                                  label=r["method"] if k == 0 else None)
                for row, name in enumerate(extra, start=1):
                    axes[row, col].plot(ep, s[name], color=f"C{j}", alpha=0.5, lw=0.8,
                                        label=r["method"] if k == 0 else None)
        axes[0, col].axhline(0.2, ls="--", color="grey", lw=0.8)
        axes[0, col].set_title(f"{label}: {len(runs[0]['seeds'])} seeds per method")
        axes[0, col].set_ylabel("cumulative fraction of goal episodes")
        for row, name in enumerate(extra, start=1):
            axes[row, col].set_ylabel(name.removesuffix("_per_iteration").replace("_", " "))
        for row in range(rows):
            axes[row, col].set_xlabel("episodes (per seed)")
        axes[0, col].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=["deepsea"], choices=sorted(TASKS))
    p.add_argument("--methods", nargs="+", default=["none", "mimex", "mimex-lr1e-4", "rnd", "icm"],
                   choices=sorted(METHODS))
    p.add_argument("--seeds", type=int, default=5, help="seeds per method (one vmapped run)")
    p.add_argument("--sizes", type=int, nargs="+", default=[12, 16, 20],
                   help="DeepSea sizes (--quick: 10)")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--episodes", type=int, default=None,
                   help="episode budget per seed (default 6400, --quick 1024)")
    p.add_argument("--chunk", type=int, default=25, help="iterations per compiled chunk")
    p.add_argument("--eval-episodes", type=int, default=256)
    p.add_argument("--hp", nargs="*", default=[], help="HParams overrides NAME=VALUE (all "
                   "methods; k_expl here overrides every intrinsic method's value)")
    p.add_argument("--cfg", nargs="*", default=[], help="TrainConfig overrides NAME=VALUE")
    p.add_argument("--quick", action="store_true", help="small budget smoke run")
    p.add_argument("--out", type=Path, default=None,
                   help="result JSON (default results/exploration.json, --quick: "
                        "results/exploration_quick.json); .md and .png beside it")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--render", type=Path, default=None, metavar="JSON",
                   help="only rewrite the table (.md) and plot (.png) of an existing result")
    args = p.parse_args(argv)
    if args.render is not None:
        write_reports(json.loads(args.render.read_text()), args.render, not args.no_plot)
        return
    args.hp, args.cfg = parse_overrides(args.hp), parse_overrides(args.cfg)
    if args.quick and args.sizes == [12, 16, 20]:
        args.sizes = [10]
    if args.out is None:
        args.out = RESULTS / ("exploration_quick.json" if args.quick else "exploration.json")
    seeds = list(range(args.seeds))

    t_start = time.perf_counter()
    results = []
    for task_name in args.tasks:
        for inst in TASKS[task_name].instances(args):
            for name in args.methods:
                print(f"{inst.label} / {name}: {args.seeds} seeds in one vmapped program",
                      flush=True)
                res = run_one(inst, METHODS[name], seeds, args)
                print(f"  done in {res['train_seconds']}s", flush=True)
                results.append(res)
    wall = time.perf_counter() - t_start
    md = table(results)
    print()
    print(md)
    out = {
        "benchmark": "exploration", "command": "python " + " ".join(
            [str(Path(sys.argv[0]))] + (sys.argv[1:] if argv is None else argv)),
        "quick": args.quick, "seeds": seeds, "wall_seconds": round(wall, 1),
        "mimex_jax": getattr(mimex_jax, "__version__", "unknown"), "machine": machine(),
        "methods": {k: dataclasses.asdict(v) for k, v in METHODS.items() if k in args.methods},
        "tasks": {k: TASKS[k].description for k in args.tasks},
        "solve_rule": "cumulative fraction of goal episodes >= 0.2 at the end of some "
                      "iteration (bsuite deep_sea: running bad-episode fraction < 0.8); "
                      "solved_bsuite: also within min(10000, 2^N + 100) episodes",
        "overrides": {"hp": args.hp, "cfg": args.cfg}, "table_markdown": md,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(out))
    print(f"\nwrote {args.out} (wall {wall:.0f}s)")
    write_reports(out, args.out, plot_png=not args.no_plot)


def dumps(out: dict[str, Any]) -> str:
    """Indented JSON with every flat list of numbers on one line."""
    text = json.dumps(out, indent=1, default=str)
    return re.sub(r"\[([^\[\]{}\"]*)\]",
                  lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text)


def write_reports(out: dict[str, Any], json_path: Path, plot_png: bool = True) -> None:
    """``<json>.md`` (the table with command, machine, budget) and ``<json>.png`` curves."""
    m = out["machine"]
    r0 = out["results"][0] if out["results"] else {"hparams": {}, "budget": {}}
    md_path = json_path.with_suffix(".md")
    md_path.write_text(
        f"# Exploration benchmark\n\nCommand: `{out['command']}`  \n"
        f"Wall time: {out['wall_seconds']:.0f} s on {m['processor']} ({m['cpu_count']} CPUs, "
        f"jax {m['jax']}, {m['backend']}), {m['date']}  \n"
        f"Seeds per method: {len(out['seeds'])}, one vmapped program per method; "
        f"{r0['budget'].get('num_envs')} envs, {r0['budget'].get('episodes_per_seed')} "
        f"episodes per seed; PPO lr {r0['hparams'].get('lr')}, entropy "
        f"{r0['hparams'].get('entropy_coef')}  \n"
        f"Solve rule: {out['solve_rule']}\n\n{table(out['results'])}\n")
    print(f"wrote {md_path}")
    if plot_png:
        png = json_path.with_suffix(".png")
        print(f"wrote {png}" if plot(out["results"], png) else "matplotlib missing: no plot")


if __name__ == "__main__":
    main()
