"""What a benchmark ran on: date, platform, CPU count, jax backend, load average, git commit."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import jax


def git_commit() -> str | None:
    """HEAD of the checkout this package runs from (``+dirty`` with uncommitted changes to
    tracked files); None outside a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """Facts recorded beside every benchmark figure (UTC date, devices, load average)."""
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        # Other processes share the CPU; the 1/5/15-minute load averages say how much.
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        # The code the figures came from.
        "git_commit": git_commit(),
    }
