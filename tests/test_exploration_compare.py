"""Exploration benchmark: ``--compare`` across config fields added later, probability of
improvement in the report, per-task seed counts. Synthetic records only, no training."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mimex_jax.bench import exploration as ex
from mimex_jax.bench.exploration import report, runner
from mimex_jax.bench.exploration.cli import default_tasks, plan_seeds
from mimex_jax.trainer import TrainConfig


def _record(method: str = "none", final: list[float] | None = None, **cfg_over) -> dict:
    """A result entry as the runner writes it, with the current TrainConfig's fields."""
    cfg = dataclasses.replace(ex.train_config("gymnax:MountainCar-v0", 4, 8, 2),
                              **cfg_over)
    final = [0.0, 0.5, 1.0] if final is None else final
    seeds = [{"seed": i, "reached_goal": f > 0, "final_success": f, "final_return": f - 1,
              "steps_to_first_success": 64, "successes_per_iteration": [0, int(f > 0)]}
             for i, f in enumerate(final)]
    return runner._json({
        "task": "mountaincar", "instance": "mountaincar", "method": method, "ablation": None,
        "value": None, "train_seconds_for_program": 1.0, "config": dataclasses.asdict(cfg),
        "hparams": {k: float(v) for k, v in ex.ppo_hparams()._asdict().items()},
        "budget": {"env_steps_per_seed": 64, "iterations": 2, "num_envs": 4,
                   "rollout_len": 8}, "info": {}, "seeds": seeds})


def _older(rec: dict, drop_cfg: tuple[str, ...] = (), drop_hp: tuple[str, ...] = ()
           ) -> dict:
    """``rec`` as a file written before the fields ``drop_*`` existed would hold it."""
    return {**rec, "config": {k: v for k, v in rec["config"].items() if k not in drop_cfg},
            "hparams": {k: v for k, v in rec["hparams"].items() if k not in drop_hp}}


ADDED = ("agent", "bonus", "drqv2", "observation", "pixels")


def test_compare_reads_missing_config_keys_as_defaults(capsys) -> None:
    new = _record()
    old = _older(new, ADDED, ("gamma_int",))
    old = {**old, "train_seconds_for_program": 50.0}          # timing is ignored
    assert ex.compare({"results": [new]}, {"results": [old]}, "old.json")
    out = capsys.readouterr().out
    assert "1 run(s) identical, 0 differ" in out
    assert ("read as the default (missing from the reference, default value here): "
            "config.agent (1 run(s)), config.bonus (1 run(s)), config.drqv2 (1 run(s)), "
            "config.observation (1 run(s)), config.pixels (1 run(s)), "
            "hparams.gamma_int (1 run(s))") in out


def test_compare_still_counts_real_differences(capsys) -> None:
    # a key missing from the reference whose new value is NOT the default
    new = _record(bonus=(("lr", 1e-3),))
    assert new["config"]["bonus"] != runner.config_defaults()["config"]["bonus"]
    assert not ex.compare({"results": [new]}, {"results": [_older(new, ADDED)]})
    out = capsys.readouterr().out
    assert "0 run(s) identical, 1 differ" in out and "differs: mountaincar|none|None|None: "\
        "config.bonus" in out
    assert "config.agent (1 run(s))" in out                 # the others were defaulted
    # a key present in both with different values
    a, b = _record(), _record(num_envs=8)
    assert not ex.compare({"results": [a]}, {"results": [_older(b, ADDED)]})
    assert "config.num_envs" in capsys.readouterr().out
    # a different result with the config defaulted
    a, b = _record(final=[0.0, 0.5, 1.0]), _record(final=[0.0, 0.5, 0.75])
    assert not ex.compare({"results": [a]}, {"results": [_older(b, ADDED)]})
    out = capsys.readouterr().out
    assert "final_success" in out and "final_return" in out
    # a different seed count
    a, b = _record(final=[0.0, 0.5]), _record(final=[0.0, 0.5, 1.0])
    assert not ex.compare({"results": [a]}, {"results": [b]})
    assert "seeds (count 2 vs 3)" in capsys.readouterr().out


def test_fill_defaults_only_adds_default_valued_missing_keys() -> None:
    d = runner.config_defaults()
    assert d["config"]["agent"] == "ppo" and d["config"]["pixels"] == []
    assert d["hparams"]["gamma_int"] == 0.99
    assert set(d["config"]) == {f.name for f in dataclasses.fields(TrainConfig)} - {
        f.name for f in dataclasses.fields(TrainConfig) if f.default is dataclasses.MISSING}
    new = {"config": {"agent": "ppo", "observation": "pixels", "num_envs": 4}}
    ref = {"config": {"num_envs": 8}}
    filled, keys = runner.fill_defaults(new, ref, d)
    assert keys == ["config.agent"]
    assert filled["config"] == {"num_envs": 8, "agent": "ppo"} and ref == {
        "config": {"num_envs": 8}}


