"""Benchmark: training throughput against device count, for data and sweep parallelism.

For each device count (default 1, 2, 4) a child process is started that sees that many
devices (on CPU: ``--xla_force_host_platform_device_count``), and measures the compiled
training step (one iteration, state donated, as the chunked loop runs it) in two layouts
(:mod:`mimex_jax.distributed`):

``data``
    one run with a fixed global batch of ``--num-envs`` environments split over the
    devices (``run.mesh: data``); 1 device = the plain single-device program.
``sweep``
    ``--members`` sweep members (seeds), ``--member-envs`` environments each, split
    over the devices (``run.mesh: sweep``); 1 device = the plain vmapped program.

Reported per point: env-steps/s (median of ``--repeats`` after ``--warmup`` calls), compile
time, and XLA's cost analysis of the compiled step (FLOPs and bytes accessed *per device*:
a layout that splits the work shows them falling as 1/devices). XLA counts a loop body
once (the rollout scan, the PPO epochs x minibatches), so the FLOPs compare layouts, they
are not totals; for the same reason the MIMEx update is not microbatched here
(``--microbatch 0``), so every device count compiles the same loops. Writes
``benchmarks/results/scaling.json`` and prints a Markdown table.

Forced CPU devices are threads of one process sharing this machine's cores: on a 2-core CPU
they show that the sharded program is correct and splits its work, not a speed-up. On a
GPU host or TPU slice, run the same script with ``--platform gpu`` / ``tpu`` (the child then
uses the first N real devices).

    python benchmarks/scaling.py                          # 1, 2, 4 forced CPU devices
    python benchmarks/scaling.py --devices 1 2 --repeats 3 --num-envs 256   # quicker
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "scaling.json"


def child(args: argparse.Namespace) -> dict:
    """Measure both layouts on the devices this process sees (``args.count`` of them)."""
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import cost_analysis, machine, summary, time_calls

    from mimex_jax import distributed, loop
    from mimex_jax.trainer import HParams, TrainConfig

    n = args.count
    if jax.device_count() < n:
        raise SystemExit(f"asked for {n} devices, JAX sees {jax.device_count()}")
    mimex = (("microbatch", args.microbatch),) if args.reward == "mimex" else ()
    base = TrainConfig(env_id=args.env, num_envs=args.num_envs, reward=args.reward,
                       total_steps=args.num_envs * 32 * 100, mimex=mimex)

    def measure(cfg: TrainConfig, sweep: bool, members: int, plan: distributed.MeshPlan
                ) -> dict:
        mesh = None if plan.devices == 1 else distributed.make_mesh(plan)
        runner = loop.make_runner(cfg, sweep=sweep, mesh=mesh)
        hp = HParams()
        key = jax.random.key(0)
        if sweep:
            hp = jax.tree.map(lambda x: jnp.full((members,), x, jnp.float32), hp)
            key = jax.random.split(key, members)
        if mesh is not None:
            where = distributed.member_sharding(mesh, sweep)
            hp, key = distributed.put(hp, where), distributed.put(key, where)
        state = runner.init(key, hp)
        t0 = time.perf_counter()
        compiled = runner.chunk(1).lower(state, hp).compile()
        compile_s = time.perf_counter() - t0
        holder = {"state": state}

        def step():
            holder["state"], m = compiled(holder["state"], hp)
            return m

        times = time_calls(step, repeats=args.repeats, warmup=args.warmup)
        steps = cfg.steps_per_iteration * members
        med = statistics.median(times)
        return {"devices": n, "mesh": {"sweep": plan.sweep, "data": plan.data},
                "members": members, "envs_per_member": cfg.num_envs,
                "env_steps_per_iteration": steps, "compile_s": compile_s,
                "env_steps_per_s": steps / med, **summary(times),
                **{f"{k}_per_device": v for k, v in cost_analysis(compiled).items()}}

    out = {"machine": machine(), "count": n, "results": []}
    if "data" in args.modes:
        plan = distributed.plan_mesh("data", n, members=1, num_envs=base.num_envs,
                                     minibatch_size=base.steps_per_iteration // base.minibatches,
                                     available=jax.device_count())
        out["results"].append({"mode": "data", **measure(base, False, 1, plan)})
    if "sweep" in args.modes:
        cfg = dataclasses.replace(base, num_envs=args.member_envs,
                                  total_steps=args.member_envs * 32 * 100)
        plan = distributed.plan_mesh("sweep", n, members=args.members, num_envs=cfg.num_envs,
                                     available=jax.device_count())
        out["results"].append({"mode": "sweep", **measure(cfg, True, args.members, plan)})
    return out


def table(rows: list[dict]) -> str:
    """Markdown: one line per (mode, devices), speed-up against 1 device of the same mode."""
    lines = ["| layout | devices | mesh (sweep x data) | env-steps/s (median) | speed-up | "
             "s/iteration | GFLOP/iteration per device | MB accessed per device | compile s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for mode in ("data", "sweep"):
        ours = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["devices"])
        if not ours:
            continue
        one = next((r for r in ours if r["devices"] == 1), None)
        for r in ours:
            speed = f"{r['env_steps_per_s'] / one['env_steps_per_s']:.2f}x" if one else "-"
            what = (f"data: {r['env_steps_per_iteration'] // 32} envs" if mode == "data" else
                    f"sweep: {r['members']} x {r['envs_per_member']} envs")
            lines.append(
                f"| {what} | {r['devices']} | {r['mesh']['sweep']} x {r['mesh']['data']} | "
                f"{r['env_steps_per_s']:.0f} | {speed} | {r['median_s']:.3f} | "
                f"{r['flops_per_device'] / 1e9:.2f} | {r['bytes_accessed_per_device'] / 1e6:.0f}"
                f" | {r['compile_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--modes", nargs="+", default=["data", "sweep"], choices=["data", "sweep"])
    p.add_argument("--platform", default="cpu", choices=["cpu", "gpu", "tpu"],
                   help="cpu: forced host devices; gpu/tpu: the first N real devices")
    p.add_argument("--env", default="gymnax:MountainCar-v0")
    p.add_argument("--reward", default="mimex")
    p.add_argument("--num-envs", type=int, default=512, help="global envs (data layout)")
    p.add_argument("--members", type=int, default=4, help="sweep members (sweep layout)")
    p.add_argument("--member-envs", type=int, default=128, help="envs per sweep member")
    p.add_argument("--microbatch", type=int, default=0,
                   help="MIMEx update microbatch (0 = whole batch: the same program at "
                        "every device count; data-parallel runs never split it)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--timeout", type=float, default=1800, help="seconds per child process")
    p.add_argument("--count", type=int, help=argparse.SUPPRESS)  # set in the child
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.count is not None:
        Path(args.child_out).write_text(json.dumps(child(args), indent=1))
        return

    rows, runs = [], []
    for n in args.devices:
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        env["JAX_PLATFORMS"] = args.platform
        if args.platform == "cpu":
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
        tmp = Path(args.out).with_suffix(f".child{n}.json")
        cmd = [sys.executable, __file__, "--count", str(n), "--child-out", str(tmp),
               "--platform", args.platform, "--env", args.env, "--reward", args.reward,
               "--num-envs", str(args.num_envs), "--members", str(args.members),
               "--member-envs", str(args.member_envs), "--repeats", str(args.repeats),
               "--warmup", str(args.warmup), "--microbatch", str(args.microbatch),
               "--modes", *args.modes]
        print(f"{n} device(s) ...", file=sys.stderr, flush=True)
        subprocess.run(cmd, env=env, check=True, cwd=ROOT, timeout=args.timeout)
        res = json.loads(tmp.read_text())
        tmp.unlink()
        runs.append({"count": n, "machine": res["machine"]})
        rows += res["results"]
    cmd_line = "python benchmarks/scaling.py " + " ".join(sys.argv[1:])
    out = {"command": cmd_line.strip(), "platform": args.platform,
           "config": {"env": args.env, "reward": args.reward, "num_envs": args.num_envs,
                      "members": args.members, "member_envs": args.member_envs,
                      "rollout_len": 32, "epochs": 10, "minibatches": 4,
                      "mimex_microbatch": args.microbatch,
                      "repeats": args.repeats, "warmup": args.warmup},
           "runs": runs, "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(table(rows))
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
