"""Plots of an exploration result: learning curves per task, ablation panels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mimex_jax.bench import stats
from mimex_jax.bench.exploration.methods import ABLATIONS, effective_setting
from mimex_jax.bench.exploration.tasks import Task


def plot_curves(task: Task, entries: Sequence[dict[str, Any]], path: Path) -> bool:
    """Learning curves per task instance: mean over seeds, band = min..max of seeds.

    The task's ``curve`` metric; runs without success data plot the return.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = list(dict.fromkeys(e["instance"] for e in entries))
    curve = task.curve if all(s["successes_per_iteration"] is not None
                              for e in entries for s in e["seeds"]) else "return"
    cols = min(3, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(labels):]:
        ax.axis("off")
    for ax, label in zip(axes.flat, labels, strict=False):
        for j, e in enumerate(x for x in entries if x["instance"] == label):
            steps = (np.arange(e["budget"]["iterations"]) + 1) * (
                e["budget"]["num_envs"] * e["budget"]["rollout_len"])
            if curve == "return":
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
        ax.set_ylabel("episode return" if curve == "return"
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


def plot_ablations(entries: Sequence[dict[str, Any]], path: Path) -> bool:
    """One panel per (task, factor): env steps to the first success (IQM, 95% CI error
    bars; never = the budget, the dashed line) over the factor's values. Runs without
    success data are left out."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    entries = [e for e in entries
               if all(s["steps_to_first_success"] is not None for s in e["seeds"])]
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
                pts.append({**base, "value": effective_setting(
                    base["config"]["seq_len"], base["config"]["mimex"], f)})
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
