"""The README's code examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(name: str) -> str:
    """The ```python block right after ``<!-- example: name -->`` in the README."""
    m = re.search(rf"<!-- example: {re.escape(name)} -->\s*```python\n(.*?)```",
                  README.read_text(), re.S)
    assert m, f"README has no example {name!r}"
    return m.group(1)


def test_own_loop_example_runs(capsys) -> None:
    code = readme_block("own-loop")
    assert len(code.splitlines()) <= 40
    scope: dict = {}
    exec(compile(code, "README.md:own-loop", "exec"), scope)
    rewards, r_int = np.asarray(scope["rewards"]), np.asarray(scope["r_int"])
    assert rewards.shape == (2, 32, 16) and r_int.shape == (2, 32, 16)
    assert np.all(np.isfinite(rewards)) and np.all(r_int > 0)
    # the two seeds are different runs
    assert not np.allclose(r_int[0], r_int[1])
    assert capsys.readouterr().out.startswith("(2, 32, 16)")
