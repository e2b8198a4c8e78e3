"""What a benchmark ran on: date, platform, CPU count, jax backend and load average."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from typing import Any

import jax


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
    }
