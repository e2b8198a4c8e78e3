"""The exploration benchmark (mimex_jax.bench.exploration): rules, ablation plan, reports.

The fast tests check the bsuite solve rule, which programs the ablations run and the report
writer on a synthetic result. The slow ones run the benchmark end to end: a tiny run
(~1 min) and the whole ``--quick`` mode, which must finish within its 15-minute budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest

from mimex_jax.bench import exploration as ex


def test_bsuite_solve_rule() -> None:
    episodes = np.full(4, 10)
    assert ex.bsuite_deep_sea_solve(episodes, np.array([0, 0, 0, 0])) == (False, None)
    # cumulative successes 0, 5, 9 of 10, 20, 30 episodes: bad fraction 1, 0.75 -> solved at 20
    assert ex.bsuite_deep_sea_solve(episodes, np.array([0, 5, 4, 0])) == (True, 20)
    # exactly 0.8 bad is not below the threshold
    assert ex.bsuite_deep_sea_solve(np.array([10]), np.array([2])) == (False, None)


def _args(**kw) -> argparse.Namespace:
    return ex.build_parser().parse_args([f"--{k}={v}" for k, v in kw.items()])


def test_ablation_programs_vary_one_factor_and_skip_the_base() -> None:
    inst = ex.ablation_instances(_args())[0]
    programs = ex.ablation_programs(inst, list(ex.ABLATIONS))
    names = [p[0] for p in programs]
    assert names == ["base", "mask_ratio", "k_expl", "seq_len=2", "seq_len=3", "seq_len=10",
                     "mask=last_token", "mask=full", "n_mask=5", "lr=0.001"]
    base_cfg = programs[0][1]
    assert base_cfg.reward == "mimex" and base_cfg.seq_len == 5
    assert dict(base_cfg.mimex) == {"lr": 1e-4, "mask_ratio": 0.7}
    by_name = dict((p[0], p) for p in programs)
    # hyperparameter factors: one program, every value (and the base's) as members
    ratios = [hp.mask_ratio for _, hp in by_name["mask_ratio"][2]]
    assert ratios == [0.3, 0.5, 0.7, 0.9]
    k = [hp.k_expl for _, hp in by_name["k_expl"][2]]
    assert k == [0.01, 0.05, 0.5, 1.0]          # DeepSea's k_expl is 1.0
    # shape factors: one program per value, only that field changed
    assert by_name["seq_len=10"][1] == dataclasses.replace(base_cfg, seq_len=10)
    assert dict(by_name["n_mask=5"][1].mimex)["n_mask"] == 5
    assert dict(by_name["mask=full"][1].mimex)["mask"] == "full"


def test_methods_use_the_paper_mimex_and_zero_k_without_bonus() -> None:
    inst = ex.TASKS["deepsea"].instances(_args())[0]
    cfg, hp = ex.method_config(inst, ex.METHODS["none"])
    assert cfg.reward == "none" and hp.k_expl == 0.0
    cfg, hp = ex.method_config(inst, ex.METHODS["mimex"])
    assert cfg.reward == "mimex" and hp.k_expl == 1.0 and hp.mask_ratio == 0.7
    assert dict(cfg.mimex)["lr"] == 1e-4
    labels = [i.label for i in ex.TASKS["deepsea"].instances(_args())]
    assert labels == [f"deepsea-{n}" for n in range(10, 31, 4)]


def test_centred_methods_and_minigrid_tasks() -> None:
    """``<bonus>-centered`` / ``-batchcentered`` are the bonus's own config plus
    ``center_intrinsic``; the harder
    MiniGrid tasks are opt-in, 10 seeds, 262k env steps per seed on MiniGrid's own limit."""
    inst = ex.TASKS["minigrid-keycorridor"].instances(_args())[0]
    for name in ("rnd", "icm", "mimex"):
        plain, _ = ex.method_config(inst, ex.METHODS[name])
        centred, hp = ex.method_config(inst, ex.METHODS[f"{name}-centered"])
        assert centred == dataclasses.replace(plain, center_intrinsic="running")
        batch, _ = ex.method_config(inst, ex.METHODS[f"{name}-batchcentered"])
        assert batch == dataclasses.replace(plain, center_intrinsic="batch")
        assert plain.center_intrinsic == "none" and hp.k_expl == 0.5
    assert f"{name}-centered" not in ex.DEFAULT_METHODS
    for task, env in (("minigrid-keycorridor", "minigrid:KeyCorridorS3R3"),
                      ("minigrid-doorkey-8x8", "minigrid:DoorKey-8x8"),
                      ("minigrid-multiroom", "minigrid:MultiRoom-N4-S5")):
        t = ex.TASKS[task]
        assert not t.default and t.seeds == 10
        cfg = t.instances(_args())[0].cfg
        assert cfg.env_id == env and cfg.total_steps == 262_144 and cfg.episode_length is None


