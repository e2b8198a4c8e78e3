"""Per-setting sweep results (mimex_jax.report, ``mimex-jax report``) on a real tiny sweep.

One random search (2 log-uniform learning rates x 2 seeds, ``tests/data/tiny.yaml``) is
trained once for the module; every expected number below is recomputed from the files of
that run (``members.json``, ``eval.json``, ``metrics.jsonl``), not taken from the report.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from mimex_jax import plot, report
from mimex_jax.bench import stats
from mimex_jax.cli import main
from mimex_jax.logging import read_metrics

TINY = str(Path(__file__).resolve().parent / "data" / "tiny.yaml")
# sweep seed 0 draws lr = 8.5e-3 and 4.3e-5: one setting learns DeepSea 4x4, one does not
RANDOM = "sweep.random={n: 2, seed: 0, ranges: {lr: [1.0e-5, 3.0e-2, log]}}"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("runs") / "sweep"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["sweep", "-c", TINY, "--set", RANDOM, "--seeds", "2", "--out", str(out),
                     "--no-progress"])
    assert code == 0
    return out, buf.getvalue()


def _report_text(stdout: str) -> str:
    """The report block of a command's output: from the caption up to the 'wrote' line."""
    lines = stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.endswith("per member)"))
    end = next(i for i, ln in enumerate(lines) if ln.startswith("wrote "))
    return "\n".join(lines[start:end])


def _table_rows(text: str) -> list[list[str]]:
    rows = [ln for ln in text.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]


def _by_setting(run: Path) -> dict[float, list[int]]:
    groups: dict[float, list[int]] = {}
    for m in json.loads((run / "members.json").read_text()):
        groups.setdefault(m["lr"], []).append(m["member"])
    return groups


def _last_chunk(run: Path, member: int, first: int, metric: str, until: int = 4) -> float:
    """Mean of ``metric`` over iterations ``first .. until - 1`` of one member."""
    rows = [r for r in read_metrics(run)
            if r["member"] == member and first <= r["iteration"] < until]
    return float(np.mean([r[metric] for r in rows]))


def test_table_rows_are_the_aggregates_of_their_members(sweep) -> None:
    run, stdout = sweep
    text = _report_text(stdout)
    rows = _table_rows(text)
    head = [c.strip() for c in text.splitlines()[4].strip("|").split("|")]
    assert head[:3] == ["rank", "lr", "seeds"] and len(rows) == 2
    ev = json.loads((run / "eval.json").read_text())["members"]
    groups = _by_setting(run)
    assert sorted(len(v) for v in groups.values()) == [2, 2]
    expected = {}
    for lr, members in groups.items():
        ret = [ev[i]["return"] for i in members]
        succ = [ev[i]["success"] for i in members]
        train = [_last_chunk(run, i, 3, "episode_return") for i in members]  # chunk 1: it 3
        expected[lr] = (stats.iqm(ret), ret, stats.iqm(succ), stats.iqm(train), train)
    assert len({round(v[0], 3) for v in expected.values()}) == 2  # the settings differ
    order = sorted(expected, key=lambda lr: -expected[lr][0])
    summary = json.loads((run / "summary.json").read_text())
    assert [e["setting"]["lr"] for e in summary["settings"]] == order
    for row, lr, entry in zip(rows, order, summary["settings"], strict=True):
        iqm_ret, ret, iqm_succ, iqm_train, train = expected[lr]
        assert float(row[1]) == pytest.approx(lr, rel=1e-3)
        assert row[2] == "2"
        assert row[3].startswith(f"{iqm_ret:.3f} [")
        assert row[3].endswith(f"({min(ret):.3f}, {max(ret):.3f})")
        assert row[4].startswith(f"{iqm_succ:.3f} [")
        assert row[5].startswith(f"{iqm_train:.3f} [")
        assert entry["members"] == groups[lr]
        assert entry["eval"]["return"]["iqm"] == pytest.approx(iqm_ret)
        assert entry["eval"]["return"]["values"] == pytest.approx(ret)
        assert entry["train"]["episode_return"]["values"] == pytest.approx(train)
        lo, hi = stats.bootstrap_ci(ret)
        assert (entry["eval"]["return"]["ci_low"], entry["eval"]["return"]["ci_high"]) == \
            pytest.approx((lo, hi))
    assert rows[0][0] == "1 best" and rows[1][0] == "2"
    # the all-member mean stays, under its own name
    assert summary["last_chunk_all_members"]["episode_return"] == pytest.approx(
        np.mean([_last_chunk(run, i, 3, "episode_return") for i in range(4)]))


