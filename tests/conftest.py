"""Shared fixtures: reference cases from the original PyTorch code and small configs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest

REFERENCE_DIR = Path(
    os.environ.get("MIMEX_REFERENCE_DIR", Path(__file__).resolve().parent / "reference")
)


def load_case(name: str) -> dict:
    """Load ``<name>.npz``: ``sd`` (state_dict), ``cfg`` (config json) and the arrays."""
    path = REFERENCE_DIR / f"{name}.npz"
    if not path.exists():
        pytest.fail(f"reference case {path} is missing")
    data = np.load(path)
    case = {k: data[k] for k in data.files if not k.startswith("sd/") and k != "config_json"}
    case["sd"] = {k[3:]: data[k] for k in data.files if k.startswith("sd/")}
    case["cfg"] = json.loads(str(data["config_json"]))
    return case


@pytest.fixture(scope="session")
def key() -> jax.Array:
    return jax.random.key(0)
