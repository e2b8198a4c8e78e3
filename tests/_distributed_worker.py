"""Checks for tests/test_distributed.py, run in a subprocess that sees 4 CPU devices.

``python tests/_distributed_worker.py OUT.json [CHECK ...]`` runs the named checks (default:
:data:`DEFAULT_CHECKS`) and writes
``{name: {"ok": bool, "error": str, ...measurements}}``; the rest of the test suite keeps
its single device because only this process sets ``--xla_force_host_platform_device_count``.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4").strip()

import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mimex_jax import distributed, loop  # noqa: E402
from mimex_jax.checkpoint import Checkpointer  # noqa: E402
from mimex_jax.sweep import grid  # noqa: E402
from mimex_jax.trainer import HParams, TrainConfig  # noqa: E402

# 4 x 64 envs; MIMEx with a one-block transformer so both gradients (agent and reward
# model) are data-parallel; 2 minibatches so the minibatch split is exercised.
BIG = TrainConfig(
    env_id="gymnax:MountainCar-v0", num_envs=256, rollout_len=2, epochs=1, minibatches=2,
    total_steps=256 * 2 * 2, episode_length=3, reward="mimex",
    actor_hidden=(16,), critic_hidden=(16,),
    mimex=(("embed_dim", 16), ("depth", 1), ("num_heads", 2), ("decoder_embed_dim", 8),
           ("decoder_depth", 1)),
)
# The sweep check uses ICM (MLPs) to keep compile time down; sharding does not depend on the
# reward.
SMALL = dataclasses.replace(BIG, num_envs=8, total_steps=8 * 2 * 2, reward="icm", mimex=())


def _flat(tree: Any) -> list[tuple[str, np.ndarray]]:
    out = []
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        out.append((jax.tree_util.keystr(path), np.asarray(x)))
    return out


def _max_diff(a: Any, b: Any) -> tuple[float, str]:
    worst, where = 0.0, ""
    for (path, x), (_, y) in zip(_flat(a), _flat(b), strict=True):
        if x.size:
            d = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))
            if d > worst:
                worst, where = d, path
    return worst, where


def _lists(metrics: dict) -> dict[str, list]:
    return {k: np.asarray(v, np.float64).tolist() for k, v in metrics.items()}


def _run_compiled(runner: loop.Runner, hp: HParams, key: jax.Array, iterations: int
                  ) -> tuple[Any, dict, float]:
    """``loop.run`` by hand through the AOT-compiled chunk, to read its cost analysis too."""
    if runner.mesh is not None:
        where = distributed.member_sharding(runner.mesh, runner.sweep)
        hp, key = distributed.put(hp, where), distributed.put(key, where)
    state = runner.init(key, hp)
    compiled = runner.chunk(1).lower(state, hp).compile()
    history = []
    for _ in range(iterations):
        state, metrics = compiled(state, hp)
        history.append(jax.device_get(metrics))
    metrics = {k: np.stack([h[k] for h in history]) for k in history[0]}
    return state, metrics, float(compiled.cost_analysis()["flops"])


def check_data_parallel() -> dict:
    """4 devices x 64 envs against one device x 256 envs, same key: equal to float32 noise."""
    hp, key = HParams(), jax.random.key(7)
    ref_state, ref_metrics, one = _run_compiled(loop.make_runner(BIG), hp, key, 2)
    mesh = distributed.make_mesh(distributed.MeshPlan(data=4))
    state, metrics, flops = _run_compiled(loop.make_runner(BIG, mesh=mesh), hp, key, 2)
    state_diff, where = _max_diff(ref_state, state)
    return {"ref_metrics": _lists(ref_metrics), "metrics": _lists(metrics),
            "state_diff": state_diff,
            "state_diff_leaf": where,
            "env_spec": str(jax.tree.leaves(state.env_state)[0].sharding.spec),
            "window_spec": str(state.window.sharding.spec),
            "params_spec": str(jax.tree.leaves(state.params)[0].sharding.spec),
            "flops_per_device": flops, "flops_one_device": one,
            "keys_equal": bool(np.array_equal(jax.random.key_data(state.key),
                                              jax.random.key_data(ref_state.key)))}


def check_sweep_and_checkpoint() -> dict:
    """A 2 (sweep) x 2 (data) mesh against the unsharded vmapped sweep, then save/resume."""
    hps, _ = grid(k_expl=[0.1, 0.5], lr=[1e-3, 3e-4])  # k_expl > 0: advantages vary
    keys = jnp.stack([jax.random.key(i) for i in range(4)])
    ref_state, ref_metrics = loop.run(loop.make_runner(SMALL, sweep=True), hps, keys, chunk=1)
    mesh = distributed.make_mesh(distributed.MeshPlan(sweep=2, data=2))
    runner = loop.make_runner(SMALL, sweep=True, mesh=mesh)
    state, metrics = loop.run(runner, hps, keys, chunk=1)
    out: dict[str, Any] = {"ref_metrics": _lists(ref_metrics), "metrics": _lists(metrics),
                           "state_diff": _max_diff(ref_state, state)[0],
                           "metrics_shape": list(metrics["episode_return"].shape),
                           "env_spec": str(jax.tree.leaves(state.env_state)[0].sharding.spec),
                           "params_spec": str(jax.tree.leaves(state.params)[0].sharding.spec)}
    # Save after 1 iteration, restore into the sharded template, continue to the end.
    with tempfile.TemporaryDirectory() as d:
        part, _ = loop.run(runner, hps, keys, chunk=1, iterations=1)
        with Checkpointer(d) as ckpt:
            ckpt.save(1, part, SMALL, hps)
            template = loop.state_template(runner, keys, hps)
            restored, _, _ = ckpt.restore(template, cfg=SMALL)
        out["restored_spec"] = str(jax.tree.leaves(restored.env_state)[0].sharding.spec)
        final, rest = loop.run(runner, hps, state=restored, chunk=1)
    out["resume_state_diff"] = _max_diff(state, final)[0]
    out["resume_metric_diff"] = max(float(np.max(np.abs(metrics[k][:, 1:] - rest[k])))
                                    for k in rest)
    out["resume_iterations"] = int(rest["episode_return"].shape[1])
    return out


# DrQ-v2 from state, 4 x 2 envs: the replay rings are per env, so they are split over the
# data axis with the envs, and every sampled batch gathers across devices. No bonus: the
# transformer's compile would double this check's time, and the bonus reads the same
# sampled batch (the sweep check above covers the reward models' sharding).
DRQ = TrainConfig(
    agent="drqv2", env_id="gymnax:Pendulum-v1", num_envs=8, total_steps=8 * 2 * 3,
    reward="none",
    drqv2=(("batch_size", 8), ("hidden_dim", 16), ("feature_dim", 4), ("num_expl_steps", 8),
           ("num_seed_steps", 8), ("buffer_size", 64), ("update_every_steps", 2)))


def check_drqv2_data_parallel() -> dict:
    """DrQ-v2 on 4 devices x 2 envs against 1 device x 8 envs; the buffer split by env."""
    hp, key = HParams(), jax.random.key(3)
    ref_state, ref_metrics, _ = _run_compiled(loop.make_runner(DRQ), hp, key, 3)
    mesh = distributed.make_mesh(distributed.MeshPlan(data=4))
    runner = loop.make_runner(DRQ, mesh=mesh)
    state, metrics, _ = _run_compiled(runner, hp, key, 3)
    state_diff, where = _max_diff(ref_state, state)
    buf = jax.tree.leaves(state.buffer)
    return {"ref_metrics": _lists(ref_metrics), "metrics": _lists(metrics),
            "state_diff": state_diff, "state_diff_leaf": where,
            "buffer_specs": sorted({str(x.sharding.spec) for x in buf}),
            "buffer_shard_rows": sorted({x.addressable_shards[0].data.shape[0] for x in buf}),
            "params_spec": str(jax.tree.leaves(state.params)[0].sharding.spec)}


CHECKS: dict[str, Callable[[], dict]] = {
    "drqv2_data_parallel": check_drqv2_data_parallel,
    "data_parallel": check_data_parallel,
    "sweep_and_checkpoint": check_sweep_and_checkpoint,
}


# the default suite's checks; ``drqv2_data_parallel`` runs in a slow test of its own
DEFAULT_CHECKS = ("data_parallel", "sweep_and_checkpoint")


def main(path: str, names: tuple[str, ...] = DEFAULT_CHECKS) -> None:
    results = {"device_count": jax.device_count()}
    for name in names:
        fn = CHECKS[name]
        t0 = time.perf_counter()
        try:
            results[name] = {"ok": True, **fn()}
        except Exception:  # reported to the test, which fails with the traceback
            results[name] = {"ok": False, "error": traceback.format_exc()}
        results[name]["seconds"] = time.perf_counter() - t0
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], tuple(sys.argv[2:]) or DEFAULT_CHECKS)
