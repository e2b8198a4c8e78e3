"""Aggregate scores over seeds: interquartile mean (IQM) with a percentile bootstrap CI.

The IQM is the mean of the middle half of the sorted scores: ``floor(n / 4)`` values are
cut from each end (``scipy.stats.trim_mean(x, 0.25)``; for 5 seeds, the mean of the middle
three). It is the aggregate that Agarwal et al. ("Deep RL at the Edge of the Statistical
Precipice", 2021) recommend for few-seed RL results: less noisy than the median and less
outlier-driven than the mean. The CI resamples seeds with replacement (``reps`` times, a
fixed generator seed, so reports are reproducible) and takes the 2.5 / 97.5 percentiles of
the resampled IQMs. With 5 seeds such an interval is wide and coarse; it says how little
5 seeds can tell apart, which is the point of reporting it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
