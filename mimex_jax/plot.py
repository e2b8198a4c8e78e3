"""Learning curves from run directories (``mimex-jax plot``).

Reads ``metrics.jsonl`` of each run, groups sweep members that differ only in their
seed, and draws one panel per metric against environment steps: the mean over seeds as a
line and the min-max spread as a band. Several runs (or a sweep's settings) overlay.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mimex_jax.logging import read_metrics

DEFAULT_METRICS = ("episode_return", "episode_success", "reward_int")


def _member_groups(run_dir: Path) -> dict[int, str]:
    """Member index -> its swept settings as ``name=value`` (seed left out).

    Read from ``members.json``, not from the metric rows: a swept hyperparameter that is
    also a logged metric (``lr`` under a schedule) is a different column there.
    """
    path = run_dir / "members.json"
    if not path.exists():
        return {}
    labels = json.loads(path.read_text())
    keys = sorted({k for lab in labels for k in lab if k not in ("member", "seed")})
    return {int(lab.get("member", i)): ", ".join(f"{k}={lab[k]:g}" for k in keys if k in lab)
            for i, lab in enumerate(labels)}


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
    groups = _member_groups(run_dir)
    series: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    steps: dict[int, int] = {}
    for r in rows:
        group = groups.get(int(r.get("member", 0)), "")
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


def _save(fig: Any, out: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
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
    return _save(fig, out)


def plot_sweep(settings: Sequence[dict], hparams: Sequence[str], out: str | Path,
               ylabel: str, log_axes: Collection[str] = (),
               reference: float | None = None,
               limits: Mapping[str, tuple[float, float]] | None = None) -> Path:
    """One panel per swept hyperparameter: the score of every setting against its value.

    ``settings``: dicts with ``setting`` (hyperparameter -> value), ``agg`` (an aggregate
    of :func:`mimex_jax.report.aggregate`: ``values`` per seed, ``iqm``, ``ci_low``,
    ``ci_high``; or None) and ``best``. Seeds are small dots, the IQM a marker with its 95%
    CI as an error bar, the best setting(s) a star. Axes named in ``log_axes`` (a
    log-uniform random search) are logarithmic; ``limits`` (a random search's ranges) set
    the x range. ``reference`` (a baseline's IQM) is a dashed line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    if not hparams:
        raise ValueError("plot_sweep needs at least one swept hyperparameter")
    fig, axes = plt.subplots(1, len(hparams), figsize=(4.5 * len(hparams), 3.6),
                             squeeze=False)
    for ax, name in zip(axes[0], hparams, strict=True):
        for s in settings:
            agg, x = s["agg"], float(s["setting"][name])
            if agg is None or agg.get("iqm") is None:
                continue
            ax.scatter([x] * len(agg["values"]), agg["values"], s=10, color="0.6", zorder=1)
            err = [[agg["iqm"] - agg["ci_low"]], [agg["ci_high"] - agg["iqm"]]]
            ax.errorbar([x], [agg["iqm"]], yerr=err, fmt="*" if s["best"] else "o",
                        color="C3" if s["best"] else "C0", markersize=12 if s["best"] else 6,
                        capsize=3, zorder=2)
        if reference is not None:
            ax.axhline(reference, color="0.3", linestyle="--", linewidth=1,
                       label="baseline (IQM)")
            ax.legend(fontsize=8)
        if name in log_axes:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # no overlapping 2x10^-4 labels
        if limits and name in limits:
            lo, hi = limits[name]
            ax.set_xlim(*((lo / 1.2, hi * 1.2) if name in log_axes else
                          (lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))))
        ax.set_xlabel(name + (" (log scale)" if name in log_axes else ""))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle("per setting: IQM over seeds, 95% bootstrap CI\n(grey dots: seeds; star: "
                 "best)", fontsize=9)
    return _save(fig, out)
