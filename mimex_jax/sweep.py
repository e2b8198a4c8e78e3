"""Sweeps: many seeds and hyperparameter settings as ONE vmapped program.

    hps, labels = grid(base=HParams(), k_expl=[0.01, 0.05], mask_ratio=[0.5, 0.7])
    states, metrics = run(cfg, hps, labels, seeds=[0, 1, 2])   # 12 members, one compile

``metrics[name]`` has shape ``[members, iterations]``; ``labels[i]`` says which
settings and seed produced member ``i``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mimex_jax import loop
from mimex_jax.trainer import HParams, TrainConfig, size_for_sweep


def grid(base: HParams | None = None, **axes: Sequence[float]
         ) -> tuple[HParams, list[dict[str, float]]]:
    """Cartesian product of the given hyperparameter values over ``base``.

    Returns ``(hparams with a leading axis, labels)``; unknown names raise ValueError.
    """
    base = base or HParams()
    for name in axes:
        if name not in HParams._fields:
            raise ValueError(f"sweep axis {name!r} is unknown; allowed: {list(HParams._fields)}")
    names = list(axes)
    combos = list(itertools.product(*(axes[k] for k in names))) if names else [()]
    labels = [dict(zip(names, map(float, c), strict=True)) for c in combos]
    return stack([base._replace(**lab) for lab in labels]), labels


def random_search(key: jax.Array, n: int, base: HParams | None = None,
                  **ranges: tuple[float, float, str]) -> tuple[HParams, list[dict[str, float]]]:
    """``n`` random settings; each range is ``(low, high, "uniform" | "log")``."""
    base = base or HParams()
    cols = {}
    for i, (name, (low, high, scale)) in enumerate(ranges.items()):
        if name not in HParams._fields:
            raise ValueError(f"sweep axis {name!r} is unknown; allowed: {list(HParams._fields)}")
        if scale not in ("uniform", "log") or not low < high or (scale == "log" and low <= 0):
            raise ValueError(f"range for {name!r} = {(low, high, scale)} is invalid; allowed: "
                             "(low < high, 'uniform' | 'log' with low > 0)")
        u = np.asarray(jax.random.uniform(jax.random.fold_in(key, i), (n,)))
        cols[name] = np.exp(np.log(low) + u * (np.log(high) - np.log(low))) if scale == "log" \
            else low + u * (high - low)
    labels = [{k: float(v[i]) for k, v in cols.items()} for i in range(n)]
    return stack([base._replace(**lab) for lab in labels]), labels


def cover_mask_ratios(cfg: TrainConfig, hparams: HParams) -> TrainConfig:
    """``cfg`` sized so every member's ``hparams.mask_ratio`` fits one compiled program
    (MIMEx: the encoder's token slots; :func:`mimex_jax.trainer.size_for_sweep`)."""
    return size_for_sweep(cfg, np.asarray(hparams.mask_ratio))


def stack(settings: Sequence[HParams]) -> HParams:
    for hp in settings:
        hp.validate()
    return jax.tree.map(lambda *xs: jnp.asarray(xs, jnp.float32), *settings)


def run(cfg: TrainConfig, hparams: HParams, labels: list[dict[str, float]],
        seeds: Sequence[int]) -> tuple[Any, dict[str, jax.Array], list[dict[str, float]]]:
    """Train every (setting, seed) pair in one vmapped, jitted program.

    For MIMEx the static config's ``mask_ratio`` (which fixes how many token slots the
    encoder processes) is lowered to the sweep's smallest ratio, so every member's
    masks fit.
    """
    cfg = cover_mask_ratios(cfg, hparams)
    n_set = len(labels)
    hp_all = jax.tree.map(lambda x: jnp.repeat(x, len(seeds), axis=0), hparams)
    keys = jnp.stack([jax.random.key(s) for _ in range(n_set) for s in seeds])
    member_labels = [{**lab, "seed": s} for lab in labels for s in seeds]
    runner = loop.make_runner(cfg, sweep=True)
    states, metrics = loop.run(runner, hp_all, keys, chunk=cfg.num_iterations)
    return states, {k: jnp.asarray(v) for k, v in metrics.items()}, member_labels
