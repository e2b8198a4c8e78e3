"""Per-setting results of a run directory: the answer a sweep ends with.

A sweep trains settings x seeds as one program; the question it answers is which setting
is best, by how much, and whether the difference is more than seed noise. This module reads
a run directory (finished or interrupted) and aggregates its members by setting:

* final evaluation return / success (``eval.json``), per setting over its seeds;
* the last chunk's training metrics (``metrics.jsonl``), per seed then over seeds;
* env steps to the first success (the first logged iteration with ``episode_success > 0``),
  for tasks that define success.

Scores over seeds are the interquartile mean with a 95% percentile-bootstrap interval and
the range, from :mod:`mimex_jax.bench.stats`. Settings are ranked by the run's
``run.best_metric`` (``episode_return`` when unset): its final evaluation when the run has
one (``episode_return`` -> eval return, ``episode_success`` -> eval success), otherwise its
last-chunk training value. A no-bonus baseline trained into ``<run>/baseline`` is a
reference row.

The same :class:`Report` feeds the table printed at the end of ``mimex-jax sweep``, the
``mimex-jax report RUN`` command, ``sweep_summary.csv`` / ``sweep_summary.md`` /
``sweep_summary.png`` in the run directory and the ``settings`` entries of
``summary.json``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mimex_jax.bench import stats
from mimex_jax.config import RunConfig, load_config
from mimex_jax.logging import MEMBERS_JSON, METRICS_CSV, METRICS_JSONL

__all__ = ["Report", "aggregate", "build", "load", "render", "setting_entries",
           "summary_entries", "table", "write"]

TRAIN_METRICS = ("episode_return", "episode_success")
EVAL_OF = {"episode_return": "return", "episode_success": "success"}
SUMMARY_CSV, SUMMARY_MD, SUMMARY_PNG = "sweep_summary.csv", "sweep_summary.md", \
    "sweep_summary.png"
STATS = ("iqm", "ci_low", "ci_high", "mean", "min", "max")


def aggregate(values: Sequence[float]) -> dict[str, Any]:
    """IQM, 95% bootstrap CI, mean, min, max and the per-seed values of one score.

    Non-finite scores (a diverged seed) are counted in ``nonfinite`` and leave the
    statistics ``None``, never silently dropped.
    """
    x = np.asarray(values, np.float64)
    out: dict[str, Any] = {"n": int(x.size), "values": [float(v) for v in x]}
    bad = int(np.sum(~np.isfinite(x)))
    if bad or x.size == 0:
        return {**out, "nonfinite": bad, **dict.fromkeys(STATS)}
    s = stats.summarize(x)
    return {**out, **{k: s[k] for k in ("iqm", "ci_low", "ci_high", "mean")},
            "min": float(x.min()), "max": float(x.max())}


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """What a run directory holds, read once."""

    run_dir: Path
    rc: RunConfig
    labels: list[dict[str, Any]]       # one per member (seed and swept settings)
    rows: list[dict[str, Any]]         # metrics.jsonl (or .csv) rows
    eval: dict[str, Any] | None        # eval.json, None when the run has not finished

    @property
    def swept(self) -> list[str]:
        """The swept hyperparameters, in the order of the labels."""
        return list(dict.fromkeys(k for lab in self.labels for k in lab if k != "seed"))


def _read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The metric rows; a last line cut short by a killed process is left out."""
    if (run_dir / METRICS_JSONL).exists():
        lines = [ln for ln in (run_dir / METRICS_JSONL).read_text(encoding="utf-8")
                 .splitlines() if ln.strip()]
        rows = []
        for j, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if j < len(lines) - 1:  # only the last line can be cut short
                    raise ValueError(f"{run_dir / METRICS_JSONL}: line {j + 1} is not "
                                     "JSON") from None
        return rows
    if (run_dir / METRICS_CSV).exists():
        with open(run_dir / METRICS_CSV, newline="", encoding="utf-8") as f:
            return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
    return []