def test_first_success_is_read_from_the_training_log(sweep) -> None:
    run, _ = sweep
    entries = json.loads((run / "summary.json").read_text())["settings"]
    rows = read_metrics(run)
    for e in entries:
        firsts = [min((r["env_steps"] for r in rows
                       if r["member"] == i and r["episode_success"] > 0), default=math.inf)
                  for i in e["members"]]
        hit = [f for f in firsts if math.isfinite(f)]
        assert e["first_success"]["reached"] == len(hit) and e["first_success"]["n"] == 2
        if hit:
            assert e["first_success"]["env_steps"]["values"] == hit
        else:
            assert e["first_success"]["env_steps"] is None


def test_report_prints_the_same_table_and_writes_files(sweep, capsys) -> None:
    run, stdout = sweep
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert _report_text(out) == _report_text(stdout)
    assert (run / "sweep_summary.md").read_text() == _report_text(stdout) + "\n"
    with open(run / "sweep_summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    summary = json.loads((run / "summary.json").read_text())["settings"]
    assert [float(r["lr"]) for r in rows] == [e["setting"]["lr"] for e in summary]
    assert [float(r["eval_return_iqm"]) for r in rows] == pytest.approx(
        [e["eval"]["return"]["iqm"] for e in summary])
    for name in ("sweep_summary.png", "curves.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rep = report.build(run)
    values = {"lr": [e["setting"]["lr"] for e in rep.entries]}
    assert report.log_axes(rep.run.rc, values) == {"lr"}   # the search was log-uniform


def test_report_on_an_interrupted_run(sweep, tmp_path: Path, capsys) -> None:
    """No eval.json or summary.json yet, two of four iterations logged and a last line cut
    short: the table ranks by the last logged chunk's training return and says the eval
    is missing."""
    run, _ = sweep
    cut = tmp_path / "cut"
    shutil.copytree(run, cut, ignore=shutil.ignore_patterns("checkpoints", "tensorboard",
                                                            "eval.json", "summary.json",
                                                            "sweep_summary.*"))
    rows = [r for r in read_metrics(run) if r["iteration"] < 2]
    partial = json.dumps(read_metrics(run)[-1])[:20]  # a line cut short by kill -9
    (cut / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + partial)
    assert main(["report", str(cut), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "2 of 4 iterations" in out and "eval: missing (no eval.json" in out
    assert "ranked by train episode_return (last chunk)" in out
    table = _table_rows(out)
    groups = _by_setting(cut)
    expected = {lr: stats.iqm([_last_chunk(run, i, 1, "episode_return", until=2) for i in m])
                for lr, m in groups.items()}
    assert [float(r[1]) for r in table] == pytest.approx(
        sorted(expected, key=lambda lr: -expected[lr]), rel=1e-3)
    for r in table:
        lr = min(expected, key=lambda x: abs(x - float(r[1])))
        assert r[3] == "-" and r[4] == "-"   # no eval yet
        assert r[5].startswith(f"{expected[lr]:.3f}")


def test_report_errors(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_aggregate_and_ranking_rules() -> None:
    a = report.aggregate([1.0, 2.0, 3.0, 100.0])
    assert a["iqm"] == pytest.approx(2.5) and (a["min"], a["max"]) == (1.0, 100.0)
    assert a["mean"] == pytest.approx(26.5)
    bad = report.aggregate([1.0, float("nan")])
    assert bad["nonfinite"] == 1 and bad["iqm"] is None
    assert report._cell(bad) == "non-finite in 1/2 seeds"

    def entry(v: float | None) -> dict:
        return {"train": {"m": None if v is None else report.aggregate([v])}}

    ranked = report._rank([entry(2.0), entry(None), entry(5.0), entry(5.0)], "train", "m",
                          "max")
    assert [(e["rank"], e["best"]) for e in ranked] == [(1, True), (1, True), (3, False),
                                                        (4, False)]
    assert [e["train"]["m"]["iqm"] for e in ranked[:3]] == [5.0, 5.0, 2.0]
    ranked = report._rank([entry(2.0), entry(5.0)], "train", "m", "min")
    assert [e["best"] for e in ranked] == [True, False]
    assert not report._rank([entry(1.0)], "train", "m", "max")[0]["best"]  # nothing to beat
    assert [e["train"]["m"]["iqm"] for e in ranked] == [2.0, 5.0]


def test_learning_curves_group_an_lr_sweep_by_setting(sweep) -> None:
    """``lr`` is both a swept label and a logged metric (the scheduled rate): the curves
    group members by their members.json setting, not by the metric column."""
    run, _ = sweep
    groups = plot.curves(run, "episode_return")
    assert sorted(groups) == sorted(f"lr={lr:g}" for lr in _by_setting(run))
    assert [g[4] for g in groups.values()] == [2, 2]   # two seeds each
