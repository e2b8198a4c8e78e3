"""benchmarks/device_suite.py: planning, budget and skip logic, one tiny item, the JSON.

The whole ``--tiny`` run (every item, minutes on 2 CPU cores) is behind ``-m slow``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import device_suite  # noqa: E402

ITEM_KEYS = {"name", "status", "elapsed_s"}


def check_structure(result: dict, out: Path) -> None:
    """The JSON on disk is the returned result; every item has figures or a reason."""
    on_disk = json.loads((out / "device_suite.json").read_text())
    assert on_disk["items"] == json.loads(json.dumps(result["items"]))
    assert (out / "device_suite.md").read_text().startswith("device: ")
    for key in ("device", "machine", "sizes", "targets_table", "targets", "total_s"):
        assert key in on_disk, key
    assert on_disk["machine"]["jax"] and "git_commit" in on_disk["machine"]
    assert on_disk["device"]["name"]
    assert set(on_disk["targets_table"]) == set(device_suite.TARGETS)
    for rec in on_disk["items"]:
        assert ITEM_KEYS <= set(rec), rec
        if rec["status"] == "ok":
            assert rec["figures"], rec
        else:
            assert rec["status"] in ("skipped", "error") and rec["reason"], rec


def test_plan_covers_every_item_of_the_issue() -> None:
    names = [i.name for i in device_suite.plan(device_suite.FULL, {})]
    assert names[:5] == ["matmul/float32", "matmul/tf32", "matmul/default", "matmul/bf16",
                         "reward_model"]
    for envs in (4096, 16384):
        for reward in ("none", "rnd", "icm", "mimex"):
            assert f"fused/{envs}/{reward}" in names
    assert "sweep/16x4096" in names
    assert {"drqv2/1024/none", "drqv2/1024/mimex", "pixels/1024/none",
            "pixels/1024/mimex"} <= set(names)
    assert len(names) == len(set(names))


def test_tiny_items(tmp_path: Path) -> None:
    """Two matmuls and the fused step measured at tiny sizes, written as JSON and a table."""
    result = device_suite.main(["--tiny", "--out", str(tmp_path), "--only",
                                "matmul/float32,matmul/bf16,fused/16/none"])
    check_structure(result, tmp_path)
    recs = {r["name"]: r for r in result["items"]}
    assert set(recs) == {"matmul/float32", "matmul/bf16", "fused/16/none"}
    fused = recs["fused/16/none"]
    assert fused["status"] == "ok", fused
    f = fused["figures"]
    assert f["env_steps_per_s"] > 0 and f["compile_s"] > 0 and f["flops"] > 0
    assert f["env_steps_per_iteration"] == 16 * 32 and f["num_envs"] == 16
    targets = {(t["target"], t["item"]) for t in result["targets"]}
    assert ("compile_time", "fused/16/none") in targets
    mm = recs["matmul/float32"]
    assert mm["status"] == "ok", mm
    assert mm["figures"]["gflops"] > 0 and mm["figures"]["n"] == device_suite.TINY["matmul_n"]
    assert recs["matmul/bf16"]["figures"]["dtype"] == "bfloat16"
    assert "device_peak_bytes_so_far" in mm  # null on CPU


def test_spent_budget_skips_with_reason(tmp_path: Path) -> None:
    result = device_suite.main(["--tiny", "--out", str(tmp_path), "--only",
                                "fused/,sweep/,reward_model", "--budget", "0"])
    check_structure(result, tmp_path)
    names = [r["name"] for r in result["items"]]
    assert names == ["reward_model", "fused/16/none", "fused/16/mimex", "fused/16/rnd",
                     "fused/16/icm", "sweep/4x16", "fused/32/none", "fused/32/mimex",
                     "fused/32/rnd", "fused/32/icm"]  # the bigger size's rnd, icm come last
    assert all(r["status"] == "skipped" and r["reason"].startswith("budget:")
               for r in result["items"])
    # Targets are listed (with no value) beside the figures, not judged at tiny sizes.
    assert result["targets"] and all(t["pass"] is None and t["value"] is None
                                     for t in result["targets"])


def test_item_cap_ends_an_overrunning_item() -> None:
    def slow(sizes: dict, deadline: float) -> dict:
        while True:
            pass

    rec = device_suite.run_item(device_suite.Item("x", slow, 0), {"item_cap_s": 0.3},
                                budget_end=1e18, tiny=True)
    assert rec["status"] == "skipped" and rec["reason"].startswith("time cap:"), rec
    assert rec["elapsed_s"] < 5


def test_errors_are_recorded_not_raised() -> None:
    def broken(sizes: dict, deadline: float) -> dict:
        raise ValueError("num_envs=3 is invalid")

    rec = device_suite.run_item(device_suite.Item("x", broken, 0), {"item_cap_s": 10},
                                budget_end=1e18, tiny=True)
    assert rec["status"] == "error" and "num_envs=3" in rec["reason"]


def test_pixels_skip_reason_or_available() -> None:
    why = device_suite.pixels_available()
    try:
        import mimex_jax.envs.pixels  # noqa: F401
    except ImportError:
        assert why is not None and why.startswith("pixels not available")


def test_targets_judged_at_full_sizes() -> None:
    fig = {"median_s": 0.1, "compile_s": 30.0, "env_steps_per_s": 2e6}
    results = {"fused/4096/none": {"status": "ok", "figures": fig},
               "fused/4096/mimex": {"status": "ok", "figures": {
                   **fig, "median_s": 0.2, "env_steps_per_s": 1.2e6, "compile_s": 70.0}},
               "reward_model": {"status": "ok", "figures": {"share_of_default_matmul": 0.4}}}
    got = {(t["target"], t["item"]): t["pass"] for t in device_suite.evaluate(results, False)}
    assert got == {("mimex_env_steps", "fused/4096/mimex"): True,
                   ("reward_model_share", "reward_model"): False,
                   ("compile_time", "fused/4096/none"): True,
                   ("compile_time", "fused/4096/mimex"): False,
                   ("bonus_cost", "fused/4096/mimex"): False}


@pytest.mark.slow
def test_full_tiny_run(tmp_path: Path) -> None:
    result = device_suite.main(["--tiny", "--out", str(tmp_path)])
    check_structure(result, tmp_path)
    assert len(result["items"]) == len(device_suite.plan(device_suite.TINY, {}))
    bad = [r for r in result["items"] if r["status"] == "error"]
    assert not bad, bad
