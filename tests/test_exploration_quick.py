"""The exploration benchmark runs end to end and writes its JSON (marked slow, ~1-2 min on CPU).

Runs ``benchmarks/exploration.py`` on DeepSea size 8 with 2 seeds, two methods and a tiny
budget; checks the result structure and the solve rule, not learning.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_bsuite_solve_rule() -> None:
    from exploration import bsuite_deep_sea_solve

    episodes = np.full(4, 10)
    assert bsuite_deep_sea_solve(episodes, np.array([0, 0, 0, 0])) == (False, None)
    # cumulative successes 0, 5, 9 of 10, 20, 30 episodes: bad fraction 1, 0.75 -> solved at 20
    assert bsuite_deep_sea_solve(episodes, np.array([0, 5, 4, 0])) == (True, 20)
    # exactly 0.8 bad is not below the threshold
    assert bsuite_deep_sea_solve(np.array([10]), np.array([2])) == (False, None)


@pytest.mark.slow
def test_exploration_quick(tmp_path: Path) -> None:
    import exploration

    out = tmp_path / "exploration.json"
    exploration.main(["--quick", "--sizes", "8", "--seeds", "2", "--methods", "none", "mimex",
                      "--episodes", "128", "--chunk", "2", "--eval-episodes", "16",
                      "--out", str(out), "--no-plot"])
    data = json.loads(out.read_text())
    assert data["seeds"] == [0, 1]
    assert [r["method"] for r in data["results"]] == ["none", "mimex"]
    for r in data["results"]:
        assert r["instance"] == "deepsea-8"
        assert r["budget"]["episodes_per_seed"] == 128
        assert len(r["seeds"]) == 2
        for s in r["seeds"]:
            assert len(s["successes_per_iteration"]) == r["budget"]["iterations"]
            assert s["reached_goal"] == (s["goal_episodes"] > 0)
            assert 0.0 <= s["final_sampled_success"] <= 1.0
    assert "| deepsea-8 | mimex |" in data["table_markdown"]
