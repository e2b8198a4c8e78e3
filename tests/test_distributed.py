"""Scale-out: sharded sweeps, data parallelism, sharded checkpoints, several processes.

The multi-device checks run in ONE subprocess that sees 4 forced CPU devices
(``tests/_distributed_worker.py``), so the rest of the suite keeps its single device. The
two-process ``jax.distributed`` run is marked slow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TEST_XLA_FLAGS
from jax.sharding import PartitionSpec as P

from mimex_jax import distributed
from mimex_jax.cli import main
from mimex_jax.config import ConfigError, load_config
from mimex_jax.logging import read_metrics
from mimex_jax.trainer import HParams, TrainConfig, make_train

TEST_FLAG_NAMES = {f.split("=")[0] for f in TEST_XLA_FLAGS.split()}
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TINY = str(TESTS / "data" / "tiny.yaml")


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without device-count settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", "JAX_PLATFORMS")}
    env["JAX_PLATFORMS"] = "cpu"
    # Keep conftest's compile-speed settings, drop everything else (device counts).
    env["XLA_FLAGS"] = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                                if f.split("=")[0] in TEST_FLAG_NAMES)
    env.update(extra)
    return env


def _four_device_checks(out: Path, *names: str) -> dict:
    """Run ``tests/_distributed_worker.py`` (4 forced CPU devices) for ``names`` (default:
    its ``DEFAULT_CHECKS``) and return its results."""
    proc = subprocess.run([sys.executable, str(TESTS / "_distributed_worker.py"), str(out),
                           *names], cwd=ROOT, env=_clean_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and out.exists(), proc.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["device_count"] == 4
    return results


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Results of the default 4-device checks (one subprocess, shared compile warm-up)."""
    return _four_device_checks(tmp_path_factory.mktemp("dist") / "results.json")


def _check(results: dict, name: str) -> dict:
    r = results[name]
    assert r["ok"], r.get("error")
    return r


def _assert_metrics_close(ref: dict, got: dict, **tol: float) -> None:
    assert ref.keys() == got.keys()
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], err_msg=k, **tol)


# --- 4 forced CPU devices (subprocess) -------------------------------------------------------


@pytest.mark.slow
def test_drqv2_data_parallel_splits_replay_by_env(tmp_path: Path) -> None:
    """DrQ-v2: 4 devices x 2 envs compute the 8-env run, and each device stores only its
    own envs' replay rings. Slow (its own subprocess, ~15 s of compiles): the default
    suite's 5-minute budget."""
    r = _check(_four_device_checks(tmp_path / "drq.json", "drqv2_data_parallel"),
               "drqv2_data_parallel")
    assert r["buffer_specs"] == ["P('data',)"]
    assert r["buffer_shard_rows"] == [2]
    assert r["params_spec"] == "P()"
    _assert_metrics_close(r["ref_metrics"], r["metrics"], rtol=1e-3, atol=1e-5)
    assert r["state_diff"] < 1e-3, r["state_diff_leaf"]


def test_data_parallel_4x64_envs_equals_one_device_256_envs(four_devices: dict) -> None:
    r = _check(four_devices, "data_parallel")
    assert r["env_spec"] == "P('data',)" and r["window_spec"] == "P('data',)"
    assert r["params_spec"] == "P()"
    # Same keys, same math: only the order of float32 reductions differs.
    _assert_metrics_close(r["ref_metrics"], r["metrics"], rtol=1e-3, atol=1e-5)
    assert r["state_diff"] < 1e-3, (r["state_diff"], r["state_diff_leaf"])
    assert r["keys_equal"]
    # The step really is split: each device does about a quarter of the work.
    assert r["flops_per_device"] < 0.35 * r["flops_one_device"]


def test_sharded_sweep_equals_unsharded_member_by_member(four_devices: dict) -> None:
    r = _check(four_devices, "sweep_and_checkpoint")
    assert r["env_spec"] == "P('sweep', 'data')" and r["params_spec"] == "P('sweep',)"
    assert r["metrics_shape"] == [4, 2]
    # atol 1e-4: with 8 envs per member the advantage normalisation (std over an 8-sample
    # minibatch) magnifies float32 reordering noise in near-cancelling means such as the
    # policy loss (~1e-4 here); a wrong split would be off by O(1).
    for k, ref in r["ref_metrics"].items():
        for member in range(4):
            np.testing.assert_allclose(r["metrics"][k][member], ref[member], rtol=1e-3,
                                       atol=1e-4, err_msg=f"{k}, member {member}")
    assert r["state_diff"] < 1e-3


