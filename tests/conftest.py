"""Shared fixtures: reference cases from the original PyTorch code and small configs."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest

# Unit tests check what a program computes, not how fast it runs, and most of this suite's
# CPU time is XLA compiling small programs. LLVM's optimisation level changes the machine
# code generated, not the HLO semantics under test, and level 0 compiles the tiny trainer
# about 1.7x faster than the default -O2 (tests/test_trainer.py cold: 150 -> 86 s of CPU).
# Chunked and one-call training stay bit-identical under it (tests/test_loop.py). XLA's
# --xla_cpu_use_fusion_emitters=false would make the cold suite 1.6x faster still (548 ->
# 335 s on 2 cores), but then those two programs differ in the last bits (Adam moments of
# near-zero gradients: up to 2x relative), so the exactness tests could not stay exact.
# Set MIMEX_TEST_XLA_OPT to test at another level (benchmarks never run under this file).
TEST_XLA_FLAGS = f"--xla_backend_optimization_level={os.environ.get('MIMEX_TEST_XLA_OPT', '0')}"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
# JAX compiles dominate this suite's time on CPU, and many tests build the same small
# programs (the CLI tests compile the same tiny run in several processes). The
# persistent compilation cache lets every later build load the executable instead.
CACHE_DIR = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "mimex-jax-test-xla-cache"))
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted ``mimex-jax train`` of ``tests/data/tiny.yaml`` (read-only: tests
    that change a run copy it)."""
    from _runs import TINY

    from mimex_jax.cli import main

    out = tmp_path_factory.mktemp("runs") / "straight"
    assert main(["train", "-c", TINY, "--out", str(out), "--no-progress"]) == 0
    return out