def _entry(task: str, method: str, key: str, values: list[float | None]) -> dict:
    seeds = [{"seed": i, "final_success": 0.0, "steps_to_first_success": 64, key: v,
              "reached_goal": v is not None and v > 0} for i, v in enumerate(values)]
    return {"task": task, "instance": task, "method": method, "ablation": None,
            "value": None, "hparams": {"k_expl": 0.5},
            "budget": {"env_steps_per_seed": 64, "iterations": 2, "num_envs": 4,
                       "rollout_len": 8}, "info": {}, "seeds": seeds}


def test_probability_of_improvement_table() -> None:
    task = ex.TASKS["mountaincar"]
    k = "final_success"
    entries = [_entry("mountaincar", "none", k, [0.0] * 5),
               _entry("mountaincar", "rnd", k, [1.0] * 5),
               _entry("mountaincar", "icm", k, [0.0, 0.0, 1.0, 1.0, 1.0]),
               _entry("mountaincar", "mimex", k, [1.0] * 5)]
    table = report.improvement_table(task, entries)
    assert "(higher final success rate)" in table
    assert "| method | P(> none) [95% CI] | P(> rnd) [95% CI] | P(> icm) [95% CI] | seeds |" \
        in table
    # beats every seed of none; ties every seed of rnd (1/2); icm: 2 of 5 below, 3 ties
    # -> (2 * 1 + 3 * 0.5) / 5 = 0.7
    row = next(line for line in table.splitlines() if line.startswith("| mimex |"))
    cells = [c.strip() for c in row.split("|")[2:5]]
    assert cells[0] == "1.00 [1.00, 1.00]" and cells[1] == "0.50 [0.50, 0.50]"
    p, ci = cells[2].split(" ", 1)
    assert p == "0.70"
    lo, hi = (float(x) for x in ci.strip("[]").split(","))
    assert lo < 0.7 < hi and lo >= 0.5 and hi <= 1.0
    assert row.endswith("| mimex 5; none 5; rnd 5; icm 5 |")
    # no MIMEx method, or no baseline: no table
    assert report.improvement_table(task, entries[:3]) is None
    assert report.improvement_table(task, entries[3:]) is None


def test_probability_of_improvement_direction_and_undefined() -> None:
    # fewer steps to the first success is better
    assert report.poi_cell([10, 10], [20, 20], lower_is_better=True).startswith("1.00")
    assert report.poi_cell([10, 10], [20, 20], lower_is_better=False).startswith("0.00")
    assert report.poi_cell([1.0, None], [0.0, 0.0], lower_is_better=False) == ex.NA
    # a task scored by "largest size solved" (DeepSea): per-seed scores from its hook
    ds = ex.TASKS["deepsea"]
    entries = [{**_entry("deepsea", m, "solved", [s > 0 for s in solved]),
                "info": {"size": 10}} for m, solved in
               (("none", [0, 0, 0, 0]), ("mimex", [1, 1, 0, 0]))]
    table = report.improvement_table(ds, entries)
    row = next(line for line in table.splitlines() if line.startswith("| mimex |"))
    assert row.startswith("| mimex | 0.75 [")   # 2 wins of 4, 2 ties: (8 + 8 * 0.5) / 16


def test_report_shows_poi_and_per_task_seeds(tmp_path: Path) -> None:
    k = "final_success"
    entries = [_entry("mountaincar", "none", k, [0.0] * 5),
               _entry("mountaincar", "mimex", k, [1.0] * 5)]
    out = {"quick": True, "command": "x", "wall_seconds": 1.0, "git_commit": "abc123",
           "seeds": {"mountaincar": [0, 1, 2, 3, 4], "deepsea": list(range(10))},
           "mimex_jax": "0", "machine": {"processor": "cpu", "cpu_count": 2, "jax": "0",
                                         "backend": "cpu", "date": "d", "loadavg": [0]},
           "results": entries}
    ex.write_reports(out, tmp_path / "r.json", plot_png=False)
    md = (tmp_path / "r.md").read_text()
    assert "Seeds: mountaincar 5 (0-4), deepsea 10 (0-9)" in md and "git commit abc123" in md
    assert "Probability of improvement" in md and "| mimex | 1.00 [1.00, 1.00] |" in md


def _args(*argv: str) -> argparse.Namespace:
    args = ex.build_parser().parse_args(list(argv))
    if args.no_ablations:
        args.ablations = []
    return args


def test_seed_counts_per_task() -> None:
    args = _args()
    assert args.seeds is None
    assert ex.TASKS["deepsea"].num_seeds(args) == 10
    assert ex.TASKS["minigrid-doorkey"].num_seeds(args) == 10
    for name, task in ex.TASKS.items():
        assert task.seeds >= 5 and task.quick_seeds >= 5, name
    assert ex.TASKS["mountaincar"].num_seeds(_args("--quick")) == 5
    assert ex.TASKS["deepsea"].num_seeds(_args("--seeds", "3")) == 3
    seeds = plan_seeds(_args("--tasks", "mountaincar", "--ablation-tasks", "deepsea"))
    assert seeds == {"mountaincar": list(range(5)), "deepsea": list(range(10))}
    assert plan_seeds(_args("--tasks", "mountaincar", "--no-ablations", "--seeds", "2")) == {
        "mountaincar": [0, 1]}
    with pytest.raises(ValueError, match="quick_seeds=0 is invalid"):
        ex.Task("t", "d", ex.TASKS["deepsea"].instances, scores=(("final_return", "r", 1),),
                curve="return", quick_seeds=0)
    assert set(default_tasks()) == {n for n, t in ex.TASKS.items() if t.default}


