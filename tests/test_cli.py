"""The mimex-jax command end to end on a tiny config: train, stop/resume, sweep, eval, plot.

Every run here uses ``tests/data/tiny.yaml`` (DeepSea 4x4, 4 envs, 4 iterations).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _runs import TINY, assert_same_state, final_state

from mimex_jax import loop
from mimex_jax.cli import main
from mimex_jax.config import load_config
from mimex_jax.logging import read_metrics
from mimex_jax.runlock import StaleLockWarning


@pytest.fixture(scope="module")
def straight(tiny_run: Path) -> Path:
    return tiny_run  # shared with tests/test_runlock.py (conftest.py)


def test_train_writes_a_run_directory(straight: Path, capsys) -> None:
    for name in ("config.yaml", "metrics.jsonl", "metrics.csv", "eval.json", "summary.json"):
        assert (straight / name).exists(), name
    assert list((straight / "tensorboard").iterdir())
    rows = read_metrics(straight)
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert [r["env_steps"] for r in rows] == [32, 64, 96, 128]
    steps = sorted(int(p.name) for p in (straight / "checkpoints").iterdir())
    assert steps == [2, 4]
    assert load_config(straight / "config.yaml") == load_config(TINY)


def test_stop_and_resume_equals_a_straight_run(straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    assert main(["train", "-c", TINY, "--out", str(out), "--stop-at", "2",
                 "--no-progress"]) == 0
    assert [r["iteration"] for r in read_metrics(out)] == [0, 1]
    assert not (out / "eval.json").exists()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    a, meta_a = final_state(straight)
    b, meta_b = final_state(out)
    assert meta_a["step"] == meta_b["step"] == 4
    assert_same_state(a, b)  # params, optimizer and reward-model state, env, RNG, counter
    assert read_metrics(out) == read_metrics(straight)
    assert json.loads((out / "eval.json").read_text()) == json.loads(
        (straight / "eval.json").read_text())


def test_resume_refuses_a_shape_changing_config(straight: Path, capsys) -> None:
    code = main(["train", "--resume", str(straight), "--set", "train.num_envs=8"])
    assert code == 2
    err = capsys.readouterr().err
    assert "num_envs" in err and "saved 4" in err and "given 8" in err


def test_resume_of_a_non_run_directory_is_an_error(tmp_path: Path, capsys) -> None:
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_config_errors_name_the_field(capsys) -> None:
    assert main(["train", "-c", TINY, "--set", "train.num_envs=abc"]) == 2
    err = capsys.readouterr().err
    assert "train.num_envs" in err and "abc" in err
    assert main(["train", "-c", TINY, "--set", "train.num_env=4"]) == 2
    err = capsys.readouterr().err
    assert "num_env" in err and "num_envs" in err  # lists the valid keys


def test_unknown_env_is_a_config_error_and_leaves_no_run_directory(tmp_path: Path,
                                                                   capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "-c", TINY, "--set", "train.env_id=gymnax:DeepSea", "--out",
                 str(out)]) == 2
    assert "did you mean ['gymnax:DeepSea-bsuite']" in capsys.readouterr().err
    assert not out.exists()


def test_eval_and_plot(straight: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "eval.json"
    assert main(["eval", str(straight), "--episodes", "3", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| member | return | success | length |" in out
    data = json.loads(report.read_text())
    assert data["step"] == 4 and len(data["members"]) == 1
    # The deterministic evaluation of the final checkpoint is the run's own final eval.
    assert data["members"][0]["return"] == pytest.approx(
        json.loads((straight / "eval.json").read_text())["members"][0]["return"])
    png = tmp_path / "curves.png"
    assert main(["plot", str(straight), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_sweep_trains_every_member_in_one_run(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", "-c", TINY, "--set", "sweep.grid.k_expl=[0.0, 0.1]", "--seeds", "2",
                 "--out", str(out), "--no-progress"]) == 0
    rows = read_metrics(out)
    assert len(rows) == 4 * 4  # 4 iterations x (2 settings x 2 seeds)
    assert {(r["k_expl"], r["seed"]) for r in rows} == {(0.0, 0), (0.0, 1), (0.1, 0), (0.1, 1)}
    ev = json.loads((out / "eval.json").read_text())["members"]
    assert len(ev) == 4
    state, meta = final_state(out)
    assert loop.iteration_of(state) == 4 and state.iteration.shape == (4,)
    assert meta["extra"]["labels"][2] == {"k_expl": 0.1, "seed": 0}
    assert main(["sweep", "-c", TINY]) == 2
    assert "no 'sweep:' section" in capsys.readouterr().err


def test_help_of_every_command_shows_defaults(capsys) -> None:
    for cmd in ("train", "sweep", "eval", "plot", "demo"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
    out = capsys.readouterr().out
    assert "(default: 16)" in out and "(default: 200)" in out


def test_bench_exploration_help_and_errors(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["bench", "exploration", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: mimex-jax bench exploration" in out
    assert "default per task: deepsea 10 (--quick 10)" in " ".join(out.split())
    assert main(["bench", "exploration", "--seeds", "0"]) == 2
    assert "--seeds=0 is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "nonsense"])


def test_demo_runs_and_prints_table(capsys) -> None:
    assert main(["demo", "--updates", "2", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "| mimex |" in out and "| rnd |" in out and "| running_mean |" in out
    assert main(["demo", "--updates", "0"]) == 2
    assert "--updates and --batch must be >= 1" in capsys.readouterr().err


def test_sigkill_during_training_resumes_from_the_last_checkpoint(straight: Path,
                                                                  tmp_path: Path) -> None:
    """Kill -9 a training process after its first checkpoint; --resume finishes the run
    with exactly the straight run's result."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "mimex_jax.cli", "train", "-c", TINY, "--out", str(out),
           "--no-progress", "--set", "run.checkpoint_every=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ck = out / "checkpoints"
            if ck.exists() and any(p.name.isdigit() for p in ck.iterdir()):
                break
            if proc.poll() is not None:
                pytest.fail("training ended before it could be killed")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and saved[-1] < 4, saved
    with pytest.warns(StaleLockWarning):  # the killed process's lock is taken over
        assert main(["train", "--resume", str(out), "--no-progress",
                     "--set", "run.checkpoint_every=1"]) == 0
    a, _ = final_state(straight)
    b, _ = final_state(out)
    assert_same_state(a, b)
    assert read_metrics(out) == read_metrics(straight)
