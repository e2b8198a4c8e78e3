"""Compare finished multi-seed runs by their final evaluation (``eval.json``).

For each run directory: eval success and return over its members (seeds) as mean [min, max]
and IQM [95% bootstrap CI], and rliable's probability of improvement P(run > baseline) with
its stratified bootstrap CI against the first directory (the baseline), per metric.
Success reads ``n/a`` for tasks without a success flag.

    python benchmarks/compare_runs.py runs/doorkey-none runs/doorkey-mimex --out table.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mimex_jax.bench import stats
from mimex_jax.config import load_config
from mimex_jax.report import _has_success


def per_seed(run: Path, metric: str) -> np.ndarray:
    """The final eval ``metric`` (``success`` / ``return``) of each member of ``run``."""
    members = json.loads((run / "eval.json").read_text())["members"]
    return np.asarray([m[metric] for m in members], np.float64)


def _cell(x: np.ndarray) -> str:
    s = stats.summarize(x)
    return (f"{x.mean():.3f} [{x.min():.3f}, {x.max():.3f}]; IQM {stats.fmt(s, 3)}")


def table(runs: list[Path]) -> str:
    """Markdown table: one row per run, P(improvement) against ``runs[0]``."""
    rc = load_config(runs[0] / "config.yaml")
    success = _has_success(rc)
    metrics = ("success", "return") if success else ("return",)
    head = ["run", "reward", "seeds"] + [f"eval {m}: mean [min, max]; IQM [CI]"
                                         for m in metrics]
    head += [f"P({m} > {runs[0].name}) [CI]" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        r = load_config(run / "config.yaml")
        what = r.train.reward if r.train.reward == "none" else \
            f"{r.train.reward} (k_expl {r.hparams.k_expl:g}" + \
            (f", centred: {r.train.center_intrinsic})" if r.train.center_intrinsic != "none"
             else ")")
        cells = [run.name, what,
                 str(len(per_seed(run, "return")))]
        cells += [_cell(per_seed(run, m)) for m in metrics]
        for m in metrics:
            if run == runs[0]:
                cells.append("-")
                continue
            p = stats.improvement(per_seed(run, m), per_seed(runs[0], m))
            cells.append(f"{p['p']:.2f} [{p['ci_low']:.2f}, {p['ci_high']:.2f}]")
        lines.append("| " + " | ".join(cells) + " |")
    if not success:
        lines.append("\n(success: n/a, the task defines no success)")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories; the first is the "
                   "baseline")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    text = table(a.runs)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
