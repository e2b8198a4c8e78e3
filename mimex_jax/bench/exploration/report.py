"""Markdown report of an exploration result: per-task tables, ablation tables, plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mimex_jax.bench import stats
from mimex_jax.bench.exploration.methods import ABLATIONS, METHODS
from mimex_jax.bench.exploration.plots import plot_ablations, plot_curves
from mimex_jax.bench.exploration.tasks import LOWER_IS_BETTER, NA, TASKS, Task, fmt_cell

# the baselines MIMEx is compared with in the probability-of-improvement table
POI_BASELINES = ("none", "rnd", "icm")


def task_table(task: Task, entries: Sequence[dict[str, Any]]) -> str:
    """Markdown: method x (headline scores as IQM [95% CI], reached goal), scored by the
    task's :meth:`Task.method_scores` hook; undefined scores show ``n/a``."""
    head = "| method | " + " | ".join(f"{t} IQM [95% CI]" for _, t, _ in task.scores)
    head += " | seeds reached goal | per-seed " + task.scores[0][1] + " |"
    lines = [head, "|" + "---|" * (3 + len(task.scores))]
    first, _, digits = task.scores[0]
    for method in dict.fromkeys(e["method"] for e in entries):
        rows = task.method_scores([e for e in entries if e["method"] == method])
        cells = [fmt_cell(rows[k], d) for k, _, d in task.scores]
        per_seed = ", ".join(NA if x is None else f"{x:.{digits}f}" for x in rows[first])
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {rows['reached']} | "
                     + per_seed + " |")
    return "\n".join(lines)


def _is_mimex(method: str) -> bool:
    m = METHODS.get(method)
    return m.reward == "mimex" if m is not None else method.startswith("mimex")


def poi_cell(x: Sequence[float | None], y: Sequence[float | None], lower_is_better: bool
             ) -> str:
    """``P [95% CI]`` that a seed of X scores better than a seed of Y (rliable's
    probability of improvement, ties 1/2, :func:`mimex_jax.bench.stats.improvement`);
    ``n/a`` when a score is undefined."""
    if any(v is None for v in (*x, *y)):
        return NA
    sign = -1.0 if lower_is_better else 1.0
    r = stats.improvement([sign * float(v) for v in x], [sign * float(v) for v in y])
    return f"{r['p']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"


def improvement_table(task: Task, entries: Sequence[dict[str, Any]]) -> str | None:
    """Markdown: per MIMEx method, P(MIMEx > baseline) [95% CI] on the task's headline
    score for each baseline of :data:`POI_BASELINES` in ``entries``; ``None`` when there
    is no MIMEx method or no baseline."""
    methods = list(dict.fromkeys(e["method"] for e in entries))
    ours = [m for m in methods if _is_mimex(m)]
    bases = [b for b in POI_BASELINES if b in methods]
    if not ours or not bases:
        return None
    key, title, _ = task.scores[0]
    scores = {m: task.method_scores([e for e in entries if e["method"] == m])[key]
              for m in (*ours, *bases)}
    better = "lower" if key in LOWER_IS_BETTER else "higher"
    lines = ["| method | " + " | ".join(f"P(> {b}) [95% CI]" for b in bases) + " | seeds |",
             "|---|" + "---|" * (len(bases) + 1)]
    for m in ours:
        cells = [poi_cell(scores[m], scores[b], key in LOWER_IS_BETTER) for b in bases]
        n = "; ".join(f"{x} {len(scores[x])}" for x in (m, *bases))
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {n} |")
    return (f"Probability of improvement (rliable; Agarwal et al. 2021): the chance that a "
            f"seed of the method scores better ({better} {title}) than a seed of the "
            f"baseline, ties counted 1/2; 0.5 = no difference; 95% stratified bootstrap "
            f"CI over seeds.\n\n" + "\n".join(lines))


def ablation_table(entries: Sequence[dict[str, Any]], score: str, title: str | None = None
                   ) -> str:
    """Markdown: factor, value, env steps to the first success (IQM [CI], the plotted
    score), seeds that reached the goal, and the task's outcome score ``score`` (IQM [CI],
    column ``title``)."""
    if title is None:
        title = {"solved": "solved (bsuite rule)", "final_success": "final success rate"
                 }.get(score, score)
    lines = ["| factor | value | env steps to 1st success, IQM [95% CI] (never = budget) "
             f"| seeds reached goal | {title} IQM [95% CI] |", "|---|---|---|---|---|"]
    for e in sorted(entries, key=_ablation_order):
        s = e["seeds"]
        vals = [None if x[score] is None else float(x[score]) for x in s]
        reached = [x["reached_goal"] for x in s]
        label = "paper defaults" if e["ablation"] == "base" else e["ablation"]
        lines.append(f"| {label} | {'' if e['value'] is None else e['value']} "
                     f"| {fmt_cell([x['steps_to_first_success'] for x in s], 0)} "
                     f"| {NA if None in reached else f'{sum(reached)}/{len(s)}'} "
                     f"| {fmt_cell(vals)} |")
    return "\n".join(lines)


