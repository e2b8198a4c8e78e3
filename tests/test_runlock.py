"""One writer per run directory (:mod:`mimex_jax.runlock`), and resume that always works.

The lock itself is tested without JAX (a holder subprocess, hand-written lock files); the
CLI tests use ``tests/data/tiny.yaml`` (DeepSea 4x4, 4 envs, 4 iterations) and compare
with one uninterrupted run. Killing a training process at a random point is slow and
marked so; the default suite stops a live owner with SIGSTOP instead, which keeps it alive
and the run directory still while the second process is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _runs import TINY, assert_same_state, final_state

from mimex_jax import runlock
from mimex_jax.cli import main
from mimex_jax.logging import read_metrics
from mimex_jax.runlock import LOCK_FILE, RunLock, RunLockedError, StaleLockWarning

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
HOLDER = ("import sys, time\nfrom mimex_jax.runlock import RunLock\n"
          "RunLock(sys.argv[1], command='holder').acquire()\nprint('locked', flush=True)\n"
          "time.sleep(120)\n")


def _env() -> dict[str, str]:
    """This environment with the worktree first on the path (subprocesses import it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    return env


def _digest(run_dir: Path) -> dict[str, str]:
    """Every entry of ``run_dir``: sha256 of each file, "dir" for each directory."""
    out = {}
    for p in sorted(run_dir.rglob("*")):
        rel = str(p.relative_to(run_dir))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _wait_for(cond: Callable[[], bool], proc: subprocess.Popen, what: str,
              timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the process ended before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _write_owner(run_dir: Path, **fields: object) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    owner = {**runlock.this_owner("an earlier run"), **fields}
    (run_dir / LOCK_FILE).write_text(json.dumps(owner))


# --- the lock itself (no JAX) -------------------------------------------------------------


def test_lock_records_its_owner_is_reentrant_and_is_removed_on_release(tmp_path: Path
                                                                        ) -> None:
    run = tmp_path / "run"
    with RunLock(run, command="test") as lock:
        owner = runlock.read_owner(run)
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        assert owner["command"] == "test" and runlock.is_held(run)
        with RunLock(run):  # the CLI holds it and experiment.train asks again
            pass
        assert (run / LOCK_FILE).exists() and lock.path == run / LOCK_FILE
    assert not (run / LOCK_FILE).exists() and not runlock.is_held(run)
    assert sorted(p.name for p in run.iterdir()) == []


def test_live_holder_is_refused_and_a_killed_one_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"iteration": 0}\n')
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], env=_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _digest(run)
        for force in (False, True):  # a held OS lock is never forced
            with pytest.raises(RunLockedError) as e:
                RunLock(run, force=force).acquire()
            msg = str(e.value)
            assert str(run) in msg and f"pid {holder.pid}" in msg
            assert socket.gethostname() in msg and f"kill {holder.pid}" in msg
            assert e.value.owner["pid"] == holder.pid
        assert _digest(run) == before
    finally:
        _kill(holder)
    with pytest.warns(StaleLockWarning, match=f"pid {holder.pid}.*no longer running"):
        lock = RunLock(run).acquire()
    assert runlock.read_owner(run)["pid"] == os.getpid()
    lock.release()


def test_recorded_owner_decides_when_no_os_lock_is_held(tmp_path: Path) -> None:
    """A lock file left behind (no flock held) names its owner; only a dead one on this
    host is taken over without --force-unlock."""
    me = runlock.this_owner()
    cases = {  # recorded fields -> state
        "dead pid": ({"pid": _dead_pid()}, "dead"),
        "pid reused by another process": ({"pid": os.getppid(), "pid_start": -1}, "dead"),
        "rebooted since": ({"boot_id": "another-boot"}, "dead"),
        "another host": ({"host": "elsewhere.invalid"}, "unknown"),
        "alive here": ({"pid": os.getpid()}, "alive"),
    }
    if me["boot_id"] is None or me["pid_start"] is None:
        pytest.skip("needs Linux /proc")
    for name, (fields, state) in cases.items():
        assert runlock.owner_state({**me, **fields}) == state, name
    parent = runlock.this_owner()
    parent.update(pid=os.getppid(), pid_start=runlock._proc_stat(os.getppid())[1])
    assert runlock.owner_state(parent) == "alive"

    run = tmp_path / "run"
    _write_owner(run, pid=os.getppid(), pid_start=parent["pid_start"])  # alive, no flock
    with pytest.raises(RunLockedError, match="still running on this host"):
        RunLock(run, force=True).acquire()
    _write_owner(run, host="elsewhere.invalid", pid=4242)
    before = _digest(run)
    with pytest.raises(RunLockedError, match="--force-unlock") as e:
        RunLock(run).acquire()
    assert "pid 4242 on host elsewhere.invalid" in str(e.value)
    assert _digest(run) == before
    with pytest.warns(StaleLockWarning, match="--force-unlock"), RunLock(run, force=True):
        assert runlock.read_owner(run)["pid"] == os.getpid()
    _write_owner(run, pid=_dead_pid())
    with pytest.warns(StaleLockWarning, match="no longer running"), RunLock(run):
        pass
    assert not (run / LOCK_FILE).exists()


