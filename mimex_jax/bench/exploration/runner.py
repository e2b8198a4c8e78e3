"""Running the exploration benchmark: vmapped training (pixel configs: members one after
another through one compiled program), per-seed rows, result JSON, compare."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mimex_jax import loop as loop_lib
from mimex_jax import xla
from mimex_jax.bench.exploration.tasks import TASKS, Instance, Task
from mimex_jax.evaluate import make_evaluate
from mimex_jax.sweep import cover_mask_ratios, stack
from mimex_jax.trainer import HParams, TrainConfig, make_train

# per-seed fields computed from the env's success signal (None when it has none)
SUCCESS_FIELDS = ("reached_goal", "first_success_iteration", "steps_to_first_success",
                  "episodes_to_first_success", "success_episodes", "final_success",
                  "final_sampled_success", "successes_per_iteration")


def success_defined(task: Task, cfg: TrainConfig) -> bool:
    """``task.has_success``, or the env's own answer when the task leaves it ``None``.

    A task that claims success on an env that defines none is a ``ValueError`` (its
    success scores would be zeros, not results).
    """
    if task.has_success is False:
        return False
    env_has = _env_has_success(cfg.env_id, cfg.env_kwargs)
    if task.has_success and not env_has:
        raise ValueError(f"Task {task.name!r}: has_success=True is invalid for env "
                         f"{cfg.env_id!r}, which defines no success; allowed: None or False")
    return bool(env_has)


@functools.lru_cache(maxsize=64)
def _env_has_success(env_id: str, env_kwargs: tuple[tuple[str, Any], ...]) -> bool:
    from mimex_jax.envs import make_base

    return bool(make_base(env_id, **dict(env_kwargs)).has_success)


@functools.lru_cache(maxsize=2)
def member_runner(cfg: TrainConfig) -> loop_lib.Runner:
    """The single-member runner that trains ``cfg``'s members one after another
    (``train_members(..., sequential=True)``: a member's memory at a time).

    Compiled once per config and kept for the process (as the render contexts are), so
    every member, and :func:`init_members` before them, reuse the same programs.
    """
    return loop_lib.make_runner(cfg)


def init_members(cfg: TrainConfig, members: Sequence[tuple[int, HParams]],
                 sequential: bool = False) -> Any:
    """The sweep's initial state for its members (seed, hparams), stacked on axis 0.

    ``sequential``: initialise each member with the single-run program of
    :func:`member_runner` and stack the states.
    """
    if sequential:
        init = member_runner(cfg).init
        states = [init(jax.random.key(s), hp) for s, hp in members]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    keys = jnp.stack([jax.random.key(s) for s, _ in members])
    hps = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]),
                       *[hp for _, hp in members])
    return xla.jit(jax.vmap(make_train(cfg)[0]), mjx=xla.steps_mjx(cfg.env_id))(keys, hps)


def _progress(tag: str, reached: np.ndarray, has_success: bool, member: int | None = None
              ) -> loop_lib.Callback:
    """The progress line after each chunk: of all members (``[members, chunk]`` metrics) or,
    with ``member``, of that member alone (``[chunk]`` metrics); ``reached`` (one flag per
    member) accumulates which members had a successful episode."""
    rows = slice(None) if member is None else slice(member, member + 1)
    who = "" if member is None else f" member {member + 1}/{len(reached)}"

    def progress(r: loop_lib.ChunkResult) -> None:
        m = r.metrics if member is None else {k: v[None] for k, v in r.metrics.items()}
        succ = np.rint(m["episode_success"] * m["episodes"]).sum(axis=1)
        reached[rows] |= succ > 0
        ret = np.nanmean(np.where(m["episodes"] > 0, m["episode_return"],
                                  np.nan)) if np.any(m["episodes"] > 0) else float("nan")
        goal = (f" members that reached the goal so far {int(reached.sum())}/{len(reached)}"
                if has_success else "")
        print(f"  [{tag}]{who} it {r.iterations}/{r.total_iterations} steps/member "
              f"{r.env_steps:,} chunk {r.seconds:.1f}s mean episode return {ret:.3g}{goal}",
              flush=True)

    return progress


def _final_eval(cfg: TrainConfig, eval_episodes: int
                ) -> Callable[[Any, Any, jax.Array], dict[str, jax.Array]]:
    """``(params, obs_stats, key) -> {greedy,sampled}_{success,return}``: one member's final
    evaluation, both modes in one program."""
    ev = make_evaluate(cfg, eval_episodes)

    def both(params: Any, obs_stats: Any, key: jax.Array) -> dict[str, jax.Array]:
        out = {}
        for mode, det in (("greedy", True), ("sampled", False)):
            r = ev(params, obs_stats, key, det)
            out[f"{mode}_success"] = r["success"].mean()
            out[f"{mode}_return"] = r["return"].mean()
        return out

    return both


@functools.lru_cache(maxsize=2)
def member_eval(cfg: TrainConfig, eval_episodes: int
                ) -> Callable[[Any, Any, jax.Array], dict[str, jax.Array]]:
    """The jitted final evaluation of one member (:func:`_final_eval`), kept for the process
    like :func:`member_runner`."""
    return xla.jit(_final_eval(cfg, eval_episodes), mjx=xla.steps_mjx(cfg.env_id))


def train_members(cfg: TrainConfig, members: Sequence[tuple[int, HParams]], chunk: int,
                  eval_episodes: int, tag: str, has_success: bool = True,
                  sequential: bool = False
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, float]:
    """Train all members; return (metrics, final eval, seconds), each ``[members, ...]``.

    The members train as one vmapped program (pixel configs too: their worlds share one
    render context) or, with ``sequential``, one after another through one compiled
    single-run program (:func:`member_runner`; one member's memory at a time), each from
    its own seed and hparams exactly as a run of that member alone, their metrics and final
    evals stacked on a leading member axis as the vmapped program stacks them.
    ``eval_episodes=0`` skips the final evaluation (final eval ``None``); ``seconds`` is
    the training time (compile included).
    """
    hps = stack([hp for _, hp in members])
    cfg = cover_mask_ratios(cfg, hps)
    # A chunk length that divides the run: a shorter last chunk would be a second compile.
    chunk = max(c for c in range(1, min(chunk, cfg.num_iterations) + 1)
                if cfg.num_iterations % c == 0)
    reached = np.zeros(len(members), bool)
    key = jax.random.key(10_000)
    if sequential:
        t0 = time.perf_counter()
        runner = member_runner(cfg)
        per_member, policies = [], []   # a member's policy is all the final eval needs
        for i, (s, hp) in enumerate(members):
            state, m = loop_lib.run(runner, hp, jax.random.key(s), chunk=chunk,
                                    callbacks=[_progress(tag, reached, has_success, i)])
            per_member.append(m)
            policies.append((state.params, state.obs_stats))
        seconds = time.perf_counter() - t0
        metrics = {k: np.stack([m[k] for m in per_member]) for k in per_member[0]}
        if eval_episodes == 0:
            return metrics, None, seconds
        both = member_eval(cfg, eval_episodes)
        finals = [both(params, obs_stats, key) for params, obs_stats in policies]
        return metrics, {k: np.stack([np.asarray(f[k]) for f in finals]) for k in finals[0]
                         }, seconds
    runner = loop_lib.make_runner(cfg, sweep=True)
    t0 = time.perf_counter()
    state = init_members(cfg, members, sequential=False)
    state, metrics = loop_lib.run(runner, hps, state=state, chunk=chunk,
                                  callbacks=[_progress(tag, reached, has_success)])
    seconds = time.perf_counter() - t0
    if eval_episodes == 0:
        return metrics, None, seconds
    # one compiled program for both modes, vmapped over members
    final = xla.jit(jax.vmap(_final_eval(cfg, eval_episodes), in_axes=(0, 0, None)),
                    mjx=xla.steps_mjx(cfg.env_id))(
        state.params, state.obs_stats, key)
    return metrics, {k: np.asarray(v) for k, v in final.items()}, seconds


def seed_row(inst: Instance, cfg: TrainConfig, metrics: dict[str, np.ndarray],
             final: dict[str, np.ndarray] | None, i: int, has_success: bool = True
             ) -> dict[str, Any]:
    """Per-seed results of member ``i``: first success, the task's own scores
    (:meth:`Task.seed_scores`, :meth:`Task.metric_scores`), final eval, curves. Without
    ``has_success`` every success-based field (:data:`SUCCESS_FIELDS`) is ``None``;
    without a final eval (``final=None``) every ``final_*`` field is."""
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
    }
    for field, key in (("final_success", "greedy_success"), ("final_return", "greedy_return"),
                       ("final_sampled_success", "sampled_success"),
                       ("final_sampled_return", "sampled_return")):
        row[field] = None if final is None else float(final[key][i])
    if has_success:
        row.update(TASKS[inst.task].seed_scores(inst, episodes, successes))
    row.update(TASKS[inst.task].metric_scores(inst, metrics, i))
    row.update({
        "episodes_per_iteration": episodes.tolist(),
        "successes_per_iteration": successes.tolist(),
        "return_per_iteration": np.round(np.where(episodes > 0, metrics["episode_return"][i],
                                                  np.nan), 4).tolist(),
        "reward_int_per_iteration": np.round(metrics["reward_int"][i], 5).tolist(),
    })
    if not has_success:
        row.update(dict.fromkeys(SUCCESS_FIELDS))
    return row


def run_entry(inst: Instance, cfg: TrainConfig, variants: list[tuple[dict, HParams]],
              seeds: list[int], args: argparse.Namespace, tag: str) -> list[dict[str, Any]]:
    """Train ``variants x seeds`` (:func:`train_members`); one result entry per variant."""
    task = TASKS[inst.task]
    has_success = success_defined(task, cfg)
    members = [(s, hp) for _, hp in variants for s in seeds]
    eval_episodes = args.eval_episodes if task.final_eval else 0
    sequential = bool(getattr(args, "one_by_one", False))
    metrics, final, seconds = train_members(cfg, members, args.chunk, eval_episodes, tag,
                                            has_success, sequential)
    out = []
    for v, (labels, hp) in enumerate(variants):
        rows = []
        for j, s in enumerate(seeds):
            rows.append({"seed": s, **seed_row(inst, cfg, metrics, final, v * len(seeds) + j,
                                               has_success)})
        out.append({
            "task": inst.task, "instance": inst.label, **labels,
            "train_seconds_for_program": round(seconds, 1), "members_in_program": len(members),
            "members_layout": "one_by_one" if sequential else "vmapped",
            "config": dataclasses.asdict(cfg),
            "hparams": {k: float(v) for k, v in hp._asdict().items()},
            "budget": {"env_steps_per_seed": cfg.num_iterations * cfg.steps_per_iteration,
                       "iterations": cfg.num_iterations, "num_envs": cfg.num_envs,
                       "rollout_len": cfg.rollout_len, "eval_episodes": eval_episodes},
            "info": inst.info, "seeds": rows})
    return out


def run_key(entry: dict[str, Any]) -> str:
    """The identity of a run in a result file: instance|method|ablation|value."""
    return "|".join(str(entry.get(k)) for k in ("instance", "method", "ablation", "value"))


# --------------------------------------------------------------------------- result files


def dumps(out: dict[str, Any]) -> str:
    """Indented JSON with every flat list of numbers on one line (NaN -> null)."""
    text = json.dumps(out, indent=1, default=str).replace("NaN", "null")
    return re.sub(r"\[([^\[\]{}\"]*)\]",
                  lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text)


def write_result(path: Path, header: dict, results: list, wall: float, complete: bool
                 ) -> dict:
    """Write the result JSON atomically (header + machine + runs); return its content."""
    from mimex_jax.bench.machine import machine

    mach = machine()
    if header.get("git_commit") is not None:
        # the commit the run started from (its code is what ran); asking git again now
        # would call the tree dirty for the result file this run is writing
        mach["git_commit"] = header["git_commit"]
    out = {**header, "complete": complete, "wall_seconds": round(wall, 1),
           "machine": mach, "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(dumps(out))
    tmp.replace(path)
    return out


def versions() -> dict[str, str]:
    """Python and the versions of the packages the results depend on."""
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


# per-run fields that are measurements of the machine, not of the algorithm
_TIMING = ("train_seconds_for_program",)


def _json(x: Any) -> Any:
    """``x`` as it reads back from a result file (tuples -> lists, NaN -> null)."""
    return json.loads(dumps(x))


def config_defaults() -> dict[str, dict[str, Any]]:
    """Per record section (``config``, ``hparams``): each field's default, as stored in JSON.

    A field added to :class:`~mimex_jax.trainer.TrainConfig` or ``HParams`` after a result
    file was written is missing from that file's records; :func:`compare` reads it as this
    default.
    """
    cfg = {f.name: _json(f.default) for f in dataclasses.fields(TrainConfig)
           if f.default is not dataclasses.MISSING}
    return {"config": cfg, "hparams": _json(dict(HParams._field_defaults))}


def fill_defaults(new: dict[str, Any], ref: dict[str, Any],
                  defaults: dict[str, dict[str, Any]] | None = None
                  ) -> tuple[dict[str, Any], list[str]]:
    """``ref`` with each ``config`` / ``hparams`` key it lacks taken from ``new``, where
    ``new``'s value is that field's default; returns ``(filled ref, "section.key" list)``.

    A key missing from ``ref`` whose new value is not the default stays missing, so the
    run still differs; keys present in both are left as they are.
    """
    defaults = config_defaults() if defaults is None else defaults
    out, filled = dict(ref), []
    for section, fields in defaults.items():
        a, b = new.get(section), ref.get(section)
        if not isinstance(a, dict) or not isinstance(b, dict):
            continue
        extra = {k: a[k] for k in a if k not in b and k in fields and a[k] == fields[k]}
        if extra:
            out[section] = {**b, **extra}
            filled += [f"{section}.{k}" for k in sorted(extra)]
    return out, filled


def _differing_fields(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the top-level, ``config.``/``hparams.`` and per-seed fields that differ."""
    out = set()
    for k in set(a) | set(b):
        if k == "seeds" or a.get(k) == b.get(k):
            continue
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out |= {f"{k}.{x}" for x in set(a[k]) | set(b[k]) if a[k].get(x) != b[k].get(x)}
        else:
            out.add(k)
    sa, sb = a.get("seeds") or [], b.get("seeds") or []
    if len(sa) != len(sb):
        out.add(f"seeds (count {len(sa)} vs {len(sb)})")
    out |= {k for x, y in zip(sa, sb, strict=False) for k in set(x) | set(y)
            if x.get(k) != y.get(k)}
    return sorted(out)


def compare(new: dict[str, Any], old: dict[str, Any], old_name: Any = "reference") -> bool:
    """Print whether the runs of ``new`` that ``old`` also has gave identical numbers.

    Timing fields are ignored. A ``config`` / ``hparams`` key that the reference lacks
    (a field added since it was written) counts as equal when the new value is the field's
    default (:func:`fill_defaults`); the keys so defaulted are printed. Any other
    difference, in the settings or in the results, makes the run differ.
    """
    old_runs = {run_key(e): e for e in old["results"]}
    defaults = config_defaults()
    same, differ, missing, defaulted = 0, [], 0, {}
    for e in new["results"]:
        ref = old_runs.get(run_key(e))
        if ref is None:
            missing += 1
            continue
        a = _json({k: v for k, v in e.items() if k not in _TIMING})
        b = _json({k: v for k, v in ref.items() if k not in _TIMING})
        b, filled = fill_defaults(a, b, defaults)
        for k in filled:
            defaulted[k] = defaulted.get(k, 0) + 1
        if a == b:
            same += 1
        else:
            differ.append(f"{run_key(e)}: {', '.join(_differing_fields(a, b))}")
    print(f"compare with {old_name}: {same} run(s) identical, {len(differ)} differ, "
          f"{missing} not in the reference")
    if defaulted:
        print("  read as the default (missing from the reference, default value here): "
              + ", ".join(f"{k} ({n} run(s))" for k, n in sorted(defaulted.items())))
    for line in differ:
        print(f"  differs: {line}")
    return not differ and same > 0


def brief(e: dict[str, Any]) -> str:
    """One line per run for the log: reached goal, final success and return (means)."""
    s = e["seeds"]
    label = e["method"] if e["ablation"] in (None, "base") else f"{e['ablation']}={e['value']}"
    if any(x["reached_goal"] is None for x in s):
        success = "reached n/a, final success n/a"
    else:
        success = f"reached {sum(x['reached_goal'] for x in s)}/{len(s)}"
        if all(x["final_success"] is not None for x in s):  # None: no final eval
            success += f", final success {np.mean([x['final_success'] for x in s]):.2f}"
    if any(x["final_return"] is None for x in s):
        return f"{label}: {success}, no final eval"
    return f"{label}: {success}, final return {np.mean([x['final_return'] for x in s]):.3g}"