def test_sharded_checkpoint_resumes_exactly(four_devices: dict) -> None:
    r = _check(four_devices, "sweep_and_checkpoint")
    assert r["restored_spec"] == "P('sweep', 'data')"  # restored into the sharded template
    assert r["resume_iterations"] == 1
    assert r["resume_state_diff"] == 0.0 and r["resume_metric_diff"] == 0.0


# --- layout planning and validation (this process, one device) -------------------------------


def test_plan_mesh_layouts() -> None:
    plan = distributed.plan_mesh
    assert plan("data", members=1, num_envs=256, available=4) == distributed.MeshPlan(1, 4)
    assert plan("sweep", members=8, num_envs=3, available=4) == distributed.MeshPlan(4, 1)
    assert plan("auto", members=6, num_envs=64, available=4) == distributed.MeshPlan(2, 2)
    assert plan({"sweep": 2, "data": 2}, members=2, num_envs=8, available=4).devices == 4
    assert plan("auto", 2, members=1, num_envs=8, available=4) == distributed.MeshPlan(1, 2)
    with pytest.warns(UserWarning, match="uses 2 of 4 devices"):
        assert plan("auto", members=1, num_envs=6, available=4) == distributed.MeshPlan(1, 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mesh="sweep", members=6, num_envs=8), "sweep axis of 4 devices does not divide the 6"),
    (dict(mesh="data", members=1, num_envs=6), "data axis of 4 devices does not divide "
                                               "train.num_envs=6"),
    (dict(mesh="data", members=1, num_envs=8, minibatch_size=6), "minibatch of 6"),
    (dict(mesh="auto", devices=4, members=1, num_envs=6), "train.num_envs=6"),
    (dict(mesh={"sweep": 2, "data": 4}, members=2, num_envs=8), "needs 8 devices; JAX sees 4"),
    (dict(mesh={"data": 2}, devices=4, members=1, num_envs=8), "uses 2 devices but "
                                                               "run.devices=4"),
    (dict(mesh="auto", devices=5, members=1, num_envs=8), r"run.devices=5 is invalid"),
    (dict(mesh="rows", members=1, num_envs=8), r"run.mesh='rows' is invalid"),
    (dict(mesh={"model": 2}, members=1, num_envs=8), "keys among"),
])
def test_plan_mesh_errors_name_both_numbers(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        distributed.plan_mesh(available=4, **kwargs)


def test_single_device_run_has_no_mesh() -> None:
    cfg = TrainConfig(num_envs=8, rollout_len=4, total_steps=32)
    assert distributed.mesh_for_run("auto", None, 1, cfg) is None


def test_pixel_run_with_auto_mesh_stays_on_one_device(monkeypatch) -> None:
    cfg = TrainConfig(num_envs=8, rollout_len=4, total_steps=32, observation="pixels",
                      embedding="encoder", env_id="playground:CartpoleBalance")
    monkeypatch.setattr(jax, "device_count", lambda *a: 4)
    with pytest.warns(UserWarning, match="pixel run on 1 of 4 devices"):
        assert distributed.mesh_for_run("auto", None, 2, cfg) is None
    # a state run with the same options spreads over the 4 devices (planned before failing
    # here, where only one is real)
    with pytest.raises(ValueError, match="mesh needs 4 devices"):
        distributed.mesh_for_run("auto", None, 2, dataclasses.replace(
            cfg, observation="state", embedding="obs"))


def test_run_options_validate_devices_and_mesh() -> None:
    rc = load_config(TINY, ["run.mesh={sweep: 1, data: 1}", "run.devices=1"])
    assert rc.run.mesh == {"sweep": 1, "data": 1} and rc.run.devices == 1
    assert load_config(TINY).run.mesh == "auto"
    for override, message in [("run.mesh=rows", "run.mesh='rows' is invalid"),
                              ("run.mesh={sweep: 0}", r"run.mesh.sweep=0 is invalid"),
                              ("run.devices=0", "run.devices=0 is invalid")]:
        with pytest.raises(ConfigError, match=message):
            load_config(TINY, [override])
    with pytest.raises(ConfigError, match="run.devices=3 is invalid"):
        load_config(TINY, ["run.mesh={sweep: 1, data: 2}", "run.devices=3"])


def test_state_specs_shard_env_leaves_only() -> None:
    cfg = TrainConfig(env_id="gymnax:MountainCar-v0", num_envs=8, rollout_len=4,
                      minibatches=2, total_steps=32, actor_hidden=(8,), critic_hidden=(8,),
                      mimex=(("embed_dim", 8), ("depth", 1), ("num_heads", 2),
                             ("decoder_embed_dim", 8)))
    init, _, _, _ = make_train(cfg)
    template = jax.eval_shape(init, jax.random.key(0), HParams())
    for sweep in (False, True):
        specs = distributed.state_specs(template, cfg.num_envs, sweep)
        lead = ("sweep",) if sweep else ()
        for path, spec in jax.tree_util.tree_flatten_with_path(
                specs, is_leaf=lambda x: isinstance(x, P))[0]:
            name = jax.tree_util.keystr(path)
            env = name.startswith((".env_state", ".window"))
            assert spec == P(*lead, *(("data",) if env else ())), name
    assert distributed.constrain_envs(template.window, 0, 8) is template.window  # no mesh


def test_cli_process_flags_need_distributed(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "-c", TINY, "--coordinator", "127.0.0.1:1234"]) == 2
    assert "need --distributed" in capsys.readouterr().err


