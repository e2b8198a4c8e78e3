"""Aggregate scores over seeds: interquartile mean (IQM) with a percentile bootstrap CI.

The IQM is the mean of the middle half of the sorted scores: ``floor(n / 4)`` values are
cut from each end (``scipy.stats.trim_mean(x, 0.25)``; for 5 seeds, the mean of the middle
three). It is the aggregate that Agarwal et al. ("Deep RL at the Edge of the Statistical
Precipice", 2021) recommend for few-seed RL results: less noisy than the median and less
outlier-driven than the mean. The CI resamples seeds with replacement (``reps`` times, a
fixed generator seed, so reports are reproducible) and takes the 2.5 / 97.5 percentiles of
the resampled IQMs. With 5 seeds such an interval is wide and coarse; it says how little
5 seeds can tell apart, which is the point of reporting it.

:func:`prob_improvement` is rliable's "probability of improvement" (Agarwal et al. 2021,
sec. 4.3): P(X > Y) = the chance that a run of method X scores higher than a run of method Y on
the same task, counting ties as one half (the Mann-Whitney U statistic divided by
``n_x * n_y``), averaged over tasks. Its CI (:func:`prob_improvement_ci`) is a stratified
percentile bootstrap: X's and Y's runs are resampled with replacement separately, within each
task. 0.5 means no difference; an interval that excludes 0.5 says which method is ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def iqm(values: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean along ``axis`` (``floor(n/4)`` values trimmed from each end)."""
    x = np.sort(np.asarray(values, np.float64), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty set of scores")
    cut = n // 4
    kept = np.take(x, np.arange(cut, n - cut), axis=axis)
    out = kept.mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def bootstrap_ci(values: Sequence[float] | np.ndarray,
                 statistic: Callable[..., np.ndarray | float] = iqm, reps: int = 10_000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over resampled seeds.

    ``statistic`` must accept ``axis=-1`` and reduce the last axis.
    """
    x = np.asarray(values, np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"bootstrap_ci wants a non-empty 1-D array of per-seed scores, "
                         f"got shape {x.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} is invalid; allowed: in (0, 1)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"per-seed scores must be finite, got {x.tolist()}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(reps, x.size))
    stats = np.asarray(statistic(x[idx], axis=-1))
    lo, hi = np.percentile(stats, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def summarize(values: Sequence[float] | np.ndarray, reps: int = 10_000, seed: int = 0
              ) -> dict[str, float]:
    """``{"iqm", "ci_low", "ci_high", "mean", "n"}`` of per-seed scores."""
    x = np.asarray(values, np.float64)
    lo, hi = bootstrap_ci(x, reps=reps, seed=seed)
    return {"iqm": iqm(x), "ci_low": lo, "ci_high": hi, "mean": float(x.mean()),
            "n": int(x.size)}


def fmt(summary: dict[str, float], digits: int = 2) -> str:
    """``"IQM [low, high]"`` for tables."""
    f = f"{{:.{digits}f}}"
    return (f"{f.format(summary['iqm'])} [{f.format(summary['ci_low'])}, "
            f"{f.format(summary['ci_high'])}]")


def _runs_by_task(values: Any, name: str) -> np.ndarray:
    """``[runs]`` or ``[runs, tasks]`` finite scores as a float64 ``[runs, tasks]`` array."""
    x = np.asarray(values, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be per-run scores of shape [runs] or [runs, tasks] "
                         f"with at least one run, got shape {np.shape(values)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite, got {x.tolist()}")
    return x


def _poi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 per task, averaged over tasks; ``x`` ``[..., n, T]``,
    ``y`` ``[..., m, T]`` -> ``[...]``."""
    a, b = x[..., :, None, :], y[..., None, :, :]
    per_task = np.mean((a > b) + 0.5 * (a == b), axis=(-3, -2))
    return per_task.mean(axis=-1)


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _runs_by_task(x, "x"), _runs_by_task(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must cover the same tasks, got {x.shape[1]} and "
                         f"{y.shape[1]} task columns")
    return x, y


def prob_improvement(x: Any, y: Any) -> float:
    """P(X > Y): the probability that a run of X beats a run of Y (ties count 1/2).

    ``x``, ``y``: per-run scores, ``[runs]`` for one task or ``[runs, tasks]`` (the run
    counts may differ between X and Y, the tasks may not); the per-task probabilities are
    averaged over tasks, as in rliable.
    """
    x, y = _pair(x, y)
    return float(_poi(x, y))


def prob_improvement_ci(x: Any, y: Any, reps: int = 10_000, confidence: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Stratified percentile-bootstrap interval of :func:`prob_improvement`.

    Each replicate resamples X's runs and Y's runs with replacement, separately and within
    each task; ``reps`` replicates from a fixed generator ``seed`` (reproducible reports).
    """
    x, y = _pair(x, y)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} is invalid; allowed: in (0, 1)")
    rng = np.random.default_rng(seed)
    tasks = np.arange(x.shape[1])
    ix = rng.integers(0, x.shape[0], size=(reps, x.shape[0], x.shape[1]))
    iy = rng.integers(0, y.shape[0], size=(reps, y.shape[0], y.shape[1]))
    p = _poi(x[ix, tasks], y[iy, tasks])
    lo, hi = np.percentile(p, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def improvement(x: Any, y: Any, reps: int = 10_000, seed: int = 0) -> dict[str, float]:
    """``{"p", "ci_low", "ci_high", "n_x", "n_y"}``: P(X > Y) with its 95% interval."""
    lo, hi = prob_improvement_ci(x, y, reps=reps, seed=seed)
    return {"p": prob_improvement(x, y), "ci_low": lo, "ci_high": hi,
            "n_x": int(np.shape(x)[0]), "n_y": int(np.shape(y)[0])}
