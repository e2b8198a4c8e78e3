"""Progress bar and metric logs: exact file contents, no JAX needed."""

from __future__ import annotations

import csv
import io
import json
import sys

import numpy as np
import pytest

from mimex_jax.logging import MetricsLogger, ProgressBar, format_duration, read_metrics

CHUNK1 = {"episode_return": np.array([0.5, 1.0, 1.5]), "reward_model/loss": np.array([3, 2, 1])}
CHUNK2 = {"episode_return": np.array([2.0, 2.5]), "reward_model/loss": np.array([0.5, 0.25])}


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _event_files(path):
    return [p for p in path.rglob("events.out.tfevents.*") if p.stat().st_size > 0]


def test_format_duration():
    assert format_duration(75.2) == "1:15"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(float("inf")) == "?"


def test_single_run_logs(tmp_path):
    with MetricsLogger(tmp_path, config_dict={"train": {"num_envs": 4}}) as log:
        log.log_chunk(0, CHUNK1, steps_per_iteration=128)
        log.log_chunk(3, CHUNK2, steps_per_iteration=128)
    expected = [
        {"iteration": 0, "env_steps": 128, "episode_return": 0.5, "reward_model/loss": 3.0},
        {"iteration": 1, "env_steps": 256, "episode_return": 1.0, "reward_model/loss": 2.0},
        {"iteration": 2, "env_steps": 384, "episode_return": 1.5, "reward_model/loss": 1.0},
        {"iteration": 3, "env_steps": 512, "episode_return": 2.0, "reward_model/loss": 0.5},
        {"iteration": 4, "env_steps": 640, "episode_return": 2.5, "reward_model/loss": 0.25},
    ]
    assert read_metrics(tmp_path) == expected
    assert read_metrics(tmp_path / "metrics.jsonl") == expected
    rows = _csv_rows(tmp_path / "metrics.csv")
    assert rows[0] == ["iteration", "env_steps", "episode_return", "reward_model/loss"]
    assert rows[1:] == [["0", "128", "0.5", "3.0"], ["1", "256", "1.0", "2.0"],
                        ["2", "384", "1.5", "1.0"], ["3", "512", "2.0", "0.5"],
                        ["4", "640", "2.5", "0.25"]]
    events = _event_files(tmp_path / "tensorboard")
    assert len(events) == 1 and events[0].parent == tmp_path / "tensorboard"