def _ablation_order(e: dict[str, Any]) -> tuple:
    names = ["base", *ABLATIONS]
    v = e["value"]
    return (names.index(e["ablation"]), (0, v) if isinstance(v, (int, float)) else (1, str(v)))


def _seeds_text(seeds: Any) -> str:
    """The header's seeds: a list (older files) or ``{task: [seeds]}``."""
    if isinstance(seeds, dict):
        return ", ".join(f"{t} {len(v)} ({v[0]}-{v[-1]})" if v else f"{t} none"
                         for t, v in seeds.items())
    return str(seeds)


def _one_by_one_text(results: Sequence[dict[str, Any]]) -> str:
    """The note on tasks whose seeds ran one after another, if any (``--one-by-one``;
    files written before pixel sweeps existed ran every pixel task that way)."""
    def one_by_one(e: dict[str, Any]) -> bool:
        layout = e.get("members_layout")
        if layout is None:
            return e.get("config", {}).get("observation") == "pixels"
        return layout == "one_by_one"

    tasks = list(dict.fromkeys(e["task"] for e in results if one_by_one(e)))
    return (f"; {', '.join(tasks)}: one compiled program per instance and method, its seeds "
            "one after another" if tasks else "")


def _bonus_k(entries: Sequence[dict[str, Any]]) -> float:
    """``k_expl`` of the task's bonus methods (the last entry's when none has a bonus)."""
    bonus = [e for e in entries if METHODS.get(e["method"]) is not None
             and METHODS[e["method"]].reward != "none"]
    return (bonus or entries)[-1]["hparams"]["k_expl"]


def write_reports(out: dict[str, Any], json_path: Path, plot_png: bool = True) -> None:
    """``<json>.md`` (tables + command/machine/budget) and the PNGs beside the JSON.

    Runs of tasks that are not registered (:data:`TASKS`) are left out of the main tables.
    """
    m = out["machine"]
    parts = [f"# Exploration benchmark{' (quick mode)' if out['quick'] else ''}\n",
             f"Command: `{out['command']}`  ",
             f"Wall time: {out['wall_seconds']:.0f} s on {m['processor']} ({m['cpu_count']} "
             f"CPUs, jax {m['jax']}, {m['backend']}), finished {m['date']}; load average at "
             f"the end {m['loadavg']}  ",
             f"Seeds: {_seeds_text(out['seeds'])} (one vmapped program per task instance "
             f"and method{_one_by_one_text(out['results'])}); "
             f"mimex-jax {out['mimex_jax']}, git commit "
             f"{out.get('git_commit') or m.get('git_commit') or 'not recorded'}  ",
             "Scores: interquartile mean over seeds with a 95% percentile-bootstrap CI "
             "(10,000 resamples of the seeds).\n"]
    main = [e for e in out["results"] if e.get("ablation") is None]
    pngs = []
    for name, task in TASKS.items():
        entries = [e for e in main if e["task"] == name]
        if not entries:
            continue
        parts.append(f"## {name}\n\n{task.description}. Budget per seed: "
                     f"{task.budget_text(entries[0]['budget'])}; k_expl "
                     f"{_bonus_k(entries):g} for every bonus.\n")
        parts.append(task_table(task, entries) + "\n")
        poi = improvement_table(task, entries)
        if poi is not None:
            parts.append(poi + "\n")
        parts.extend(t + "\n" for t in task.extra_tables(entries))
        png = json_path.with_name(f"{json_path.stem}_{name}.png")
        if plot_png and plot_curves(task, entries, png):
            pngs.append(png)
            parts.append(f"![{name} learning curves]({png.name})\n")
    abl = [e for e in out["results"] if e.get("ablation") is not None]
    if abl:
        parts.append("## Ablations (MIMEx, one factor at a time from the paper defaults)\n")
        for inst in dict.fromkeys(e["instance"] for e in abl):
            mine = [e for e in abl if e["instance"] == inst]
            task = TASKS.get(mine[0]["task"])
            score, title = (task.ablation_score if task is not None
                            else Task.ablation_score)
            b = mine[0]["budget"]
            parts.append(f"### {inst}\n\nBudget per seed: {b['env_steps_per_seed']:,} env "
                         f"steps ({b['num_envs']} envs x {b['rollout_len']} x "
                         f"{b['iterations']}).\n")
            parts.append(ablation_table(mine, score, title) + "\n")
        stem = json_path.stem
        png = json_path.with_name(stem + ("" if stem.endswith("ablations") else "_ablations")
                                  + ".png")
        if plot_png and plot_ablations(abl, png):
            pngs.append(png)
            parts.append(f"![ablations]({png.name})\n")
    md_path = json_path.with_suffix(".md")
    md_path.write_text("\n".join(parts))
    print(f"wrote {md_path}" + "".join(f", {p.name}" for p in pngs))
