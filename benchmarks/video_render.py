"""Benchmark: CPU/GPU time per video frame of the batch renderer, by frame size.

Renders one world of ``--env`` (default Playground's ``CartpoleSwingupSparse``, camera
``fixed``) at each ``--sizes`` x size, ``--frames`` frames per jitted call (``lax.map``),
and prints the median over ``--repeats`` calls of the milliseconds per frame: what one
episode of ``mimex-jax eval --video`` or ``run.video_every`` costs to render (the policy and
the physics come on top). The pose is MuJoCo's ``mj_forward`` of the initial state.

    python benchmarks/video_render.py                       # 64, 128, 256 pixels
    python benchmarks/video_render.py --sizes 128 --frames 20
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from mimex_jax import envs
from mimex_jax.envs.pixels import PixelConfig, PixelObservation, mj_model_of
from mimex_jax.envs.wrappers import VecEnv


def main() -> None:
    """Parse the arguments, render, print one line per size."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="playground:CartpoleSwingupSparse")
    p.add_argument("--camera", default="fixed")
    p.add_argument("--sizes", default="64,128,256")
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    base = envs.make_base(args.env)
    mjm = mj_model_of(base)
    host = mujoco.MjData(mjm)
    mujoco.mj_forward(mjm, host)
    data = jax.tree.map(lambda x: x[None], mjx.put_data(mjm, host, impl="jax"))
    batched = VecEnv(base, 1)
    print(f"{args.env} camera {args.camera!r}, 1 world, {jax.default_backend()}")
    for size in (int(s) for s in args.sizes.split(",")):
        renderer = PixelObservation(batched, PixelConfig(
            camera=args.camera, height=size, width=size, frame_stack=1, action_repeat=1))
        render = jax.jit(lambda d, r=renderer: jax.lax.map(lambda _: r.render(d),
                                                           jnp.arange(args.frames)))
        jax.block_until_ready(render(data))  # compile
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            jax.block_until_ready(render(data))
            times.append((time.perf_counter() - t) / args.frames)
        print(f"| {size}x{size} | {np.median(times) * 1e3:.1f} ms/frame | median of "
              f"{args.repeats} x {args.frames} frames |", flush=True)


if __name__ == "__main__":
    main()