# --- the CLI -------------------------------------------------------------------------------


def _assert_same_run(a: Path, b: Path) -> None:
    """Same metrics rows (each iteration once), same final state and evaluation."""
    rows = read_metrics(b)
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert rows == read_metrics(a)
    (sa, ma), (sb, mb) = final_state(a), final_state(b)
    assert ma["step"] == mb["step"] == 4
    assert_same_state(sa, sb)
    assert json.loads((a / "eval.json").read_text()) == json.loads((b / "eval.json").read_text())
    assert not (b / LOCK_FILE).exists()


@pytest.fixture(scope="module")
def straight(tiny_run: Path) -> Path:
    return tiny_run  # one uninterrupted run, shared with tests/test_cli.py (conftest.py)


def test_second_resume_is_refused_while_the_owner_lives_then_takes_over(
        straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # The straight run as a run stopped after its checkpoint 2 that had logged two more
    # iterations: the resume must drop them (each iteration once in the end).
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    shutil.rmtree(run / "checkpoints" / "4")
    for name in ("eval.json", "summary.json"):
        (run / name).unlink()
    owner = subprocess.Popen([sys.executable, "-m", "mimex_jax.cli", "train", "--resume",
                              str(run), "--no-progress"], cwd=ROOT, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (runlock.read_owner(run) or {}).get("pid") == owner.pid, owner,
                  "the first process took the lock")
        os.kill(owner.pid, signal.SIGSTOP)  # alive, and the directory stays still
        # as if the owner were writing its next checkpoint (orbax's temporary name)
        saving = run / "checkpoints" / "3.orbax-checkpoint-tmp-1234567"
        saving.mkdir()
        before = _digest(run)
        capsys.readouterr()
        for cmd in (["train", "--resume", str(run)], ["sweep", "--resume", str(run)],
                    ["train", "-c", TINY, "--out", str(run)]):
            assert main(cmd + ["--no-progress"]) == 2, cmd
            err = capsys.readouterr().err
            assert f"run directory {run} is in use" in err, err
            assert f"pid {owner.pid} on host {socket.gethostname()}" in err
            assert f"kill {owner.pid}" in err and "Nothing in" in err
            assert _digest(run) == before, cmd
        # eval and plot read a locked run without the lock and write nothing into it (eval
        # does not clean up the step being saved, as a writing Checkpointer would)
        assert main(["eval", str(run), "--episodes", "2"]) == 0
        assert "step 2" in capsys.readouterr().out
        assert main(["plot", str(run), "--out", str(tmp_path / "curves.png")]) == 0
        assert _digest(run) == before
    finally:
        _kill(owner)  # kill -9 of a stopped process: the lock file stays behind
    assert runlock.read_owner(run)["pid"] == owner.pid
    with pytest.warns(StaleLockWarning, match=f"pid {owner.pid}.*no longer running"):
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert not saving.exists()  # the new owner's Checkpointer cleaned it up
    _assert_same_run(straight, run)


def test_metrics_of_a_live_run_skip_the_row_being_written(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"iteration": 0}\n{"iteration": 1}\n{"itera')
    assert read_metrics(tmp_path) == [{"iteration": 0}, {"iteration": 1}]


def test_resume_before_the_first_checkpoint_starts_from_iteration_0(
        straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """What a run killed early leaves (config, partial logs, an orbax directory without a
    complete step, a dead owner's lock) resumes from iteration 0 and ends as if never
    interrupted."""
    run = tmp_path / "run"
    (run / "checkpoints" / "2.orbax-checkpoint-tmp-0").mkdir(parents=True)
    (run / "tensorboard").mkdir()
    (run / "tensorboard" / "events.out.tfevents.0.partial").write_bytes(b"partial")
    shutil.copy(straight / "config.yaml", run / "config.yaml")
    lines = (straight / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(lines[:2]) + lines[2][:20])  # cut mid-row
    csv_lines = (straight / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(csv_lines[:3]))
    _write_owner(run, pid=_dead_pid())
    capsys.readouterr()
    with pytest.warns(StaleLockWarning):
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "no complete checkpoint yet" in err and "from iteration 0" in err
    assert "partial logs cleared" in err
    _assert_same_run(straight, run)
    assert (run / "metrics.csv").read_text() == (straight / "metrics.csv").read_text()
    assert not (run / "tensorboard" / "events.out.tfevents.0.partial").exists()
    # A directory without a config stays an error, and is left untouched.
    bare = tmp_path / "bare"
    (bare / "checkpoints").mkdir(parents=True)
    assert main(["train", "--resume", str(bare)]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    assert _digest(bare) == {"checkpoints": "dir"}


# --- real kills at random points (slow) ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("again", [["--resume", "{run}"], ["-c", TINY, "--out", "{run}"]],
                         ids=["resume", "same-command"])
def test_killed_while_compiling_resumes_from_iteration_0(straight: Path, tmp_path: Path,
                                                         again: list[str]) -> None:
    """The issue's case: kill -9 during the first compile; --resume (or the same command
    again, as a requeue would) starts over, without appending to the partial logs."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mimex_jax.cli", "train", "-c", TINY,
                             "--out", str(run), "--no-progress"], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (run / "config.yaml").exists(), proc, "config.yaml was written")
    finally:
        _kill(proc)
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.isdigit()]
    with pytest.warns(StaleLockWarning):
        assert main(["train", *[a.format(run=run) for a in again], "--no-progress"]) == 0
    _assert_same_run(straight, run)


@pytest.mark.slow
def test_resume_while_a_fresh_run_trains_then_after_kill(
        straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The issue's other case, unpaused: a second --resume while the first run is training
    is refused; after kill -9 of the first, --resume finishes it exactly."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mimex_jax.cli", "train", "-c", TINY,
                             "--out", str(run), "--no-progress", "--set",
                             "run.checkpoint_every=1"], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (run / "checkpoints").is_dir() and any(
            p.name.isdigit() for p in (run / "checkpoints").iterdir()), proc,
            "the first checkpoint")
        capsys.readouterr()
        assert main(["train", "--resume", str(run), "--no-progress"]) == 2
        assert proc.poll() is None, "the first run ended before the second was refused"
        assert f"pid {proc.pid}" in capsys.readouterr().err
    finally:
        _kill(proc)
    saved = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and saved[-1] < 4, saved
    with pytest.warns(StaleLockWarning):
        assert main(["train", "--resume", str(run), "--no-progress",
                     "--set", "run.checkpoint_every=1"]) == 0
    _assert_same_run(straight, run)


# Two jax.distributed processes that only take the lock (no training): process 0 holds it,
# both see the same verdict, a nested hold agrees on both, and the release removes it.
TWO_HOLDERS = """
import os, sys
import jax
from mimex_jax import runlock
run, port, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
jax.distributed.initialize(f"127.0.0.1:{port}", 2, pid)
with runlock.hold(run):
    with runlock.hold(run):
        owner = runlock.read_owner(run)
    print("owner", owner["pid"], "me", os.getpid(), "held", runlock.is_held(run), flush=True)
print("after", os.path.exists(os.path.join(run, runlock.LOCK_FILE)), flush=True)
"""


def _two(cmds: list[list[str]]) -> tuple[list[int], list[str]]:
    env = {k: v for k, v in _env().items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for c in cmds]
    try:
        logs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [p.returncode for p in procs], logs


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_lock_through_process_0(tmp_path: Path) -> None:
    """jax.distributed: a locked run stops both processes with exit status 2 (process 0
    with the owner, process 1 with process 0's reason); a free one is held by process 0."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(TINY, run / "config.yaml")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], env=_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _digest(run)
        port = _port()
        codes, logs = _two([[sys.executable, "-m", "mimex_jax.cli", "train", "--resume",
                             str(run), "--no-progress", "--distributed", "--coordinator",
                             f"127.0.0.1:{port}", "--num-processes", "2", "--process-id",
                             str(i)] for i in range(2)])
    finally:
        _kill(holder)
    assert codes == [2, 2], logs
    assert f"pid {holder.pid}" in logs[0] and "is in use" in logs[0]
    assert "process 0 of this run could not take its lock" in logs[1]
    assert f"pid {holder.pid}" in logs[1]  # process 0's reason, passed on
    assert _digest(run) == before
    (run / LOCK_FILE).unlink()  # the holder's, left by kill -9
    port = _port()
    codes, logs = _two([[sys.executable, "-c", TWO_HOLDERS, str(run), str(port), str(i)]
                        for i in range(2)])
    assert codes == [0, 0], logs
    lines = [[ln.split() for ln in log.splitlines() if ln.startswith(("owner", "after"))]
             for log in logs]
    (_, owner0, _, me0, _, held0), (_, owner1, _, _, _, held1) = lines[0][0], lines[1][0]
    assert owner0 == me0 == owner1 and held0 == held1 == "True"  # process 0 owns it
    assert lines[0][1] == ["after", "False"]  # process 0 released it: file removed
