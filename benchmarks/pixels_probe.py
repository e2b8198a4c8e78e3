"""Do the rendered frames carry the task's state? A supervised probe of the pixel pipeline.

A pixel agent that does not learn may face a broken pipeline (frames from the wrong camera
or step, a frame stack out of order) or only a slow reinforcement signal. This script
separates the two: it collects frame stacks with a uniformly random policy through the
trainer's own pixel env (:func:`mimex_jax.trainer.make_env`), trains DrQ-v2's conv encoder
plus a small head by regression onto the task's state vector (the ``state_obs`` info of the
same step), and reports the held-out R^2 of every state component. Frames that carry the
state give R^2 near 1 for what the camera shows (positions, angles, and from the frame
stack velocities); ``--shuffle`` pairs each stack with another step's state, the control
that must give R^2 <= 0.

    python benchmarks/pixels_probe.py --env playground:CartpoleBalance --size 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from mimex_jax.nn.encoders import make_encoder  # noqa: E402
from mimex_jax.trainer import TrainConfig, make_env  # noqa: E402


class Probe(nn.Module):
    """DrQ-v2's encoder and trunk (Dense 50, LayerNorm, tanh), then a 128-unit ReLU head."""

    out_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = make_encoder("conv", name="encoder")(x)
        h = nn.tanh(nn.LayerNorm()(nn.Dense(50)(h)))
        return nn.Dense(self.out_dim)(nn.relu(nn.Dense(128)(h)))


def collect(cfg: TrainConfig, steps: int, key: jax.Array) -> tuple[jax.Array, np.ndarray]:
    """``steps`` x ``cfg.num_envs`` (frame stack, state) pairs under uniform random actions."""
    env = make_env(cfg, cfg.num_envs)
    spec = env.spec
    if spec.action_kind != "continuous":
        raise ValueError(f"env {cfg.env_id!r}: the probe drives continuous-action tasks only")
    low, high = jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)

    def one(state, k):
        a = jax.random.uniform(k, (cfg.num_envs, spec.action_size), minval=low, maxval=high)
        return env.step(state, a), (state.obs, state.info["state_obs"])

    k_reset, k_act = jax.random.split(key)
    _, (obs, states) = jax.jit(lambda k0, ks: jax.lax.scan(one, env.reset(k0), ks))(
        k_reset, jax.random.split(k_act, steps))
    return obs.reshape((-1,) + obs.shape[2:]), np.asarray(states.reshape(-1, states.shape[-1]))


def probe(frames: jax.Array, states: np.ndarray, updates: int, batch: int, lr: float,
          key: jax.Array, shuffle: bool = False) -> dict:
    """Train the probe on 3/4 of the pairs; held-out R^2 per state component."""
    n = frames.shape[0]
    train = n * 3 // 4
    rng = np.random.default_rng(0)
    if shuffle:
        states = states[rng.permutation(n)]
    mean, std = states[:train].mean(0), states[:train].std(0) + 1e-6
    y = jnp.asarray((states - mean) / std, jnp.float32)
    net = Probe(states.shape[1])
    params = net.init(key, frames[:1])
    opt = optax.adam(lr)
    opt_state = opt.init(params)

    # the data are arguments, not closed-over constants (XLA would fold them at compile time)
    @jax.jit
    def update(params, opt_state, x, t):
        loss, g = jax.value_and_grad(lambda p: jnp.mean((net.apply(p, x) - t) ** 2))(params)
        upd, opt_state = opt.update(g, opt_state)
        return optax.apply_updates(params, upd), opt_state, loss

    @jax.jit
    def sq_err(params, x, t):
        return jnp.sum((net.apply(params, x) - t) ** 2, axis=0)

    for _ in range(updates):
        idx = rng.integers(0, train, batch)
        params, opt_state, _ = update(params, opt_state, frames[idx], y[idx])
    held = np.arange(train, n)
    mse = sum(np.asarray(sq_err(params, frames[c], y[c]))
              for c in np.array_split(held, max(1, len(held) // 256))) / len(held)
    var = np.asarray(jnp.var(y[train:], axis=0))
    return {"r2": (1.0 - mse / np.maximum(var, 1e-12)).round(4).tolist(),
            "heldout_samples": int(n - train), "train_samples": int(train)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="playground:CartpoleBalance")
    p.add_argument("--camera", default=None, help="camera name (default: the task's)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--num-envs", type=int, default=32)
    p.add_argument("--steps", type=int, default=128, help="env steps per env collected")
    p.add_argument("--episode-length", type=int, default=100)
    p.add_argument("--updates", type=int, default=400)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--shuffle", action="store_true", help="control: misaligned targets")
    p.add_argument("--out", type=Path, default=None, help="result JSON")
    args = p.parse_args()
    px = (("height", args.size), ("width", args.size)) + (
        (("camera", args.camera),) if args.camera else ())
    cfg = TrainConfig(env_id=args.env, num_envs=args.num_envs, observation="pixels",
                      pixels=px, episode_length=args.episode_length)
    t0 = time.perf_counter()
    frames, states = collect(cfg, args.steps, jax.random.key(0))
    t1 = time.perf_counter()
    res = probe(frames, states, args.updates, args.batch, args.lr, jax.random.key(1),
                args.shuffle)
    res.update({"collect_seconds": round(t1 - t0, 1),
                "probe_seconds": round(time.perf_counter() - t1, 1),
                "command": " ".join(["python"] + sys.argv), "machine": machine(),
                "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                "state_std": states.std(0).round(4).tolist()})
    print(f"{args.env} {args.size}x{args.size}{' (shuffled targets)' if args.shuffle else ''}: "
          f"held-out R^2 per state component {res['r2']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
