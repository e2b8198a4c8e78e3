"""Accelerator suite: every GPU figure of issue 17 in one run, under a total time budget.

Measures, each after warm-up as the median of repeats, with compile time, XLA's cost and
memory analysis of the compiled program, and the device's peak bytes in use so far
(``device.memory_stats()``; null where the backend does not report it, as on CPU):

* ``matmul/*``: dense n x n x n matmul rate at full float32, TF32 and bfloat16;
* ``reward_model``: the MIMEx reward-model update at the PixMC size (16384 x 5 x 384,
  paper defaults): sequences/s, XLA FLOPs and the share of the measured matmul rates;
* ``fused/<envs>/<reward>``: the fused PPO + bonus step on ``brax:reacher_sparse`` at 4096
  and 16384 envs for none / rnd / icm / mimex (paper PPO settings): env-steps/s;
* ``sweep/16x4096``: a 16-member vmapped sweep (``loop.make_runner(sweep=True)``) against
  one member, timed in turns: aggregate env-steps/s ratio;
* ``drqv2/<envs>/<reward>``: the DrQ-v2 fused step (gymnax Pendulum, state): env-steps/s;
* ``pixels/1024/<reward>``: the PPO step from 64x64 pixels when ``mimex_jax.envs.pixels``
  is importable; otherwise recorded as skipped.

Items run in priority order. Before each, the remaining budget is checked; an item that
cannot fit its minimum is skipped with the reason. Each item runs under a cap (the
smaller of ``--item-cap`` and what is left): repeats stop early at the cap, and a
``SIGALRM`` backstop ends an item that overruns it (it fires once Python regains control,
so a single long XLA compile can overrun by its own length). The JSON is rewritten after
every item, so a killed run keeps what it measured. Installs nothing.

    python benchmarks/device_suite.py --out gpu_results          # full sizes (GPU)
    python benchmarks/device_suite.py --tiny --out /tmp/dry      # CPU dry run
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    cost_analysis,
    device_peak_bytes,
    machine,
    matmul_rate,
    memory_analysis,
    summary,
    time_calls,
)

from mimex_jax import loop, xla  # noqa: E402
from mimex_jax.rewards import MIMExConfig  # noqa: E402
from mimex_jax.trainer import HParams, TrainConfig, make_train  # noqa: E402

# The targets (one GPU of the H100/H200 class, full sizes). key: (item, figure,
# comparison, threshold, statement).
TARGETS: dict[str, tuple[str, str, str, float, str]] = {
    "mimex_env_steps": (
        "fused/4096/mimex", "env_steps_per_s", ">=", 1_000_000.0,
        "PPO + MIMEx on brax:reacher_sparse, 4096 envs, paper PPO settings: "
        ">= 1,000,000 env-steps/s"),
    "reward_model_share": (
        "reward_model", "share_of_default_matmul", ">=", 0.5,
        "reward-model update >= 50% of the measured matmul rate at the same precision "
        "(jax's default float32 matmul precision, which the update uses)"),
    "bonus_cost": (
        "fused/*/<bonus>", "time_over_none", "<=", 1.5,
        "the fused step with a bonus costs <= 1.5x the fused step without one"),
    "compile_time": (
        "fused/*/*", "compile_s", "<", 60.0, "compile time of the fused step < 60 s"),
}

FULL = {"matmul_n": 8192, "rm_batch": 16384, "rm_feature_dim": 384,
        "env": "brax:reacher_sparse", "envs": (4096, 16384), "sweep_members": 16,
        "sweep_envs": 4096, "drqv2_envs": 1024, "pixel_envs": 1024, "pixel_size": 64,
        "repeats": 10, "warmup": 2, "budget_s": 420.0, "item_cap_s": 120.0}
TINY = {"matmul_n": 256, "rm_batch": 64, "rm_feature_dim": 384,
        "env": "gymnax:Pendulum-v1", "envs": (16, 32), "sweep_members": 4,
        "sweep_envs": 16, "drqv2_envs": 4, "pixel_envs": 4, "pixel_size": 32,
        "repeats": 3, "warmup": 1, "budget_s": 600.0, "item_cap_s": 120.0}
REWARDS = ("none", "mimex", "rnd", "icm")
PIXEL_ENV = "playground:CartpoleSwingupSparse"


class ItemTimeout(Exception):
    """An item ran past its cap."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One measurement: ``run(sizes, deadline)`` returns its figures."""

    name: str
    run: Callable[[dict, float], dict]
    min_s: float  # skipped when less than this is left of the budget (full sizes)


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise :class:`ItemTimeout` in the main thread after ``seconds`` (SIGALRM)."""
    def handler(signum: int, frame: Any) -> None:
        raise ItemTimeout(f"ran past its cap of {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def compile_timed(fn: Callable, *args: Any, donate: bool = True) -> tuple[Any, dict]:
    """``fn`` jitted and compiled for ``args``; compile seconds, XLA cost and memory."""
    t0 = time.perf_counter()
    compiled = xla.jit(fn, donate_argnums=0 if donate else ()).lower(*args).compile()
    info = {"compile_s": time.perf_counter() - t0, **cost_analysis(compiled),
            "xla_memory": memory_analysis(compiled)}
    return compiled, info


def stepper(compiled: Any, state: Any, hp: HParams) -> Callable[[], Any]:
    """A zero-argument call of a state-donating ``(state, hp) -> (state, metrics)``."""
    holder = {"state": state}

    def step() -> Any:
        holder["state"], m = compiled(holder["state"], hp)
        return m

    return step


def timed(step: Callable[[], Any], sizes: dict, deadline: float) -> dict:
    return summary(time_calls(step, sizes["repeats"], sizes["warmup"], deadline))


# ---- items -------------------------------------------------------------------------------

MATMULS = {"float32": (jnp.float32, "float32"), "tf32": (jnp.float32, "tensorfloat32"),
           "default": (jnp.float32, None), "bf16": (jnp.bfloat16, None)}


def matmul_item(kind: str) -> Callable[[dict, float], dict]:
    dtype, precision = MATMULS[kind]

    def run(sizes: dict, deadline: float) -> dict:
        return matmul_rate(sizes["matmul_n"], sizes["repeats"], dtype, precision, deadline)

    return run


def reward_model_item(sizes: dict, deadline: float, results: dict) -> dict:
    """The reward-model update (benchmarks/reward_model.py's ``prepare_jax``)."""
    import reward_model

    cfg = MIMExConfig(seq_len=5, feature_dim=sizes["rm_feature_dim"])
    t0 = time.perf_counter()
    step, info = reward_model.prepare_jax(cfg, sizes["rm_batch"])
    info["compile_s"] = time.perf_counter() - t0  # with the whole-batch compile if chunked
    out = reward_model.jax_result(time_calls(step, sizes["repeats"], sizes["warmup"],
                                             deadline), sizes["rm_batch"], info)
    out.update(batch=sizes["rm_batch"], seq_len=5, feature_dim=sizes["rm_feature_dim"])
    for kind in MATMULS:
        mm = results.get(f"matmul/{kind}", {}).get("figures")
        out[f"share_of_{kind}_matmul"] = (out["gflops_per_s"] / mm["gflops"]) if mm else None
    return out


def train_config(sizes: dict, reward: str, num_envs: int, **kw: Any) -> TrainConfig:
    """Paper PPO settings (the TrainConfig defaults) at ``num_envs`` envs."""
    return TrainConfig(env_id=kw.pop("env_id", sizes["env"]), num_envs=num_envs,
                       reward=reward, total_steps=num_envs * 32 * 100, **kw)


def fused_figures(cfg: TrainConfig, sizes: dict, deadline: float) -> dict:
    init, update_step, _, _ = make_train(cfg)
    hp = HParams()
    state = xla.jit(init)(jax.random.key(0), hp)
    compiled, info = compile_timed(update_step, state, hp)
    out = {**info, **timed(stepper(compiled, state, hp), sizes, deadline)}
    out["env_steps_per_iteration"] = cfg.steps_per_iteration
    out["env_steps_per_s"] = cfg.steps_per_iteration / out["median_s"]
    return out


def fused_item(num_envs: int, reward: str) -> Callable[[dict, float], dict]:
    def run(sizes: dict, deadline: float) -> dict:
        cfg = train_config(sizes, reward, num_envs)
        return {"env": cfg.env_id, "num_envs": num_envs, "reward": reward,
                **fused_figures(cfg, sizes, deadline)}

    return run


def sweep_item(sizes: dict, deadline: float) -> dict:
    """One chunk (one iteration) of a vmapped sweep vs a single run, timed in turns."""
    from mimex_jax import sweep

    members, envs = sizes["sweep_members"], sizes["sweep_envs"]
    cfg = train_config(sizes, "mimex", envs)
    hp1 = HParams()
    hps = sweep.stack([hp1] * members)
    progs = {}
    for name, runner, key, hp in (
            ("single", loop.make_runner(cfg), jax.random.key(0), hp1),
            ("sweep", loop.make_runner(cfg, sweep=True),
             jax.random.split(jax.random.key(0), members), hps)):
        state = runner.init(key, hp)
        t0 = time.perf_counter()
        compiled = runner.chunk(1).lower(state, hp).compile()
        progs[name] = (stepper(compiled, state, hp),
                       {"compile_s": time.perf_counter() - t0,
                        "xla_memory": memory_analysis(compiled)})
    for step, _ in progs.values():
        for _ in range(sizes["warmup"]):
            jax.block_until_ready(step())
    times: dict[str, list[float]] = {k: [] for k in progs}
    for _ in range(sizes["repeats"]):  # in turns, so load changes hit both alike
        for name, (step, _) in progs.items():
            times[name] += time_calls(step, 1, 0)
        if time.perf_counter() > deadline:
            break
    out: dict[str, Any] = {"members": members, "num_envs": envs, "reward": "mimex"}
    for name, (_, info) in progs.items():
        n = members if name == "sweep" else 1
        out[name] = {**info, **summary(times[name]),
                     "env_steps_per_s": n * cfg.steps_per_iteration
                     / statistics.median(times[name])}
    out["aggregate_ratio"] = out["sweep"]["env_steps_per_s"] / out["single"]["env_steps_per_s"]
    return out


def drqv2_item(reward: str) -> Callable[[dict, float], dict]:
    def run(sizes: dict, deadline: float) -> dict:
        import drqv2  # benchmarks/drqv2.py: Pendulum (state), seed phase off

        out = drqv2.fused(sizes["drqv2_envs"], reward, sizes["repeats"])
        out["frames_per_s"] = out["env_steps_per_s"]  # state env, action repeat 1
        return out

    return run


def pixels_available() -> str | None:
    """None when the pixel observations can be used, else why not."""
    if importlib.util.find_spec("mimex_jax.envs.pixels") is None:
        return "pixels not available (mimex_jax.envs.pixels is not in this checkout)"
    try:
        importlib.import_module("mimex_jax.envs.pixels")
    except Exception as err:  # noqa: BLE001 (any import failure is a reason to skip)
        return f"pixels not available ({type(err).__name__}: {err})"
    if "observation" not in {f.name for f in dataclasses.fields(TrainConfig)}:
        return "pixels not available (TrainConfig has no 'observation' field)"
    return None


def pixels_item(reward: str) -> Callable[[dict, float], dict]:
    def run(sizes: dict, deadline: float) -> dict:
        px = sizes["pixel_size"]
        cfg = train_config(sizes, reward, sizes["pixel_envs"], env_id=PIXEL_ENV,
                           observation="pixels", pixels=(("height", px), ("width", px)),
                           embedding="encoder")
        out = {"env": PIXEL_ENV, "num_envs": cfg.num_envs, "size": px, "reward": reward,
               **fused_figures(cfg, sizes, deadline)}
        out["frames_per_s"] = out["env_steps_per_s"]  # one rendered frame per agent step
        return out

    return run


def plan(sizes: dict, results: dict) -> list[Item]:
    """The items in priority order (the most important first, as the budget may run out)."""
    small, big = sizes["envs"]
    items = [Item(f"matmul/{k}", matmul_item(k), 10) for k in MATMULS]
    items.append(Item("reward_model",
                      lambda s, d: reward_model_item(s, d, results), 30))
    items += [Item(f"fused/{small}/{r}", fused_item(small, r), 30) for r in REWARDS]
    items.append(Item(f"sweep/{sizes['sweep_members']}x{sizes['sweep_envs']}", sweep_item,
                      60))
    items += [Item(f"fused/{big}/{r}", fused_item(big, r), 30) for r in REWARDS[:2]]
    items += [Item(f"drqv2/{sizes['drqv2_envs']}/{r}", drqv2_item(r), 30)
              for r in ("none", "mimex")]
    items += [Item(f"pixels/{sizes['pixel_envs']}/{r}", pixels_item(r), 40)
              for r in ("none", "mimex")]
    items += [Item(f"fused/{big}/{r}", fused_item(big, r), 30) for r in REWARDS[2:]]
    return items


def run_item(item: Item, sizes: dict, budget_end: float, tiny: bool) -> dict:
    """One item under the remaining budget and its cap; figures, a skip reason or an error."""
    left = budget_end - time.perf_counter()
    need = 1.0 if tiny else item.min_s
    rec: dict[str, Any] = {"name": item.name, "elapsed_s": 0.0}
    if item.name.startswith("pixels/") and (why := pixels_available()):
        return {**rec, "status": "skipped", "reason": why}
    if left < need:
        return {**rec, "status": "skipped",
                "reason": f"budget: {max(left, 0):.0f} s left, the item needs at least "
                          f"{need:.0f} s"}
    cap = min(sizes["item_cap_s"], left)
    t0 = time.perf_counter()
    try:
        with alarm(cap):
            # Repeats stop at 80% of the cap, leaving room to finish the current call.
            figures = item.run(sizes, t0 + 0.8 * cap)
    except ItemTimeout as err:
        rec.update(status="skipped", reason=f"time cap: {err}")
    except Exception as err:  # noqa: BLE001 (the suite goes on; the error is recorded)
        rec.update(status="error", reason=f"{type(err).__name__}: {err}"[:2000])
    else:
        rec.update(status="ok", figures=figures)
    rec["elapsed_s"] = time.perf_counter() - t0
    rec["cap_s"] = cap
    rec["device_peak_bytes_so_far"] = device_peak_bytes()
    return rec


# ---- targets and report ------------------------------------------------------------------

def _check(value: float | None, op: str, threshold: float) -> bool | None:
    if value is None:
        return None
    return {">=": value >= threshold, "<=": value <= threshold, "<": value < threshold}[op]


def evaluate(results: dict, tiny: bool) -> list[dict]:
    """Every measured figure a target applies to, beside the target (pass only at full
    sizes: the targets are for one H100-class GPU at the issue's sizes)."""
    out = []

    def add(key: str, item: str, value: float | None) -> None:
        _, figure, op, threshold, text = TARGETS[key]
        out.append({"target": key, "item": item, "figure": figure, "value": value,
                    "op": op, "threshold": threshold, "statement": text,
                    "pass": None if tiny else _check(value, op, threshold)})

    def fig(name: str) -> dict | None:
        return results.get(name, {}).get("figures")

    for key in ("mimex_env_steps", "reward_model_share"):
        item, figure = TARGETS[key][:2]
        if tiny and key == "mimex_env_steps":
            item = next((n for n in results if n.startswith("fused/")
                         and n.endswith("/mimex")), item)
        f = fig(item)
        add(key, item, f.get(figure) if f else None)
    for name, rec in results.items():
        if not name.startswith("fused/") or rec.get("status") != "ok":
            continue
        add("compile_time", name, rec["figures"]["compile_s"])
        base = fig(name.rsplit("/", 1)[0] + "/none")
        if not name.endswith("/none") and base:
            add("bonus_cost", name, rec["figures"]["median_s"] / base["median_s"])
    return out


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    return str(x)


def table(result: dict) -> str:
    """Markdown tables: one row per item, then the targets."""
    lines = [f"device: {result['device']['name']} ({result['device']['platform']}), jax "
             f"{result['machine']['jax']}, commit {result['machine']['git_commit']}, "
             f"{'tiny' if result['tiny'] else 'full'} sizes, {result['total_s']:.0f} s",
             "", "| item | status | rate | median s | compile s | GFLOP | peak bytes |",
             "|---|---|---|---|---|---|---|"]
    for rec in result["items"]:
        f = rec.get("figures") or {}
        if rec["name"].startswith("sweep/") and f:
            rate = f"{f['aggregate_ratio']:.2f}x aggregate"
            f = f["sweep"]
        elif "gflops" in f:
            rate = f"{f['gflops']:,.0f} GFLOP/s"
        elif "sequences_per_s" in f:
            rate = f"{f['sequences_per_s']:,.0f} seq/s"
        elif "env_steps_per_s" in f:
            rate = f"{f['env_steps_per_s']:,.0f} env-steps/s"
        else:
            rate = rec.get("reason", "-")
        flops = f.get("flops")
        lines.append(f"| {rec['name']} | {rec['status']} | {rate} | {_fmt(f.get('median_s'))} | "
                     f"{_fmt(f.get('compile_s'))} | {_fmt(flops / 1e9 if flops else None)} | "
                     f"{_fmt(rec.get('device_peak_bytes_so_far'))} |")
    lines += ["", "| target | item | value | threshold | pass |", "|---|---|---|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['item']} | {_fmt(t['value'])} | {t['op']} "
                     f"{_fmt(t['threshold'])} | {_fmt(t['pass'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a CPU dry run")
    p.add_argument("--out", type=Path, default=Path("device_results"),
                   help="folder for device_suite.json and device_suite.md")
    p.add_argument("--budget", type=float, default=None, help="total seconds (full: 420)")
    p.add_argument("--item-cap", type=float, default=None, help="seconds per item")
    p.add_argument("--only", default="", help="comma list of item-name prefixes to run")
    args = p.parse_args(argv)
    start = time.perf_counter()
    sizes = dict(TINY if args.tiny else FULL)
    if args.budget is not None:
        sizes["budget_s"] = args.budget
    if args.item_cap is not None:
        sizes["item_cap_s"] = args.item_cap
    only = [s for s in args.only.split(",") if s]
    dev = jax.devices()[0]
    result: dict[str, Any] = {
        "command": " ".join(["python"] + sys.argv), "tiny": args.tiny,
        "device": {"name": dev.device_kind, "platform": dev.platform,
                   "count": jax.device_count()},
        "machine": machine(), "sizes": {k: list(v) if isinstance(v, tuple) else v
                                        for k, v in sizes.items()},
        "targets_table": {k: dict(zip(("item", "figure", "op", "threshold", "statement"), v,
                                      strict=True)) for k, v in TARGETS.items()},
        "items": [], "targets": [], "total_s": 0.0}
    results: dict[str, dict] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    budget_end = start + sizes["budget_s"]
    for item in plan(sizes, results):
        if only and not any(item.name.startswith(o) for o in only):
            continue
        print(f"{item.name} ...", flush=True)
        rec = run_item(item, sizes, budget_end, args.tiny)
        results[item.name] = rec
        result["items"].append(rec)
        print(f"  {rec['status']} {rec.get('reason', '')} "
              f"({rec.get('elapsed_s', 0):.1f} s)", flush=True)
        result["targets"] = evaluate(results, args.tiny)
        result["total_s"] = time.perf_counter() - start
        (args.out / "device_suite.json").write_text(json.dumps(result, indent=1))
    result["targets"] = evaluate(results, args.tiny)
    result["total_s"] = time.perf_counter() - start
    (args.out / "device_suite.json").write_text(json.dumps(result, indent=1))
    (args.out / "device_suite.md").write_text(table(result) + "\n")
    print(table(result))
    return result


if __name__ == "__main__":
    main()