def load(run_dir: str | Path) -> RunFiles:
    """Read ``config.yaml``, ``members.json``, the metric log and ``eval.json`` (if any)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise ValueError(f"{run_dir} is not a run directory (no config.yaml)")
    rc = load_config(run_dir / "config.yaml")
    if (run_dir / MEMBERS_JSON).exists():
        labels = [{k: v for k, v in lab.items() if k != "member"}
                  for lab in json.loads((run_dir / MEMBERS_JSON).read_text())]
    else:
        from mimex_jax.config import make_sweep

        labels = [{**s, "seed": seed} for s in make_sweep(rc)[2] for seed in rc.run.seeds]
    ev = json.loads((run_dir / "eval.json").read_text()) if (run_dir / "eval.json").exists() \
        else None
    if ev is not None and len(ev["members"]) != len(labels):
        raise ValueError(f"{run_dir}: eval.json has {len(ev['members'])} members but "
                         f"members.json has {len(labels)}")
    return RunFiles(run_dir, rc, labels, _read_rows(run_dir), ev)


def _has_success(rc: RunConfig) -> bool:
    from mimex_jax import envs

    return envs.make_base(rc.train.env_id, **dict(rc.train.env_kwargs)).spec.has_success


def _last_window(run: RunFiles) -> tuple[int, int] | None:
    """First and last iteration of the last logged chunk (as a straight run chunks)."""
    if not run.rows:
        return None
    last = max(int(r["iteration"]) for r in run.rows)
    return (last // run.rc.run.chunk) * run.rc.run.chunk, last


def _per_member(run: RunFiles, window: tuple[int, int] | None, success: bool
                ) -> list[dict[str, Any]]:
    """Per member: eval return/success, last-chunk training means, first-success steps."""
    out: list[dict[str, Any]] = [{"train": {}, "first_success": None} for _ in run.labels]
    by_member: dict[int, list[dict[str, Any]]] = {}
    for r in run.rows:
        by_member.setdefault(int(r.get("member", 0)), []).append(r)
    for i, vals in enumerate(out):
        rows = by_member.get(i, [])
        if window is not None:
            last = [r for r in rows if r["iteration"] >= window[0]]
            for k in TRAIN_METRICS + _rank_metric(run.rc)[:1]:
                if last and k in last[0]:
                    vals["train"][k] = float(np.mean([r[k] for r in last]))
        if success:
            hits = [r["env_steps"] for r in rows if r.get("episode_success", 0.0) > 0]
            vals["first_success"] = min(hits) if hits else math.inf
        if run.eval is not None:
            m = run.eval["members"][i]
            vals["eval"] = {"return": m["return"], "success": m["success"]}
    return out


def _rank_metric(rc: RunConfig) -> tuple[str, str]:
    if rc.run.best_metric is None:
        return "episode_return", "max"
    return rc.run.best_metric, rc.run.best_mode


def setting_entries(run: RunFiles) -> list[dict[str, Any]]:
    """One entry per setting (members grouped by their swept values), in label order.

    Each entry: ``setting`` (swept values), ``members`` (indices into members.json),
    ``seeds``, ``eval`` ({return, success} aggregates, or None), ``train`` (last-chunk
    aggregates per metric), ``first_success`` (None where the task has no success
    signal, else ``reached`` / ``n`` and the ``env_steps`` aggregate over the seeds that
    reached one).
    """
    window = _last_window(run)
    success = _has_success(run.rc)
    per = _per_member(run, window, success)
    groups: dict[tuple, list[int]] = {}
    for i, lab in enumerate(run.labels):
        groups.setdefault(tuple(lab.get(k) for k in run.swept), []).append(i)
    entries = []
    for key, idx in groups.items():
        e: dict[str, Any] = {
            "setting": dict(zip(run.swept, key, strict=True)), "members": idx,
            "seeds": [run.labels[i]["seed"] for i in idx],
            "eval": None if run.eval is None else {
                k: aggregate([per[i]["eval"][k] for i in idx]) for k in ("return", "success")},
            "train": {k: aggregate([per[i]["train"][k] for i in idx])
                      for k in per[idx[0]]["train"]},
            "first_success": None,
        }
        if success:
            steps = [per[i]["first_success"] for i in idx]
            hit = [s for s in steps if math.isfinite(s)]
            e["first_success"] = {"reached": len(hit), "n": len(idx),
                                  "env_steps": aggregate(hit) if hit else None}
        entries.append(e)
    return entries


@dataclasses.dataclass
class Report:
    """A run's per-setting table: entries ranked, references, and what they mean."""

    run: RunFiles
    entries: list[dict[str, Any]]                 # ranked: best first, with "rank", "best"
    references: list[tuple[str, dict[str, Any]]]  # (name, entry) rows not ranked
    metric: str                                   # the ranking metric (run.best_metric)
    mode: str                                     # "max" or "min"
    source: str                                   # "eval" or "train" (last chunk)
    window: tuple[int, int] | None                # the last chunk's iterations
    iterations: int                               # iterations logged
    total_iterations: int

    def score(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The aggregate the ranking reads for ``entry``."""
        return score_of(entry, self.source, self.metric)

    @property
    def rank_by(self) -> str:
        """What the ranking reads, in words."""
        what = f"eval {EVAL_OF[self.metric]}" if self.source == "eval" else \
            f"train {self.metric} (last chunk)"
        return (f"{what}, IQM over seeds, {'higher' if self.mode == 'max' else 'lower'} is "
                f"better (run.best_metric={self.run.rc.run.best_metric or 'unset'})")


def score_of(entry: dict[str, Any], source: str, metric: str) -> dict[str, Any] | None:
    """The eval (``source="eval"``) or last-chunk training aggregate of ``metric``."""
    return entry["eval"][EVAL_OF[metric]] if source == "eval" else entry["train"].get(metric)


def _rank(entries: list[dict[str, Any]], source: str, metric: str, mode: str
          ) -> list[dict[str, Any]]:
    """Sort by the IQM of the ranking metric; equal values share a rank; rank 1 is best."""
    sign = -1.0 if mode == "max" else 1.0
    values = [score_of(e, source, metric) for e in entries]
    keyed = sorted((math.inf if a is None or a["iqm"] is None else sign * a["iqm"], i)
                   for i, a in enumerate(values))
    out, prev, rank = [], None, 0
    for pos, (v, i) in enumerate(keyed):
        if v != prev:
            rank, prev = pos + 1, v
        out.append({**entries[i], "rank": rank,
                    "best": rank == 1 and math.isfinite(v) and len(entries) > 1})
    return out


def build(run_dir: str | Path) -> Report:
    """Read a run directory (and its ``baseline/``, if any) into a ranked :class:`Report`."""
    run = load(run_dir)
    metric, mode = _rank_metric(run.rc)
    source = "eval" if run.eval is not None and metric in EVAL_OF else "train"
    entries = _rank(setting_entries(run), source, metric, mode)
    refs = []
    base = run.run_dir / "baseline"
    if (base / "config.yaml").exists():
        b = load(base)
        if b.rows or b.eval is not None:
            refs.append((f"baseline: reward {b.rc.train.reward}, same budget",
                         setting_entries(b)[0]))
    window = _last_window(run)
    return Report(run, entries, refs, metric, mode, source, window,
                  0 if window is None else window[1] + 1, run.rc.train.num_iterations)


# --------------------------------------------------------------------------------------
# Rendering


def _cell(agg: dict[str, Any] | None, fmt: str = "{:.3f}") -> str:
    if agg is None:
        return "-"
    if agg.get("nonfinite"):
        return f"non-finite in {agg['nonfinite']}/{agg['n']} seeds"

    def f(x: float) -> str:  # no "-0.000" for a value that rounds to zero
        text = fmt.format(x)
        return text.lstrip("-") if float(text.replace(",", "")) == 0 else text

    if agg["n"] == 1:
        return f(agg["iqm"])
    return (f"{f(agg['iqm'])} [{f(agg['ci_low'])}, {f(agg['ci_high'])}] "
            f"({f(agg['min'])}, {f(agg['max'])})")


def _first_success_cell(fs: dict[str, Any] | None) -> str:
    if fs is None:
        return "-"
    if fs["env_steps"] is None:
        return f"never (0/{fs['n']})"
    return f"{_cell(fs['env_steps'], '{:,.0f}')}; reached by {fs['reached']}/{fs['n']}"


def _columns(rep: Report) -> list[str]:
    return rep.run.swept or ["reward"]


def _setting_cells(rep: Report, entry: dict[str, Any]) -> list[str]:
    if not rep.run.swept:
        return [rep.run.rc.train.reward]
    return [f"{entry['setting'][k]:.4g}" for k in rep.run.swept]


def _train_metrics(rep: Report) -> tuple[str, ...]:
    """The training metrics the table shows: return, success and the ranking metric."""
    return TRAIN_METRICS + (() if rep.metric in TRAIN_METRICS else (rep.metric,))


def _value_cells(rep: Report, entry: dict[str, Any]) -> list[str]:
    ev = entry["eval"] or {}
    return [str(len(entry["members"])), _cell(ev.get("return")), _cell(ev.get("success")),
            *(_cell(entry["train"].get(k)) for k in _train_metrics(rep)),
            _first_success_cell(entry["first_success"])]


def _caption(rep: Report) -> list[str]:
    run, rc = rep.run, rep.run.rc
    n_set, seeds = len(rep.entries), len(rc.run.seeds)
    lines = [f"{run.run_dir}: {rc.train.env_id}, reward {rc.train.reward}; {n_set} "
             f"setting(s) x {seeds} seed(s); {rep.iterations} of {rep.total_iterations} "
             f"iterations ({rep.iterations * rc.train.steps_per_iteration:,} env steps per "
             "member)"]
    if run.eval is not None:
        lines.append(f"eval: {run.eval['episodes']} episodes per member, "
                     f"{'deterministic' if run.eval.get('deterministic', True) else 'sampled'}"
                     " policy")
    else:
        lines.append(f"eval: missing (no eval.json; the run stopped at iteration "
                     f"{rep.iterations} of {rep.total_iterations}: mimex-jax train --resume "
                     f"{run.run_dir})")
    cells = "cells: IQM over seeds [95% bootstrap CI] (min, max)"
    if rep.window is not None:
        a, b = rep.window
        its = f"iterations {a}-{b}" if b > a else f"iteration {a}"
        cells += f"; train = per-seed mean over {its} (the last chunk)"
    lines.append(cells)
    lines.append(f"ranked by {rep.rank_by}")
    return lines


def _best_names(rep: Report) -> str | None:
    """The best setting(s) as ``name=value`` (``;`` between tied settings)."""
    best = [e for e in rep.entries if e["best"]]
    if not best:
        return None
    names = "; ".join(", ".join(f"{k}={v:.4g}" for k, v in e["setting"].items()) for e in best)
    return names + (f" (tied: {len(best)} settings)" if len(best) > 1 else "")


def _verdict(rep: Report) -> str | None:
    """Whether the best setting's CI separates it from the others (the seed-noise check)."""
    names = _best_names(rep)
    if names is None:
        return None
    best = [e for e in rep.entries if e["best"]]
    b = rep.score(best[0])
    others = [rep.score(e) for e in rep.entries if not e["best"]]
    if b is None or b["iqm"] is None or not others:
        return f"best: {names}"
    if min(len(e["members"]) for e in rep.entries) < 2:
        return (f"best: {names}; one seed per setting, so no interval: the ranking may be "
                "seed noise (more seeds: --seeds N)")
    overlap = sum(1 for o in others if o is not None and o["iqm"] is not None
                  and o["ci_low"] <= b["ci_high"] and b["ci_low"] <= o["ci_high"])
    return (f"best: {names}; {overlap} of {len(others)} other setting(s) have a 95% CI "
            f"overlapping the best's ({len(rep.run.rc.run.seeds)} seed(s) each)"
            + (": not separated from seed noise" if overlap else ""))


def table(rep: Report) -> str:
    """The markdown table: one row per setting, best first, then the reference rows."""
    cols = _columns(rep)
    names = {"episode_return": "return", "episode_success": "success"}
    head = ["rank", *cols, "seeds", "eval return", "eval success",
            *(f"train {names.get(k, k)} (last chunk)" for k in _train_metrics(rep)),
            "env steps to first success"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in rep.entries:
        rank = f"{e['rank']} best" if e["best"] else str(e["rank"])
        lines.append("| " + " | ".join([rank, *_setting_cells(rep, e), *_value_cells(rep, e)])
                     + " |")
    for name, e in rep.references:
        setting = [name] + ["-"] * (len(cols) - 1)
        lines.append("| " + " | ".join(["ref", *setting, *_value_cells(rep, e)]) + " |")
    return "\n".join(lines)


def render(rep: Report) -> str:
    """Caption, table and the best-vs-rest line: what the terminal and the .md show."""
    verdict = _verdict(rep)
    return "\n".join([*_caption(rep), table(rep), *([verdict] if verdict else [])])


def _csv_rows(rep: Report) -> tuple[list[str], list[dict[str, Any]]]:
    cols = rep.run.swept
    fields = ["rank", "best", "row", *cols, "seeds"]
    groups = [("eval_return", lambda e: (e["eval"] or {}).get("return")),
              ("eval_success", lambda e: (e["eval"] or {}).get("success")),
              *((f"train_{k}", lambda e, k=k: e["train"].get(k)) for k in _train_metrics(rep)),
              ("first_success_env_steps",
               lambda e: (e["first_success"] or {}).get("env_steps"))]
    fields += [f"{g}_{s}" for g, _ in groups for s in STATS] + ["first_success_reached"]
    rows = []
    for kind, e in [("setting", e) for e in rep.entries] + [(n, e) for n, e in rep.references]:
        row: dict[str, Any] = {
            "rank": e.get("rank", ""), "best": e.get("best", ""), "row": kind,
            **{k: e["setting"].get(k, "") for k in cols},
            "seeds": " ".join(str(s) for s in e["seeds"])}
        for g, get in groups:
            agg = get(e) or {}
            row.update({f"{g}_{s}": "" if agg.get(s) is None else agg[s] for s in STATS})
        fs = e["first_success"]
        row["first_success_reached"] = "" if fs is None else f"{fs['reached']}/{fs['n']}"
        rows.append(row)
    return fields, rows


def summary_entries(run_dir: str | Path) -> dict[str, Any]:
    """``{"ranked_by", "settings"}`` for ``summary.json``: the ranked per-setting entries."""
    rep = build(run_dir)
    return {"ranked_by": rep.rank_by, "settings": rep.entries}


def _ranges(rc: RunConfig) -> dict[str, tuple[float, float]]:
    """A random search's ``(low, high)`` per hyperparameter; empty for a grid."""
    if rc.sweep is None or "random" not in rc.sweep:
        return {}
    return {k: (spec[0], spec[1]) for k, spec in rc.sweep["random"]["ranges"].items()}


def log_axes(rc: RunConfig, values: dict[str, list[float]]) -> set[str]:
    """Hyperparameters drawn log-uniformly; for a grid, positive values spanning >= 10x."""
    if rc.sweep is not None and "random" in rc.sweep:
        return {k for k, spec in rc.sweep["random"]["ranges"].items() if spec[2] == "log"}
    return {k for k, v in values.items() if min(v) > 0 and max(v) >= 10 * min(v)}


def write(run_dir: str | Path, plots: bool = True) -> tuple[str, list[Path]]:
    """Build the report of ``run_dir`` and write ``sweep_summary.{md,csv}`` (and, with
    ``plots``, ``sweep_summary.png`` for a sweep and the learning curves ``curves.png``).

    Returns the rendered text (as printed) and the files written.
    """
    from mimex_jax.plot import plot_runs, plot_sweep

    rep = build(run_dir)
    run_dir = rep.run.run_dir
    if not rep.run.rows and rep.run.eval is None:
        raise ValueError(f"{run_dir}: nothing to report yet: no metrics logged "
                         "(metrics.jsonl / metrics.csv) and no eval.json")
    text = render(rep)
    (run_dir / SUMMARY_MD).write_text(text + "\n", encoding="utf-8")
    fields, rows = _csv_rows(rep)
    with open(run_dir / SUMMARY_CSV, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    written = [run_dir / SUMMARY_MD, run_dir / SUMMARY_CSV]
    if plots:
        if rep.run.swept:
            values = {k: [e["setting"][k] for e in rep.entries] for k in rep.run.swept}
            ref = [rep.score(e) for _, e in rep.references]
            written.append(plot_sweep(
                [{"setting": e["setting"], "agg": rep.score(e), "best": e["best"]}
                 for e in rep.entries], rep.run.swept, run_dir / SUMMARY_PNG,
                ylabel=rep.rank_by.split(",")[0],
                log_axes=log_axes(rep.run.rc, values), limits=_ranges(rep.run.rc),
                reference=ref[0]["iqm"] if ref and ref[0] is not None else None))
        if rep.run.rows:
            dirs = [run_dir] + ([run_dir / "baseline"] if rep.references else [])
            names = _best_names(rep)
            title = None if names is None else \
                f"best by {rep.rank_by.split(',')[0]}: {names}"
            written.append(plot_runs(dirs, run_dir / "curves.png", title=title))
    return text, written
