"""Benchmark: pixel observations rendered in the step, and the fused PPO step from pixels.

On ``--env`` (default Playground's ``CartpoleSwingupSparse``) with ``--num-envs`` worlds at
``--size`` x ``--size`` pixels (3 stacked frames, action repeat 2), measures, each as the
median of ``--repeats`` calls after ``--warmup``:

Sections (``--encoders`` picks the pixel encoders, default conv, random_conv, vit):

1. ``env``: agent steps/s of ``--scan`` env steps in one jitted ``lax.scan`` (constant
   action) for the state task and the pixel task, and of the renderer alone on one batch;
2. ``encode``: each encoder's forward pass alone on one batch of frame stacks, with XLA's
   FLOP count;
3. ``fused``: compile time and env-steps/s of the fused ``update_step`` (rollout with
   rendering, reward-model update, PPO epochs) for PPO+MIMEx from pixels with each
   encoder, PPO without a bonus from pixels (conv), and PPO+MIMEx from the state vector, at
   the same sizes; XLA's memory analysis of each compiled step (uint8 frames keep the
   rollout buffer small);
4. ``stages``: the pixel PPO+MIMEx step's three stages compiled and timed alone, per encoder;
5. ``sweep``: the pixel PPO+MIMEx step vmapped over ``--members`` members (seeds; their
   worlds rendered through one context of ``members x num_envs`` worlds) against one
   member, side by side: aggregate env-steps/s and the ratio.

Writes benchmarks/results/pixels.json and prints Markdown tables.

    python benchmarks/pixels.py                         # 16 envs, 64x64
    python benchmarks/pixels.py --num-envs 4 --size 32 --repeats 3 --skip fused   # quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cost_analysis, machine, summary, time_calls  # noqa: E402

from mimex_jax import xla  # noqa: E402
from mimex_jax.nn.encoders import make_encoder  # noqa: E402
from mimex_jax.trainer import (  # noqa: E402
    HParams,
    TrainConfig,
    make_env,
    make_stages,
    make_train,
)

ROOT = Path(__file__).resolve().parents[1]


def config(args: argparse.Namespace, observation: str, reward: str,
           encoder: str = "conv") -> TrainConfig:
    pixels = ((("height", args.size), ("width", args.size), ("encoder", encoder))
              if observation == "pixels" else ())
    return TrainConfig(env_id=args.env, num_envs=args.num_envs, rollout_len=args.rollout,
                       epochs=args.epochs, minibatches=4, reward=reward,
                       total_steps=args.num_envs * args.rollout * 100,
                       observation=observation, pixels=pixels,
                       embedding="encoder" if observation == "pixels" else "obs")


def bench_env(cfg: TrainConfig, scan: int, repeats: int, warmup: int) -> dict:
    """Agent steps/s of ``scan`` steps of the batched env in one jitted scan."""
    env = make_env(cfg, cfg.num_envs)
    action = jnp.zeros((cfg.num_envs,) + env.action_shape, env.action_dtype)

    def run(state):
        return jax.lax.scan(lambda s, _: (env.step(s, action), None), state, None,
                            length=scan)[0]

    state = xla.jit(env.reset)(jax.random.key(0))
    t0 = time.perf_counter()
    f = xla.jit(run).lower(state).compile()
    compile_s = time.perf_counter() - t0
    out = {"compile_s": compile_s, **summary(time_calls(lambda: f(state), repeats, warmup))}
    out["agent_steps_per_s"] = cfg.num_envs * scan / out["median_s"]
    if cfg.observation == "pixels":
        render = xla.jit(env.env.render)
        r = summary(time_calls(lambda: render(state.pipeline_state), repeats, warmup))
        out["render_alone"] = {**r, "frames_per_s": cfg.num_envs / r["median_s"]}
    return out


def bench_encode(cfg: TrainConfig, repeats: int, warmup: int) -> dict:
    """The pixel encoder's forward pass alone on one batch of frame stacks (``num_envs``)."""
    px = cfg.pixel_config
    enc = make_encoder(px.encoder, **px.encoder_kwargs())
    frames = jax.random.randint(jax.random.key(0), (cfg.num_envs, *px.shape), 0, 256,
                                jnp.int32).astype(jnp.uint8)
    params = enc.init(jax.random.key(1), frames)
    t0 = time.perf_counter()
    f = xla.jit(enc.apply).lower(params, frames).compile()
    compile_s = time.perf_counter() - t0
    r = summary(time_calls(lambda: f(params, frames), repeats, warmup))
    return {**r, "compile_s": compile_s, "frames_per_s": cfg.num_envs / r["median_s"],
            **cost_analysis(f)}


