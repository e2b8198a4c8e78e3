"""Helpers for the tests that train ``tests/data/tiny.yaml`` through the CLI.

(Not a test module; ``conftest.py`` trains the shared uninterrupted run, ``tiny_run``.)
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from mimex_jax import loop
from mimex_jax.checkpoint import Checkpointer
from mimex_jax.config import load_config
from mimex_jax.experiment import members_of

TINY = str(Path(__file__).resolve().parent / "data" / "tiny.yaml")


def final_state(run_dir: Path):
    """``(state, meta)`` of the newest checkpoint of a CLI run directory."""
    rc = load_config(run_dir / "config.yaml")
    m = members_of(rc)
    runner = loop.make_runner(m.cfg, sweep=m.sweep)
    template = jax.eval_shape(runner.init, m.keys, m.hparams)
    with Checkpointer(run_dir / "checkpoints", read_only=True) as ckpt:
        state, _, meta = ckpt.restore(template)
    return state, meta


def assert_same_state(a, b) -> None:
    """Every leaf bit-identical (PRNG keys compared by their data)."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