def test_initialize_checks_process_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    with pytest.raises(ValueError, match=r"--process-id=2 is invalid; allowed: 0 .. 1"):
        distributed.initialize("127.0.0.1:1", process_id=2)
    monkeypatch.setenv("JAX_PROCESS_ID", "x")
    with pytest.raises(ValueError, match="JAX_PROCESS_ID='x' is invalid"):
        distributed.initialize("127.0.0.1:1")


# --- two jax.distributed processes on loopback (slow) ----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(out: Path, *args: str) -> list[str]:
    """``mimex-jax train`` as two processes with 2 CPU devices each (4 in the mesh)."""
    port = _free_port()
    procs = []
    for pid in range(2):
        cmd = [sys.executable, "-m", "mimex_jax.cli", "train", "--no-progress",
               "--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
               "--process-id", str(pid), *args]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=_clean_env(JAX_NUM_CPU_DEVICES="2"),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=400)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-4000:]
    return logs


@pytest.mark.slow
def test_two_processes_train_checkpoint_and_resume(tmp_path: Path) -> None:
    run = tmp_path / "two"
    common = ["--set", "run.mesh=data", "--set", "run.log_backends=[jsonl]"]
    logs = _two_processes(run, "-c", TINY, "--out", str(run), "--stop-at", "2", *common)
    assert "stopped at iteration 2" in logs[0] and "stopped at" not in logs[1]  # one reports
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["2"]
    # Each process wrote its own shards of the env leaves split over both hosts.
    state_dir = run / "checkpoints" / "2" / "state"
    assert {p.name for p in state_dir.glob("ocdbt.process_*")} == {"ocdbt.process_0",
                                                                   "ocdbt.process_1"}
    logs = _two_processes(run, "--resume", str(run), *common)
    assert "resuming" not in logs[1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["2", "4"]
    rows = read_metrics(run)
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]  # written once, by process 0
    # A checkpoint does not remember its layout: one process, one device reads it back.
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert json.loads((run / "summary.json").read_text())["iterations"] == 4
    # The same run on one device in one process: the same numbers.
    single = tmp_path / "single"
    assert main(["train", "-c", TINY, "--out", str(single), "--no-progress",
                 "--set", "run.log_backends=[jsonl]"]) == 0
    ref = read_metrics(single)
    for key in ("episode_return", "reward_int", "value_loss", "grad_norm"):
        np.testing.assert_allclose([r[key] for r in rows], [r[key] for r in ref],
                                   rtol=1e-3, atol=1e-5, err_msg=key)



def test_mimex_microbatches_are_not_split_under_a_data_mesh() -> None:
    """Consecutive microbatches would each sit on one device and run one at a time."""
    from mimex_jax.rewards import MIMExConfig
    from mimex_jax.rewards.mimex import microbatch_size

    cfg = MIMExConfig(seq_len=5, feature_dim=2, microbatch=64)
    assert microbatch_size(cfg, 512) == 64
    mesh = jax.sharding.AbstractMesh((1, 4), distributed.AXES)
    with jax.sharding.use_abstract_mesh(mesh):
        assert distributed.data_axis_size() == 4
        assert microbatch_size(cfg, 512) == 512
    assert distributed.data_axis_size() == 1
