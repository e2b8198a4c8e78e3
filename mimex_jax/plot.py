"""Learning curves from run directories (``mimex-jax plot``).

Reads ``metrics.jsonl`` of each run, groups sweep members that differ only in their
seed, and draws one panel per metric against environment steps: the mean over seeds as a
line and the min-max spread as a band. Several runs (or a sweep's settings) overlay.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mimex_jax.logging import read_metrics

DEFAULT_METRICS = ("episode_return", "episode_success", "reward_int")


def _label_keys(run_dir: Path) -> list[str]:
    path = run_dir / "members.json"
    if not path.exists():
        return []
    labels = json.loads(path.read_text())
    return sorted({k for lab in labels for k in lab if k not in ("member", "seed")})


def curves(run_dir: str | Path, metric: str, smooth: int = 1
           ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]:
    """``{group label: (env_steps, mean, low, high, seeds)}`` of one metric in one run.

    A group is the set of members with the same swept settings (seeds pooled). ``smooth``
    is a trailing moving-average window in iterations, applied per seed.
    """
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    if not rows:
        raise ValueError(f"{run_dir}: metrics.jsonl has no rows yet")
    if metric not in rows[0]:
        known = sorted(k for k in rows[0] if k not in ("iteration", "env_steps", "member"))
        raise ValueError(f"metric {metric!r} is not in {run_dir}/metrics.jsonl; "
                         f"available: {known}")
    keys = _label_keys(run_dir)
    series: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    steps: dict[int, int] = {}
    for r in rows:
        group = ", ".join(f"{k}={r[k]:g}" for k in keys if k in r)
        series[group][int(r.get("member", 0))][r["iteration"]] = r[metric]
        steps[r["iteration"]] = r["env_steps"]
    out = {}
    for group, members in series.items():
        its = sorted(set.intersection(*(set(v) for v in members.values())))
        y = np.array([[members[m][i] for i in its] for m in sorted(members)], np.float64)
        if smooth > 1:
            kernel = np.ones(smooth) / smooth
            y = np.stack([np.convolve(np.pad(row, (smooth - 1, 0), mode="edge"), kernel,
                                      mode="valid") for row in y])
        x = np.array([steps[i] for i in its], np.float64)
        out[group] = (x, y.mean(0), y.min(0), y.max(0), y.shape[0])
    return out


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path,
              metrics: Sequence[str] = DEFAULT_METRICS, smooth: int = 1,
              title: str | None = None) -> Path:
    """Draw the learning curves of ``run_dirs`` into the PNG ``out``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not run_dirs:
        raise ValueError("plot needs at least one run directory")
    if smooth < 1:
        raise ValueError(f"smooth={smooth} is invalid; allowed: an integer >= 1")
    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        if not (d / "metrics.jsonl").exists():
            raise ValueError(f"{d} is not a run directory (no metrics.jsonl)")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for d in dirs:
            for group, (x, mean, low, high, n) in curves(d, metric, smooth).items():
                name = d.name + (f" [{group}]" if group else "") + (f" (n={n})" if n > 1
                                                                     else "")
                line, = ax.plot(x, mean, label=name, linewidth=1.5)
                if n > 1:
                    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
        ax.set_title(metric)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
