"""Benchmark: raw env steps/s of one env id (random actions, auto-reset, one ``lax.scan``).

Measures what the env alone costs before a budget is sized: compile time, then the median
over ``--repeats`` of ``--steps`` batched steps at each ``--num-envs``. Prints one Markdown
row per batch size and writes JSON with ``--out``. Where the env defines success it also
counts the random policy's finished episodes and successes over all the runs (how hard a
sparse task is to stumble on).

    python benchmarks/env_speed.py --env minigrid:KeyCorridorS3R3 --num-envs 256 --steps 2000

    python benchmarks/env_speed.py --env craftax:Craftax-Classic-Symbolic-v1 --num-envs 16,64
    python benchmarks/env_speed.py --env playground:PandaPickCubeSparse --num-envs 4 \
        --pixels 64 --camera front --action-repeat 1       # rendered to 64x64 frames
    python benchmarks/env_speed.py --env playground:PandaOpenCabinet --num-envs 1,4 \
        --xla jax,mimex      # XLA's default options vs mimex-jax's (mimex_jax.xla), in turn

``--xla mimex`` (the default) compiles with the options mimex-jax's trainer uses
(:func:`mimex_jax.xla.jit`, with ``mjx=`` for Playground envs); ``jax`` with XLA's own
defaults (``jax.jit``).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import block, machine  # noqa: E402

from mimex_jax import envs, xla  # noqa: E402
from mimex_jax.envs.pixels import PixelConfig  # noqa: E402


def measure(env_id: str, num_envs: int, steps: int, repeats: int,
            pixels: PixelConfig | None = None, options: str = "mimex") -> dict:
    """Compile time and median steps/s of ``steps`` random-action steps of ``num_envs`` envs
    (agent steps, rendered to frames when ``pixels`` is given), compiled with mimex-jax's
    XLA options (``options="mimex"``) or XLA's defaults (``"jax"``)."""
    env = envs.make(env_id, num_envs=num_envs, pixels=pixels)
    jit = jax.jit if options == "jax" else functools.partial(xla.jit,
                                                             mjx=xla.steps_mjx(env_id))

    def act(key):
        if env.action_kind == "discrete":
            return jax.random.randint(key, (num_envs,), 0, env.num_actions)
        low, high = env.action_bounds
        return jax.random.uniform(key, (num_envs, env.action_size), jnp.float32, low, high)

    @jit
    def run(state, key):
        def body(s, k):
            s = env.step(s, act(k))
            succ = s.metrics.get("episode_success", jnp.zeros_like(s.metrics["episode_done"]))
            return s, (s.metrics["episode_done"].sum(), succ.sum())

        state, (done, succ) = jax.lax.scan(body, state, jax.random.split(key, steps))
        return state, (done.sum(), succ.sum())

    state = jit(env.reset)(jax.random.key(0))
    t0 = time.perf_counter()
    state, (episodes, successes) = block(run(state, jax.random.key(1)))
    compile_s = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        state, (d, sc) = block(run(state, jax.random.key(2 + r)))
        times.append(time.perf_counter() - t0)
        episodes, successes = episodes + d, successes + sc
    med = statistics.median(times)
    episodes = int(episodes)
    obs = "state" if pixels is None else (
        f"pixels {pixels.height}x{pixels.width} {pixels.camera!r} repeat {pixels.action_repeat}")
    return {"env": env_id, "observation": obs, "num_envs": num_envs, "steps": steps,
            "repeats": repeats, "xla": options,
            "compile_and_first_s": compile_s, "median_s": med,
            "env_steps_per_s": num_envs * steps / med,
            "random_policy_episodes": episodes,
            "random_policy_success_per_episode": (float(successes) / episodes
                                                  if env.spec.has_success and episodes
                                                  else None)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="craftax:Craftax-Classic-Symbolic-v1")
    p.add_argument("--num-envs", default="16,64", help="comma list of batch sizes")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pixels", type=int, default=None, metavar="SIZE",
                   help="render SIZE x SIZE frames (3 stacked) instead of the state vector")
    p.add_argument("--camera", default="0", help="with --pixels: camera name or index")
    p.add_argument("--action-repeat", type=int, default=2, help="with --pixels")
    p.add_argument("--xla", default="mimex",
                   help="comma list: mimex (mimex-jax's XLA options) and/or jax (XLA's "
                        "defaults)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    for o in a.xla.split(","):
        if o not in ("mimex", "jax"):
            p.error(f"--xla {o!r} is unknown; allowed: mimex, jax")
    px = None
    if a.pixels is not None:
        cam = int(a.camera) if a.camera.isdigit() else a.camera
        px = PixelConfig(camera=cam, height=a.pixels, width=a.pixels,
                         action_repeat=a.action_repeat)
    rows = [measure(a.env, int(n), a.steps, a.repeats, px, o)
            for n in a.num_envs.split(",") for o in a.xla.split(",")]
    print("| env | observation | num_envs | XLA options | compile + first run (s) "
          "| env steps/s (median) | random policy: episodes, success per episode |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        rate = r["random_policy_success_per_episode"]
        print(f"| {r['env']} | {r['observation']} | {r['num_envs']} | {r['xla']} | "
              f"{r['compile_and_first_s']:.1f} | {r['env_steps_per_s']:.1f} | "
              f"{r['random_policy_episodes']}, {'n/a' if rate is None else f'{rate:.4f}'} |")
    if a.out:
        a.out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