def _fake_entry(task: str, instance: str, method: str, successes: list[list[int]],
                size: int | None = None, ablation: str | None = None, value=None) -> dict:
    seeds = []
    for i, succ in enumerate(successes):
        eps = [4] * len(succ)
        first = next((j for j, s in enumerate(succ) if s), None)
        seeds.append({"seed": i, "reached_goal": first is not None,
                      "steps_to_first_success": 64 * (len(succ) if first is None else first + 1),
                      "episodes_to_first_success": None if first is None else 4 * (first + 1),
                      "solved": sum(succ) >= 0.2 * 4 * len(succ), "final_success": i / 4,
                      "final_return": float(i), "episodes_per_iteration": eps,
                      "successes_per_iteration": succ,
                      "return_per_iteration": [float(s) for s in succ]})
    return {"task": task, "instance": instance, "method": method, "ablation": ablation,
            "value": value, "config": {"seq_len": 5, "mimex": [["lr", 1e-4]]},
            "hparams": {"k_expl": 1.0},
            "budget": {"env_steps_per_seed": 192, "iterations": 3, "num_envs": 4,
                       "rollout_len": 16},
            "info": {"size": size, "episodes_per_seed": 12}, "seeds": seeds}


def test_reports_from_a_synthetic_result(tmp_path: Path) -> None:
    good, bad = [[0, 4, 4]] * 4, [[0, 0, 0]] * 4
    results = [
        _fake_entry("deepsea", "deepsea-10", "none", bad, size=10),
        _fake_entry("deepsea", "deepsea-10", "mimex", good, size=10),
        _fake_entry("deepsea", "deepsea-14", "none", bad, size=14),
        _fake_entry("deepsea", "deepsea-14", "mimex", [[0, 0, 4]] * 2 + bad[:2], size=14),
        _fake_entry("mountaincar", "mountaincar", "none", bad),
        _fake_entry("deepsea", "deepsea-12", "mimex", good, size=12, ablation="base"),
        _fake_entry("deepsea", "deepsea-12", "mimex", bad, size=12, ablation="seq_len",
                    value=2),
    ]
    out = {"quick": True, "command": "x", "wall_seconds": 1.0, "seeds": [0, 1, 2, 3],
           "mimex_jax": "0", "machine": {"processor": "cpu", "cpu_count": 2, "jax": "0",
                                         "backend": "cpu", "date": "d", "loadavg": [0]},
           "results": results}
    path = tmp_path / "r.json"
    ex.write_reports(out, path, plot_png=True)
    md = path.with_suffix(".md").read_text()
    # DeepSea score = largest size solved per seed: mimex 14, 14, 10, 10 -> IQM 12
    assert "| mimex | 12.0 [" in md
    assert "| none | 0.0 [0.0, 0.0] | 0/4 (any size)" in md
    assert "| 14 | mimex | 2/4 | 0/4 | 2/4 |" in md
    assert "| mountaincar" not in md and "| none | 0.38 [" in md  # final success 0..0.75
    assert "| paper defaults |  | 128 [128, 128] | 4/4 | 1.00 [1.00, 1.00] |" in md
    assert "| seq_len | 2 | 192 [192, 192] | 0/4 | 0.00 [0.00, 0.00] |" in md
    for name in ("r_deepsea.png", "r_mountaincar.png", "r_ablations.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="--seeds=0"):
        ex.main(["--seeds", "0"])


@pytest.mark.slow
def test_exploration_tiny_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "exploration.json"
    ex.main(["--tasks", "deepsea", "--sizes", "6", "--seeds", "2", "--methods", "none",
             "mimex", "--iterations", "3", "--chunk", "2", "--eval-episodes", "8",
             "--ablations", "seq_len", "--out", str(out), "--no-plot"])
    data = json.loads(out.read_text())
    assert data["seeds"] == {"deepsea": [0, 1], "mountaincar-continuous": [0, 1]}
    assert data["complete"]
    assert data["git_commit"] and data["machine"]["git_commit"]
    assert data["versions"]["jax"]
    main = [r for r in data["results"] if r["ablation"] is None]
    assert [r["method"] for r in main] == ["none", "mimex"]
    for r in main:
        assert r["instance"] == "deepsea-6" and r["budget"]["iterations"] == 3
        for s in r["seeds"]:
            assert len(s["successes_per_iteration"]) == 3
            assert s["reached_goal"] == (s["success_episodes"] > 0)
            assert 0.0 <= s["final_success"] <= 1.0
    abl = [(r["instance"], r["ablation"], r["value"]) for r in data["results"]
           if r["ablation"] is not None]
    assert ("deepsea-12", "seq_len", 10) in abl and ("deepsea-12", "base", None) in abl
    # rerun of the same seeds with --resume skips everything and changes nothing
    before = out.read_text()
    ex.main(["--tasks", "deepsea", "--sizes", "6", "--seeds", "2", "--methods", "none",
             "mimex", "--iterations", "3", "--chunk", "2", "--eval-episodes", "8",
             "--ablations", "seq_len", "--out", str(out), "--no-plot", "--resume"])
    strip = lambda d: [{k: v for k, v in r.items() if k != "train_seconds_for_program"}
                       for r in json.loads(d)["results"]]
    assert strip(out.read_text()) == strip(before)


@pytest.mark.slow
def test_quick_mode_within_budget(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    ex.main(["--quick", "--out", str(tmp_path / "q.json")])
    # Measured 924 s (cold XLA cache, idle 2-core VM, 2026-12-02): 10 seeds for DeepSea
    # and MiniGrid and the DeepSea ablations (508 s of it). The bound catches a
    # regression of a few minutes, not noise.
    assert time.perf_counter() - t0 < 20 * 60
    data = json.loads((tmp_path / "q.json").read_text())
    assert {r["task"] for r in data["results"]} == {n for n, t in ex.TASKS.items()
                                                    if t.default}
    assert {r["ablation"] for r in data["results"]} == {None, "base", *ex.ABLATIONS}


def test_compare_reports_identical_and_differing_runs(capsys) -> None:
    a = _fake_entry("mountaincar", "mountaincar", "none", [[0, 1, 1]] * 3)
    b = {**a, "train_seconds_for_program": 99.0}           # timing differs only
    assert ex.compare({"results": [a]}, {"results": [b]})
    c = _fake_entry("mountaincar", "mountaincar", "none", [[0, 0, 1]] * 3)
    assert not ex.compare({"results": [a]}, {"results": [c]})
    out = capsys.readouterr().out
    assert "1 run(s) identical" in out and "differs: mountaincar|none|None|None:" in out
    assert "successes_per_iteration" in out
    # nothing in common is not a successful reproduction
    assert not ex.compare({"results": [a]}, {"results": []})
