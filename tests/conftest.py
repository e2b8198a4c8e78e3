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
# CPU time is XLA compiling small programs. Three XLA CPU options change how machine code is
# generated, not the HLO semantics under test: LLVM optimisation level 0, the legacy loop
# emitters instead of the MLIR fusion emitters, and one LLVM module per program instead of
# pieces compiled on a thread pool (the suite's two xdist workers already use both cores).
# CPU seconds to compile the tiny MIMEx trainer (`benchmarks/compile_cost.py`, jax 0.10.2,
# quiet 2-core VM, 2026-12-02): -O0 alone 13.4, with the legacy emitters 5.2, with one
# module too 5.0 (a larger gain earlier under load: 4.2-5.7 -> 3.6-3.7). The suite's CPU
# time about halves (1024 -> 508 s, cold). Under them, programs of different
# shapes may round differently in the last bits (chunked vs one-call training: relative
# 1e-6), so tests/test_loop.py compares those to float tolerance and keeps bit-exactness for
# resume, which reruns the same programs. Set MIMEX_TEST_XLA_FLAGS to test under other
# options (benchmarks never run under this file); a flag is only added when XLA_FLAGS does
# not already choose it.
TEST_XLA_FLAGS = os.environ.get(
    "MIMEX_TEST_XLA_FLAGS",
    "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false "
    "--xla_cpu_parallel_codegen_split_count=1")
_chosen = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join(
    [_chosen] + [f for f in TEST_XLA_FLAGS.split() if f.split("=")[0] not in _chosen]).strip()
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


# The files that take longest cold (seconds of CPU, measured on the 2-core VM with
# `pytest -n 0 --durations=0`), run first: xdist hands files to its two workers in
# collection order, so a long file picked up last would leave the other worker idle
# at the end. Files not listed keep their order after these.
HEAVY_FIRST = ("test_distributed.py", "test_drqv2.py", "test_mimex.py", "test_trainer.py",
               "test_loop.py", "test_cli.py", "test_envs.py", "test_reference.py",
               "test_transformer.py", "test_vmap_safety.py", "test_readme_examples.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
