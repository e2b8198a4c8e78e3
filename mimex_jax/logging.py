"""Host-side run output: a progress bar and per-iteration metric logs.

Both are fed once per compiled chunk (the caller does one ``device_get`` per chunk), never
per environment step.

* :class:`ProgressBar` prints one refreshing line (carriage return) on a terminal and
  rate-limited plain lines elsewhere (CI logs are not terminals): percentage, env
  steps/s (measured from the first update on, so compile time does not skew it),
  elapsed time, ETA and a few scalars such as the episode return.
* :class:`MetricsLogger` writes ``metrics.jsonl`` (one JSON object per iteration and
  sweep member), ``metrics.csv`` (the same columns, header fixed by the first chunk),
  TensorBoard event files (``tensorboard/``, one subdirectory per sweep member) and,
  when asked, Weights & Biases.
* :func:`read_metrics` reads ``metrics.jsonl`` back (for plots and tests).

This module is ``mimex_jax.logging``; it does not use or replace the standard library's
``logging``.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["BACKENDS", "MetricsLogger", "ProgressBar", "format_duration", "read_metrics"]

BACKENDS = ("jsonl", "csv", "tensorboard", "wandb")
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
MEMBERS_JSON = "members.json"
TENSORBOARD_DIR = "tensorboard"
RESERVED = ("iteration", "env_steps", "member")


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``; ``"?"`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt_scalar(v: Any) -> str:
    x = float(np.mean(np.asarray(v, dtype=np.float64)))
    return f"{x:.4g}"


class ProgressBar:
    """Training progress in env steps, updated between chunks.

    Args:
      total_steps: env steps of the whole run (per member).
      desc: a short label printed first (e.g. the env id).
      stream: where to print; a terminal gets one refreshing line, anything else gets one
        line per update, at most one every ``min_interval`` seconds (plus the last one).
      enabled: False prints nothing (e.g. on non-zero hosts of a multi-host run).
      min_interval: seconds between printed lines; default 0.1 on a terminal, 10 otherwise.
      clock: the time source (seconds); injectable for tests.
    """

    def __init__(self, total_steps: int, desc: str = "", stream: IO[str] | None = None,
                 enabled: bool = True, min_interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.total = max(int(total_steps), 1)
        self.desc = desc
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.min_interval = (0.1 if self.tty else 10.0) if min_interval is None else min_interval
        self.clock = clock
        self.start = clock()
        self._first: tuple[float, int] | None = None   # (time, steps) of the first update
        self._last_print: float | None = None
        self._pending: str | None = None   # last line not printed (non-TTY rate limit)
        self._width = 0
        self.steps = 0
        self.closed = False

    def rate(self, now: float, steps: int) -> float | None:
        """Env steps/s since the first update (None until two updates have been seen)."""
        if self._first is None:
            return None
        t0, s0 = self._first
        if now <= t0 or steps <= s0:
            return None
        return (steps - s0) / (now - t0)

    def format(self, steps: int, now: float, scalars: Mapping[str, Any]) -> str:
        """The status line (no line ending)."""
        frac = min(steps / self.total, 1.0)
        elapsed = now - self.start
        rate = self.rate(now, steps)
        if rate is None and elapsed > 0 and steps > 0:
            rate = steps / elapsed  # first update: includes compile time
        eta = (self.total - steps) / rate if rate else None
        parts = [f"{self.desc} " if self.desc else "",
                 f"{100 * frac:3.0f}% {steps:,}/{self.total:,} steps",
                 f" | {rate:,.0f} steps/s" if rate else " | ? steps/s",
                 f" | elapsed {format_duration(elapsed)}",
                 f" | ETA {format_duration(eta) if steps < self.total else '0:00'}"]
        if scalars:
            parts.append(" | " + " ".join(f"{k} {_fmt_scalar(v)}" for k, v in scalars.items()))
        return "".join(parts)

    def update(self, env_steps_done: int, **scalars: Any) -> None:
        """Report progress (env steps done so far, per member) and a few scalars."""
        if self.closed:
            return
        now = self.clock()
        steps = int(env_steps_done)
        if self._first is None:
            self._first = (now, steps)
        self.steps = steps
        if not self.enabled:
            return
        line = self.format(steps, now, scalars)
        due = (self._last_print is None or now - self._last_print >= self.min_interval
               or steps >= self.total)
        if not due:
            self._pending = line
            return
        self._write(line)
        self._last_print = now
        self._pending = None

    def _write(self, line: str) -> None:
        if self.tty:
            pad = max(self._width - len(line), 0)
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Print the last held-back line (non-TTY) and end the line (TTY)."""
        if self.closed:
            return
        self.closed = True
        if not self.enabled:
            return
        if self._pending is not None:
            self._write(self._pending)
            self._pending = None
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as e:
        raise ImportError(
            "the 'wandb' log backend needs the wandb package, which is not installed: "
            "pip install wandb  (or pip install 'mimex-jax[wandb]'; or leave 'wandb' out "
            "of run.log_backends)") from e
    return wandb


