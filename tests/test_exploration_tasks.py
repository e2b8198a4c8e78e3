"""Tasks registered from outside the exploration benchmark score through their hooks.

A toy task registered here (a :class:`Task` subclass with its own per-seed score) must show
its score in the report, and a task whose env defines no success must show ``n/a`` for
every success-based number, never 0. The fast tests feed synthetic training metrics to
the real ``seed_row`` / report code; the slow one trains a toy task through ``main``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mimex_jax.bench import exploration as ex


class TwoHitTask(ex.Task):
    """Toy rule: a seed 'hits twice' when two iterations had a success."""

    def seed_scores(self, inst: ex.Instance, episodes: np.ndarray, successes: np.ndarray
                    ) -> dict[str, Any]:
        return {"two_hits": int((successes > 0).sum() >= 2)}

    def budget_text(self, budget: dict[str, Any]) -> str:
        return f"toy budget {budget['iterations']} iterations"

    def extra_tables(self, entries: Sequence[dict[str, Any]]) -> list[str]:
        return [f"toy extra table with {len(entries)} entries"]


def _instances(env_id: str, name: str):
    def make(args: argparse.Namespace) -> list[ex.Instance]:
        its = args.iterations or 3
        return [ex.Instance(task=name, label=name, hp=ex.ppo_hparams(), info={},
                            cfg=ex.train_config(env_id, 2, 8, its))]
    return make


@pytest.fixture
def toy_tasks() -> Iterator[tuple[ex.Task, ex.Task]]:
    hits = ex.register_task(TwoHitTask(
        "toy-hits", "toy DeepSea", _instances("gymnax:DeepSea-bsuite", "toy-hits"),
        scores=(("two_hits", "seeds with two hits", 0), ("final_return", "return", 2))))
    plain = ex.register_task(ex.Task(
        "toy-nosuccess", "toy CartPole (no success)",
        _instances("gymnax:CartPole-v1", "toy-nosuccess"),
        scores=(("final_success", "final success rate", 2),
                ("steps_to_first_success", "steps to 1st success", 0)),
        curve="return", has_success=False))
    try:
        yield hits, plain
    finally:
        ex.unregister_task("toy-hits")
        ex.unregister_task("toy-nosuccess")
    assert "toy-hits" not in ex.TASKS


def _metrics(successes: list[list[int]]) -> tuple[dict, dict]:
    """Training metrics of members with 4 episodes per iteration and the given successes."""
    s = np.array(successes, float)
    eps = np.full_like(s, 4.0)
    metrics = {"episodes": eps, "episode_success": s / 4, "episode_return": s - 1.0,
               "reward_int": np.zeros_like(s)}
    n = len(successes)
    final = {"greedy_success": np.zeros(n), "greedy_return": np.arange(n, dtype=float),
             "sampled_success": np.zeros(n), "sampled_return": np.zeros(n)}
    return metrics, final


def _entries(task: ex.Task, successes: list[list[int]], has_success: bool) -> list[dict]:
    inst = task.instances(argparse.Namespace(iterations=None, quick=True))[0]
    metrics, final = _metrics(successes)
    rows = [{"seed": i, **ex.seed_row(inst, inst.cfg, metrics, final, i, has_success)}
            for i in range(len(successes))]
    budget = {"env_steps_per_seed": inst.cfg.total_steps, "iterations": 3, "num_envs": 2,
              "rollout_len": 8}
    return [{"task": task.name, "instance": inst.label, "method": "none", "ablation": None,
             "value": None, "hparams": {"k_expl": 0.5}, "budget": budget, "info": {},
             "seeds": rows}]


def _report(tmp_path: Path, entries: list[dict], plot: bool = False) -> str:
    out = {"quick": True, "command": "x", "wall_seconds": 1.0, "seeds": [0, 1, 2, 3],
           "mimex_jax": "0", "machine": {"processor": "cpu", "cpu_count": 2, "jax": "0",
                                         "backend": "cpu", "date": "d", "loadavg": [0]},
           "results": entries}
    ex.write_reports(out, tmp_path / "r.json", plot_png=plot)
    return (tmp_path / "r.md").read_text()


def test_registered_task_scores_through_its_hooks(toy_tasks, tmp_path: Path) -> None:
    hits, _ = toy_tasks
    assert "toy-hits" in ex.build_parser().parse_args(["--tasks", "toy-hits"]).tasks
    # successes per iteration of 4 seeds: two hits, one hit, none, three hits
    entries = _entries(hits, [[1, 0, 2], [0, 1, 0], [0, 0, 0], [3, 1, 1]], True)
    assert [s["two_hits"] for s in entries[0]["seeds"]] == [1, 0, 0, 1]
    assert [s["reached_goal"] for s in entries[0]["seeds"]] == [True, True, False, True]
    md = _report(tmp_path, entries)
    assert "## toy-hits\n\ntoy DeepSea. Budget per seed: toy budget 3 iterations;" in md
    # hook scores 1, 0, 0, 1 -> IQM 0.5; reached goal 3 of 4; the extra table follows
    assert "| none | 0 [0, 1] | 1.50 [" in md and "| 3/4 | 1, 0, 0, 1 |" in md
    assert "toy extra table with 1 entries" in md
    # the DeepSea hook is not applied to another task's rows
    assert "solved" not in entries[0]["seeds"][0]


def test_task_without_success_shows_na_never_zero(toy_tasks, tmp_path: Path) -> None:
    _, plain = toy_tasks
    entries = _entries(plain, [[0, 0, 0], [0, 0, 0]], has_success=False)
    row = entries[0]["seeds"][0]
    assert all(row[k] is None for k in ex.SUCCESS_FIELDS)
    assert row["final_return"] == 0.0 and row["episodes"] == 12
    md = _report(tmp_path, entries, plot=True)
    assert "| none | n/a | n/a | n/a | n/a, n/a |" in md
    assert (tmp_path / "r_toy-nosuccess.png").stat().st_size > 1000  # the return curve
    # JSON round trip keeps the None (null), and compare still works on it
    again = json.loads(ex.dumps({"results": entries}))
    assert again["results"][0]["seeds"][0]["final_success"] is None
    assert ex.compare(again, {"results": entries})


def test_task_validation_and_env_success() -> None:
    with pytest.raises(ValueError, match="curve='success' is invalid with has_success=False"):
        ex.Task("t", "d", _instances("gymnax:CartPole-v1", "t"),
                scores=(("final_return", "r", 1),), has_success=False)
    with pytest.raises(ValueError, match="curve='speed' is invalid"):
        ex.Task("t", "d", _instances("gymnax:CartPole-v1", "t"),
                scores=(("final_return", "r", 1),), curve="speed")
    with pytest.raises(ValueError, match="already registered"):
        ex.register_task(ex.TASKS["deepsea"])
    # None asks the env; claiming success on an env without it is refused
    cartpole = ex.train_config("gymnax:CartPole-v1", 2, 8, 1)
    task = ex.Task("t", "d", _instances("gymnax:CartPole-v1", "t"),
                   scores=(("final_return", "r", 1),), curve="return")
    assert ex.success_defined(task, cartpole) is False
    assert ex.success_defined(ex.TASKS["deepsea"], ex.deepsea_instance(6, 2, 1).cfg) is True
    claims = ex.Task("t", "d", task.instances, scores=task.scores, has_success=True)
    with pytest.raises(ValueError, match="has_success=True is invalid for env"):
        ex.success_defined(claims, cartpole)


@pytest.mark.slow
def test_registered_task_end_to_end(toy_tasks, tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    assert ex.main(["--tasks", "toy-hits", "toy-nosuccess", "--methods", "none", "--seeds",
                    "2", "--iterations", "2", "--eval-episodes", "2", "--no-ablations",
                    "--no-plot", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    by_task = {r["task"]: r for r in data["results"]}
    assert all("two_hits" in s for s in by_task["toy-hits"]["seeds"])
    assert all(s["final_success"] is None and s["reached_goal"] is None
               for s in by_task["toy-nosuccess"]["seeds"])
    md = out.with_suffix(".md").read_text()
    assert "## toy-nosuccess" in md and "| none | n/a | n/a | n/a |" in md