def _read_scalars(event_file):
    """(tag, step, value) of every scalar in a TFRecord event file, via tensorboardX's protos."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    out, data = [], event_file.read_bytes()
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = Event.FromString(data[pos + 12:pos + 12 + length])
        pos += 12 + length + 4  # length, its crc, the record, its crc
        for v in event.summary.value:
            if v.HasField("simple_value"):
                out.append((v.tag, event.step, v.simple_value))
    return out


def test_tensorboard_contents_read_back(tmp_path):
    with MetricsLogger(tmp_path, backends=("tensorboard",)) as log:
        log.log_chunk(0, CHUNK1, steps_per_iteration=10)
    (events,) = _event_files(tmp_path / "tensorboard")
    assert _read_scalars(events) == [
        ("episode_return", 10, 0.5), ("reward_model/loss", 10, 3.0),
        ("episode_return", 20, 1.0), ("reward_model/loss", 20, 2.0),
        ("episode_return", 30, 1.5), ("reward_model/loss", 30, 1.0)]
    assert not (tmp_path / "metrics.jsonl").exists()


def test_sweep_logs(tmp_path):
    labels = [{"mask_ratio": 0.5, "seed": 0}, {"mask_ratio": 0.7, "seed": 0}]
    metrics = {"episode_return": np.array([[1.0, 2.0], [10.0, 20.0]]),
               "lr": np.array([[1e-3, 5e-4], [1e-3, 5e-4]])}
    with MetricsLogger(tmp_path, labels=[{**lab, "lr": 3e-4} for lab in labels]) as log:
        log.log_chunk(4, metrics, steps_per_iteration=100)
    rows = read_metrics(tmp_path)
    assert rows == [
        {"iteration": 4, "env_steps": 500, "member": 0, "mask_ratio": 0.5, "seed": 0,
         "label/lr": 3e-4, "episode_return": 1.0, "lr": 1e-3},
        {"iteration": 4, "env_steps": 500, "member": 1, "mask_ratio": 0.7, "seed": 0,
         "label/lr": 3e-4, "episode_return": 10.0, "lr": 1e-3},
        {"iteration": 5, "env_steps": 600, "member": 0, "mask_ratio": 0.5, "seed": 0,
         "label/lr": 3e-4, "episode_return": 2.0, "lr": 5e-4},
        {"iteration": 5, "env_steps": 600, "member": 1, "mask_ratio": 0.7, "seed": 0,
         "label/lr": 3e-4, "episode_return": 20.0, "lr": 5e-4},
    ]
    csv_rows = _csv_rows(tmp_path / "metrics.csv")
    assert csv_rows[0] == ["iteration", "env_steps", "member", "mask_ratio", "seed", "label/lr",
                           "episode_return", "lr"]
    assert csv_rows[1] == ["4", "500", "0", "0.5", "0", "0.0003", "1.0", "0.001"]
    assert len(csv_rows) == 5
    assert json.loads((tmp_path / "members.json").read_text())[1] == {
        "member": 1, "mask_ratio": 0.7, "seed": 0, "lr": 3e-4}
    for m, value in ((0, 1.0), (1, 10.0)):
        (events,) = _event_files(tmp_path / "tensorboard" / f"member_{m:03d}")
        assert ("episode_return", 500, value) in _read_scalars(events)


def test_csv_header_fixed_and_resume_appends(tmp_path):
    with MetricsLogger(tmp_path, backends=("jsonl", "csv")) as log:
        log.log_chunk(0, {"a": np.array([1.0])}, steps_per_iteration=1)
        log.log_chunk(1, {"a": np.array([2.0]), "b": np.array([5.0])}, steps_per_iteration=1)
    with MetricsLogger(tmp_path, backends=("jsonl", "csv")) as log:   # a resumed run
        log.log_chunk(2, {"b": np.array([6.0])}, steps_per_iteration=1)
    assert _csv_rows(tmp_path / "metrics.csv") == [
        ["iteration", "env_steps", "a"], ["0", "1", "1.0"], ["1", "2", "2.0"], ["2", "3", ""]]
    assert [r["iteration"] for r in read_metrics(tmp_path)] == [0, 1, 2]
    assert read_metrics(tmp_path)[1]["b"] == 5.0


def test_log_chunk_rejects_bad_shapes(tmp_path):
    with MetricsLogger(tmp_path, backends=("jsonl",), labels=[{"seed": 0}]) as log:
        with pytest.raises(ValueError, match="same shape"):
            log.log_chunk(0, {"a": np.zeros(3), "b": np.zeros(2)}, 1)
        with pytest.raises(ValueError, match="2 members but 1 labels"):
            log.log_chunk(0, {"a": np.zeros((2, 3))}, 1)
    with pytest.raises(ValueError, match="unknown log backend"):
        MetricsLogger(tmp_path, backends=("jsonl", "mlflow"))


def test_wandb_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` fail
    with pytest.raises(ImportError, match="pip install wandb"):
        MetricsLogger(tmp_path, backends=("jsonl", "wandb"))


def test_wandb_backend_logs_per_iteration(tmp_path, monkeypatch):
    calls = []

    class FakeRun:
        def log(self, data, step):
            calls.append((step, data))

        def finish(self):
            calls.append("finish")

    class FakeWandb:
        @staticmethod
        def init(project, dir, config):
            calls.append(("init", project, sorted(config)))
            return FakeRun()

    monkeypatch.setitem(sys.modules, "wandb", FakeWandb)
    with MetricsLogger(tmp_path, backends=("wandb",), labels=[{"seed": 0}, {"seed": 1}],
                       config_dict={"train": {}}) as log:
        log.log_chunk(0, {"r": np.array([[1.0], [2.0]])}, steps_per_iteration=8)
    assert calls == [("init", "mimex-jax", ["members", "train"]),
                     (8, {"iteration": 0, "member_000/r": 1.0, "member_001/r": 2.0}), "finish"]


def test_progress_bar_non_tty():
    out, clock = io.StringIO(), FakeClock()
    bar = ProgressBar(1000, desc="deepsea", stream=out, clock=clock, min_interval=5.0)
    clock.t += 10.0                      # compile + first chunk
    bar.update(100, episode_return=np.array([0.5, 1.5]))
    clock.t += 1.0
    bar.update(300)                      # within min_interval: held back
    clock.t += 1.0
    bar.update(500, episode_return=2.0)  # 5 s after the previous print? no: 2 s -> held back
    clock.t += 4.0
    bar.update(900, episode_return=3.0)  # due
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("deepsea  10% 100/1,000 steps | 10 steps/s | elapsed 0:10")
    assert "ETA 1:30" in lines[0] and "episode_return 1" in lines[0]
    # rate from the first update on: 800 steps in 6 s -> 133 steps/s, ETA 100/133 s
    assert lines[1] == ("deepsea  90% 900/1,000 steps | 133 steps/s | elapsed 0:16 | ETA 0:01"
                        " | episode_return 3")
    assert len(lines) == 2


def test_progress_bar_prints_final_and_held_back_lines():
    out, clock = io.StringIO(), FakeClock()
    with ProgressBar(100, stream=out, clock=clock, min_interval=60.0) as bar:
        clock.t += 1.0
        bar.update(10)
        clock.t += 1.0
        bar.update(20)                   # held back, printed by close()
    assert [line.split(" steps ")[0] for line in out.getvalue().splitlines()] == [
        " 10% 10/100", " 20% 20/100"]
    out2 = io.StringIO()
    bar = ProgressBar(100, stream=out2, clock=clock, min_interval=60.0)
    bar.update(10)
    bar.update(100)                      # the end is always printed
    assert "100% 100/100" in out2.getvalue().splitlines()[-1]


def test_progress_bar_tty_and_disabled():
    class TTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, clock = TTY(), FakeClock()
    bar = ProgressBar(100, stream=out, clock=clock, min_interval=0.0)
    clock.t += 1.0
    bar.update(50)
    clock.t += 1.0
    bar.update(60)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    off = io.StringIO()
    bar = ProgressBar(100, stream=off, enabled=False)
    bar.update(50)
    bar.close()
    assert off.getvalue() == ""