class MetricsLogger:
    """Per-iteration metrics to JSON lines, CSV, TensorBoard and (optionally) W&B.

    Args:
      run_dir: output directory (created if needed). Existing ``metrics.jsonl`` /
        ``metrics.csv`` are appended to (a resumed run continues its logs; the CSV keeps
        its existing header).
      backends: any of ``jsonl``, ``csv``, ``tensorboard``, ``wandb``.
      wandb_project: W&B project (default ``mimex-jax``); used only with ``wandb``.
      labels: for a sweep, one dict per member (e.g. ``{"mask_ratio": 0.5, "seed": 1}``,
        as :func:`mimex_jax.sweep.run` returns); written to ``members.json`` and into every
        row of that member.
      config_dict: the resolved run config (``mimex_jax.config.to_dict``): W&B run config
        and a TensorBoard text summary.

    Rows: ``iteration`` (0-based index of the update), ``env_steps`` (env steps done by the
    end of that update, per member, ``(iteration + 1) * steps_per_iteration``), for sweeps
    ``member`` and the member's label fields (a label whose name is also a metric or a
    reserved column is written as ``label/<name>``), then every metric as a float.
    """

    def __init__(self, run_dir: str | Path, backends: Sequence[str] = ("jsonl", "csv",
                                                                        "tensorboard"),
                 wandb_project: str | None = None,
                 labels: Sequence[Mapping[str, Any]] | None = None,
                 config_dict: Mapping[str, Any] | None = None):
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            raise ValueError(f"unknown log backend(s) {unknown}; allowed: {list(BACKENDS)}")
        self.backends = tuple(dict.fromkeys(backends))
        self.run_dir = Path(run_dir)
        self.labels = [dict(lab) for lab in labels] if labels is not None else None
        self.config_dict = dict(config_dict) if config_dict is not None else None
        self._wandb = _import_wandb() if "wandb" in self.backends else None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl: IO[str] | None = None
        self._csv_file: IO[str] | None = None
        self._csv: csv.DictWriter | None = None
        self._csv_fields: list[str] | None = None
        self._tb: dict[int | None, Any] = {}
        self._wandb_run: Any = None
        self.closed = False
        if "jsonl" in self.backends:
            self._jsonl = open(self.run_dir / METRICS_JSONL, "a", encoding="utf-8")
        if self.labels is not None:
            (self.run_dir / MEMBERS_JSON).write_text(
                json.dumps([{"member": i, **lab} for i, lab in enumerate(self.labels)],
                           indent=1) + "\n", encoding="utf-8")
        if self._wandb is not None:
            cfg = dict(self.config_dict or {})
            if self.labels is not None:
                cfg["members"] = self.labels
            self._wandb_run = self._wandb.init(project=wandb_project or "mimex-jax",
                                               dir=str(self.run_dir), config=cfg)

    # ----------------------------------------------------------------------------------

    def _label_fields(self, member: int, metric_keys: Sequence[str]) -> dict[str, Any]:
        if self.labels is None or member >= len(self.labels):
            return {}
        out = {}
        for k, v in self.labels[member].items():
            name = f"label/{k}" if k in RESERVED or k in metric_keys else k
            out[name] = v
        return out

    def _tb_writer(self, member: int | None) -> Any:
        if member not in self._tb:
            from tensorboardX import SummaryWriter

            path = self.run_dir / TENSORBOARD_DIR
            if member is not None:
                path = path / f"member_{member:03d}"
            writer = SummaryWriter(logdir=str(path))
            if self.config_dict is not None:
                import yaml

                writer.add_text("config", "```\n" + yaml.safe_dump(self.config_dict,
                                                                     sort_keys=False) + "```")
            if member is not None and self.labels is not None and member < len(self.labels):
                writer.add_text("label", json.dumps(self.labels[member]))
            self._tb[member] = writer
        return self._tb[member]

    def _open_csv(self, fields: list[str]) -> None:
        path = self.run_dir / METRICS_CSV
        existing: list[str] | None = None
        if path.exists() and path.stat().st_size > 0:
            with open(path, newline="", encoding="utf-8") as f:
                existing = next(csv.reader(f), None)
        self._csv_fields = existing or fields
        self._csv_file = open(path, "a", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=self._csv_fields, restval="",
                                   extrasaction="ignore")
        if existing is None:
            self._csv.writeheader()

    def log_chunk(self, first_iteration: int, metrics: Mapping[str, Any],
                  steps_per_iteration: int) -> list[dict[str, Any]]:
        """Log one chunk of per-iteration metrics; returns the rows written.

        Args:
          first_iteration: the 0-based index of the chunk's first update.
          metrics: name -> array of shape ``[chunk]`` (single run) or ``[members, chunk]``
            (sweep); every array the same shape.
          steps_per_iteration: env steps per update, per member (``num_envs * rollout_len``).
        """
        if self.closed:
            raise RuntimeError("MetricsLogger.log_chunk after close()")
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in metrics.items()}
        if not arrays:
            return []
        shapes = {a.shape for a in arrays.values()}
        if len(shapes) != 1 or next(iter(shapes)) == () or len(next(iter(shapes))) > 2:
            raise ValueError("log_chunk: every metric must have the same shape, [chunk] or "
                             f"[members, chunk]; got { {k: a.shape for k, a in arrays.items()} }")
        shape = next(iter(shapes))
        sweep = len(shape) == 2
        members, chunk = (shape if sweep else (1, shape[0]))
        if sweep and self.labels is not None and len(self.labels) != members:
            raise ValueError(f"log_chunk: metrics have {members} members but {len(self.labels)} "
                             "labels were given")
        keys = list(arrays)
        rows: list[dict[str, Any]] = []
        for i in range(chunk):
            it = int(first_iteration) + i
            steps = (it + 1) * int(steps_per_iteration)
            for m in range(members):
                row: dict[str, Any] = {"iteration": it, "env_steps": steps}
                if sweep:
                    row["member"] = m
                    row.update(self._label_fields(m, keys))
                for k in keys:
                    row[k] = float(arrays[k][m, i] if sweep else arrays[k][i])
                rows.append(row)

        if self._jsonl is not None:
            self._jsonl.write("".join(json.dumps(r) + "\n" for r in rows))
            self._jsonl.flush()
        if "csv" in self.backends:
            if self._csv is None:
                self._open_csv(list(rows[0]))
            assert self._csv is not None and self._csv_file is not None
            self._csv.writerows(rows)
            self._csv_file.flush()
        if "tensorboard" in self.backends:
            for r in rows:
                w = self._tb_writer(r["member"] if sweep else None)
                for k in keys:
                    w.add_scalar(k, r[k], global_step=r["env_steps"])
            for w in self._tb.values():
                w.flush()
        if self._wandb_run is not None:
            for i in range(chunk):
                block = rows[i * members:(i + 1) * members]
                data: dict[str, Any] = {"iteration": block[0]["iteration"]}
                for r in block:
                    prefix = f"member_{r['member']:03d}/" if sweep else ""
                    data.update({prefix + k: r[k] for k in keys})
                self._wandb_run.log(data, step=block[0]["env_steps"])
        return rows

    def log_video(self, path: str | Path, frames: np.ndarray, fps: float, env_steps: int,
                  member: int | None = None, tag: str = "video/policy") -> None:
        """Log a video already written to ``path`` (:func:`mimex_jax.video.write_video`).

        TensorBoard gets the frames as an animated GIF image summary (what tensorboardX's
        ``add_video`` writes, encoded here with imageio/pillow, so moviepy is not needed);
        W&B gets ``wandb.Video(path)``. ``member``: the sweep member shown (None for a
        single run), as in :meth:`log_chunk`'s per-member TensorBoard directories. JSONL and
        CSV rows hold metrics only: the file in the run directory is the record there.
        """
        if self.closed:
            raise RuntimeError("MetricsLogger.log_video after close()")
        if "tensorboard" in self.backends:
            from tensorboardX.proto.summary_pb2 import Summary

            from mimex_jax.video import gif_bytes

            _, height, width, channels = np.asarray(frames).shape
            image = Summary.Image(height=height, width=width, colorspace=channels,
                                  encoded_image_string=gif_bytes(frames, fps))
            writer = self._tb_writer(member)
            # tensorboardX's own add_video ends in this call, after a moviepy encode
            writer._get_file_writer().add_summary(
                Summary(value=[Summary.Value(tag=tag, image=image)]), int(env_steps))
            writer.flush()
        if self._wandb_run is not None:
            prefix = f"member_{member:03d}/" if member is not None else ""
            self._wandb_run.log({prefix + tag: self._wandb.Video(str(path))},
                                step=int(env_steps))

    def close(self) -> None:
        """Flush and close every backend (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for f in (self._jsonl, self._csv_file):
            if f is not None:
                f.close()
        for w in self._tb.values():
            w.close()
        if self._wandb_run is not None:
            self._wandb_run.finish()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``<run_dir>/metrics.jsonl`` (or of the given ``.jsonl`` file), in order.

    A last line without its newline (a row that a running training is writing right now)
    is left out.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / METRICS_JSONL
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip() and line.endswith("\n")]