def bench_fused(cfg: TrainConfig, repeats: int, warmup: int) -> dict:
    init, update_step, _, _ = make_train(cfg)
    hp = HParams()
    state = xla.jit(init)(jax.random.key(0), hp)
    t0 = time.perf_counter()
    compiled = xla.jit(update_step, donate_argnums=0).lower(state, hp).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    holder = {"state": state}

    def step():
        holder["state"], m = compiled(holder["state"], hp)
        return m

    s = summary(time_calls(step, repeats, warmup))
    return {**s, "compile_s": compile_s,
            "env_steps_per_s": cfg.steps_per_iteration / s["median_s"],
            "xla_memory": {k: int(getattr(mem, k)) for k in (
                "argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")}}


def bench_sweep(cfg: TrainConfig, members: int, repeats: int, warmup: int) -> dict:
    """The fused step of one member and of ``members`` vmapped members, side by side."""
    init, update_step, _, _ = make_train(cfg)
    hp = HParams()
    hps = jax.tree.map(lambda x: jnp.full((members,), x, jnp.float32), hp)
    keys = jax.random.split(jax.random.key(0), members)
    out = {}
    for name, n in (("one member", 1), (f"{members} members vmapped", members)):
        if n == 1:
            state, h, step_fn = xla.jit(init)(keys[0], hp), hp, update_step
        else:
            state, h = xla.jit(jax.vmap(init))(keys, hps), hps
            step_fn = jax.vmap(update_step)
        t0 = time.perf_counter()
        compiled = xla.jit(step_fn, donate_argnums=0).lower(state, h).compile()
        compile_s = time.perf_counter() - t0
        holder = {"state": state}

        def step(compiled=compiled, holder=holder, h=h):
            holder["state"], m = compiled(holder["state"], h)
            return m

        r = summary(time_calls(step, repeats, warmup))
        out[name] = {**r, "members": n, "compile_s": compile_s,
                     "env_steps_per_s": n * cfg.steps_per_iteration / r["median_s"]}
        print(f"  {name}: {out[name]['env_steps_per_s']:.0f} env-steps/s (all members), "
              f"compile {compile_s:.0f}s", flush=True)
    one, many = out["one member"], out[f"{members} members vmapped"]
    out["aggregate_ratio"] = many["env_steps_per_s"] / one["env_steps_per_s"]
    return out