def _craftax_entry(method: str, returns: list[list[float]], episodes: list[list[int]]) -> dict:
    """A craftax-classic entry from synthetic training metrics through the real seed_row."""
    task = ex.TASKS["craftax-classic"]
    inst = task.instances(argparse.Namespace(iterations=4, quick=False))[0]
    eps = np.array(episodes, float)
    metrics = {"episodes": eps, "episode_return": np.array(returns, float),
               "episode_achievements": 10.0 * np.array(returns, float),
               "episode_success": np.zeros_like(eps), "reward_int": np.zeros_like(eps)}
    rows = [{"seed": i, **ex.seed_row(inst, inst.cfg, metrics, None, i, False)}
            for i in range(len(returns))]
    budget = {"env_steps_per_seed": inst.cfg.total_steps, "iterations": 4, "num_envs": 16,
              "rollout_len": 32}
    return {"task": task.name, "instance": inst.label, "method": method, "ablation": None,
            "value": None, "hparams": {"k_expl": 0.5}, "budget": budget, "info": inst.info,
            "seeds": rows}


def test_craftax_task_scores_late_training_episodes(tmp_path: Path) -> None:
    task = ex.TASKS["craftax-classic"]
    assert not task.default and not task.final_eval and task.has_success is False
    assert "craftax-classic" not in default_tasks() and "craftax" in ex.TASKS
    inst = task.instances(argparse.Namespace(iterations=None, quick=False))[0]
    assert inst.cfg.env_id == "craftax:Craftax-Classic-Symbolic-v1"
    assert inst.cfg.total_steps == 16 * 32 * 32 and inst.info["max_return"] == 22.0
    # 4 iterations -> the last 1 (25%) scores; seed 1 finished no episode there
    e = _craftax_entry("none", [[1.0, 2.0, 3.0, 2.2], [5.0, 0.0, 0.0, 0.0]],
                       [[2, 0, 1, 2], [1, 0, 0, 0]])
    s0, s1 = e["seeds"]
    assert s0["late_iterations"] == 1 and s0["late_episodes"] == 2
    assert s0["late_return"] == pytest.approx(2.2)
    assert s0["late_return_pct_max"] == pytest.approx(10.0)
    assert s0["late_achievements_pct"] == pytest.approx(22.0)
    assert s1["late_return"] is None and s1["late_return_pct_max"] is None
    assert s0["final_return"] is None and s0["reached_goal"] is None
    assert s0["achievements_per_iteration"][1] is None or np.isnan(
        s0["achievements_per_iteration"][1])
    assert ex.runner.brief(e).endswith("no final eval")
    # the weighted mean over more than one iteration
    assert ex.tasks.episode_weighted_mean(np.array([1.0, 4.0]), np.array([1, 3])) == 3.25
    assert ex.tasks.late_window(32) == 8 and ex.tasks.late_window(2) == 1


def test_craftax_report_puts_published_scores_beside_ours(tmp_path: Path) -> None:
    entries = [_craftax_entry(m, [[0.0, 0.0, 0.0, r]] * 5, [[0, 0, 0, 1]] * 5)
               for m, r in (("none", 1.1), ("mimex", 2.2))]
    out = {"quick": False, "command": "x", "wall_seconds": 1.0, "seeds": {}, "mimex_jax": "0",
           "machine": {"processor": "cpu", "cpu_count": 2, "jax": "0", "backend": "cpu",
                       "date": "d", "loadavg": [0]}, "results": entries}
    ex.write_reports(out, tmp_path / "c.json", plot_png=False)
    md = (tmp_path / "c.md").read_text()
    assert "## craftax-classic" in md and "= 0.2% of 1M" in md
    assert "| none | 5.0 [5.0, 5.0] | 1.10 [1.10, 1.10] | 11.0 [11.0, 11.0] | n/a |" in md
    assert "| published | PPO (ours: none) | 1,000,000,000 | 90 |" in md
    assert "| this run, 5 seeds, IQM [95% CI] | mimex | 2,048 | 10.0 [10.0, 10.0] |" in md
    assert "| mimex | 1.00 [1.00, 1.00] |" in md          # P(mimex > none)
    # the full game cites the README scoreboard at both budgets
    table = ex.tasks.craftax_published_table(entries, "craftax:Craftax-Symbolic-v1")
    assert "| published | RND (ours: rnd) | 1,000,000 | 2.2 |" in table
    assert "| published | E3B | 1,000,000,000 | 11 |" in table