def bench_stages(cfg: TrainConfig, repeats: int, warmup: int) -> dict:
    """Median seconds of the fused step's three stages, each compiled and run alone."""
    init, st = make_stages(cfg)
    hp = HParams()
    state = xla.jit(init)(jax.random.key(0), hp)
    collect, score, learn = xla.jit(st.collect), xla.jit(st.score), xla.jit(st.learn)
    col = collect(state, hp)
    r_int = score(state, hp, col)[1]
    parts = {"rollout (policy, env step, render)": lambda: collect(state, hp),
             "reward-model update": lambda: score(state, hp, col),
             "PPO epochs": lambda: learn(state, hp, col, r_int)}
    return {k: summary(time_calls(fn, repeats, warmup)) for k, fn in parts.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="playground:CartpoleSwingupSparse")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--rollout", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--scan", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--encoders", default="conv,random_conv,vit",
                   help="comma list of pixel encoders measured in 'encode', 'fused' and "
                        "'stages' (conv: learned; random_conv: frozen; vit: frozen ViT-S/16)")
    p.add_argument("--members", type=int, default=4,
                   help="members of the vmapped sweep (section 'sweep')")
    p.add_argument("--skip", default="", help="comma list of sections to skip: "
                   "env,encode,fused,stages,sweep")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pixels.json")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    result = {"machine": machine(), "command": " ".join(["python"] + sys.argv),
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "env_id": args.env, "num_envs": args.num_envs, "size": args.size,
              "settings": f"rollout {args.rollout}, {args.epochs} epochs, 4 minibatches, "
                          "MLPs 256-128-64, frame stack 3, action repeat 2"}
    if "env" not in skip:
        result["env"] = {}
        for obs in ("state", "pixels"):
            print(f"env step ({obs}) ...", flush=True)
            r = bench_env(config(args, obs, "none"), args.scan, args.repeats, args.warmup)
            result["env"][obs] = r
            print(f"  {r['agent_steps_per_s']:.0f} agent steps/s", flush=True)
    encoders = args.encoders.split(",")
    if "encode" not in skip:
        result["encode"] = {}
        for enc in encoders:
            print(f"encoder forward ({enc}) ...", flush=True)
            r = bench_encode(config(args, "pixels", "none", enc), args.repeats, args.warmup)
            result["encode"][enc] = r
            print(f"  {r['frames_per_s']:.0f} frame stacks/s", flush=True)
    if "fused" not in skip:
        result["fused"] = {}
        runs = [("pixels", "mimex", e) for e in encoders] + [("pixels", "none", "conv"),
                                                             ("state", "mimex", "conv")]
        for obs, reward, enc in runs:
            name = f"{obs}/{reward}" + (f"/{enc}" if obs == "pixels" else "")
            print(f"fused step ({name}) ...", flush=True)
            r = bench_fused(config(args, obs, reward, enc), args.repeats, args.warmup)
            result["fused"][name] = r
            print(f"  {r['env_steps_per_s']:.0f} env-steps/s, compile {r['compile_s']:.0f}s",
                  flush=True)
    if "stages" not in skip:
        result["stages"] = {}
        for enc in encoders:
            print(f"stages (pixels, mimex, {enc}) ...", flush=True)
            result["stages"][enc] = bench_stages(config(args, "pixels", "mimex", enc),
                                                 args.repeats, args.warmup)
    if "sweep" not in skip:
        print(f"sweep (pixels, mimex, {args.members} members) ...", flush=True)
        result["sweep"] = bench_sweep(config(args, "pixels", "mimex"), args.members,
                                      args.repeats, args.warmup)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(report(result))


def report(result: dict) -> str:
    lines = []
    if "env" in result:
        lines += ["| env step | agent steps/s (median) | s per scan | compile s |",
                  "|---|---|---|---|"]
        for obs, r in result["env"].items():
            lines.append(f"| {obs} | {r['agent_steps_per_s']:.0f} | {r['median_s']:.3f} | "
                         f"{r['compile_s']:.1f} |")
        ra = result["env"].get("pixels", {}).get("render_alone")
        if ra:
            lines.append(f"| render alone (one batch) | {ra['frames_per_s']:.0f} frames/s | "
                         f"{ra['median_s']:.4f} | - |")
    if "fused" in result:
        lines += ["", "| fused update_step | env-steps/s (median) | s/iteration | compile s | "
                  "XLA temp MiB | XLA args MiB |", "|---|---|---|---|---|---|"]
        for name, r in result["fused"].items():
            m = r["xla_memory"]
            lines.append(f"| {name} | {r['env_steps_per_s']:.0f} | {r['median_s']:.3f} | "
                         f"{r['compile_s']:.0f} | {m['temp_size_in_bytes'] / 2**20:.1f} | "
                         f"{m['argument_size_in_bytes'] / 2**20:.1f} |")
    if "encode" in result:
        lines += ["", "| encoder forward alone (one batch) | frame stacks/s (median) | "
                  "median s | GFLOP (XLA) |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['frames_per_s']:.0f} | {v['median_s']:.4f} | "
                  f"{(v.get('flops') or 0) / 1e9:.3f} |" for k, v in result["encode"].items()]
    if "stages" in result:
        st = result["stages"]
        if st and all(isinstance(v, dict) and "median_s" in v for v in st.values()):
            st = {"conv": st}  # files written before the per-encoder stages
        names = list(next(iter(st.values())))
        lines += ["", "| stage alone (pixels, mimex), median s | " + " | ".join(st) + " |",
                  "|---|" + "---|" * len(st)]
        lines += [f"| {n} | " + " | ".join(f"{st[e][n]['median_s']:.3f}" for e in st) + " |"
                  for n in names]
    if "sweep" in result:
        sw = result["sweep"]
        lines += ["", "| pixels, PPO+MIMEx | env-steps/s, all members (median) | s/iteration | "
                  "compile s |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['env_steps_per_s']:.0f} | {v['median_s']:.3f} | "
                  f"{v['compile_s']:.0f} |" for k, v in sw.items() if isinstance(v, dict)]
        lines.append(f"| ratio (vmapped / one) | {sw['aggregate_ratio']:.2f} | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
