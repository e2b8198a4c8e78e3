"""PPO from 64x64 pixels learns a dense visual-control task (slow; issue 13).

The task is a one-joint MuJoCo scene (the ball on a rail of ``test_pixels.py``) rendered by
MuJoCo's batch renderer through the trainer's own pixel stack: the ball starts at a uniform
position in [-0.4, 0.4], each action in [-1, 1] moves it by 0.1 * action, and every step
pays ``max(0, 1 - |x| / 0.5)``: dense, at most 1 per step at the centre. 20-step episodes.
The position is only in the image (no proprioception), so a policy that does better than
standing still must read it from the frames: a policy blind to ``x`` cannot beat keeping the
ball where it starts (by symmetry and the convexity of ``|x|``), which earns 20 * (1 - 0.2 /
0.5) = 12 per episode on average; uniform random actions earn about the same.

This is a minimal visual-control check, not a DM Control task (that is the second test
below). What it shows is that the pixel pipeline (rendering, frame stack,
uint8 rollout buffers, DrQ-v2's conv encoder learned through the PPO loss, one vmapped
program for the five seeds) learns from the image. Acceptance: every one of 5 seeds ends
(mean episode return of the last 5 iterations) at least 3.0 above the better of the two
baselines, both measured here.

    pytest -m slow tests/test_pixels_learning.py -s   # about 10-15 min on the 2-core VM

``test_ppo_balances_cartpole_from_64x64_pixels`` is the DM Control task: Playground's
``CartpoleBalance`` from 64x64 frames, 5 seeds, against the uniform random policy. It runs
``benchmarks/pixels_learning.py`` (two processes, seeds 0-2 and 3-4) and takes about 80 min
on the 2-core VM (``-k balances``); ``MIMEX_KEEP_RESULTS=DIR`` keeps its result files.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("warp")
pytest.importorskip("mujoco")

from test_pixels import Slider  # noqa: E402
from test_pixels_checkpoint import slider_env  # noqa: E402

from mimex_jax import loop, trainer  # noqa: E402
from mimex_jax.trainer import HParams, TrainConfig  # noqa: E402

SEEDS, ITERATIONS, LENGTH, START, SCALE = 5, 40, 20, 0.4, 0.5
MARGIN = 3.0
CFG = TrainConfig(
    # The env id passes validation; make_env is replaced by the centring scene below.
    env_id="playground:CartpoleBalance", num_envs=16, rollout_len=16, epochs=4,
    minibatches=4, total_steps=16 * 16 * ITERATIONS, episode_length=LENGTH, reward="none",
    observation="pixels", embedding="encoder", actor_hidden=(64, 64),
    critic_hidden=(64, 64), activation="tanh", lr_schedule="constant",
    pixels=(("camera", "front"), ("height", 64), ("width", 64), ("frame_stack", 1),
            ("action_repeat", 1), ("encoder", "conv")),
)
HP = HParams(lr=1e-3, gamma=0.9)


class Centre(Slider):
    """The slider scene with a random start and a dense reward for a centred ball."""

    def reset(self, rng: jax.Array):
        s = super().reset(rng)
        x = jax.random.uniform(jax.random.fold_in(rng, 1), (), minval=-START, maxval=START)
        d = self._at(s.pipeline_state, x)
        return s.replace(pipeline_state=d, obs=d.qpos.astype(jnp.float32))

    def step(self, state, action: jax.Array):
        s = super().step(state, action)
        x = s.pipeline_state.qpos[0]
        return s.replace(reward=jnp.clip(1.0 - jnp.abs(x) / SCALE, 0.0, 1.0))


def centre_env(cfg: TrainConfig, num_envs: int):
    return slider_env(cfg, num_envs, scene=Centre)


def baseline_returns(policy: str, episodes: int = 512) -> np.ndarray:
    """Episode returns of ``policy`` ('random': uniform actions, 'still': zero actions) on
    the same task, stepped from state (the reward does not depend on the frames)."""
    env = Centre()

    def episode(key: jax.Array) -> jax.Array:
        k0, k1 = jax.random.split(key)
        state = env.reset(k0)
        acts = (jax.random.uniform(k1, (LENGTH, 1), minval=-1.0, maxval=1.0)
                if policy == "random" else jnp.zeros((LENGTH, 1)))

        def body(s, a):
            s = env.step(s, a)
            return s, s.reward

        return jnp.sum(jax.lax.scan(body, state, acts)[1])

    keys = jax.random.split(jax.random.key(123), episodes)
    return np.asarray(jax.jit(jax.vmap(episode))(keys))


def train_and_measure() -> dict:
    """Train the 5 seeds (one vmapped program) and return the figures the test checks."""
    trainer.make_env = centre_env  # this process only (run as a script by the test)
    random_ret = float(baseline_returns("random").mean())
    still_ret = float(baseline_returns("still").mean())
    runner = loop.make_runner(CFG, sweep=True)
    hps = jax.tree.map(lambda x: jnp.full((SEEDS,), x, jnp.float32), HP)
    keys = jnp.stack([jax.random.key(s) for s in range(SEEDS)])
    t0 = time.perf_counter()

    def progress(r: loop.ChunkResult) -> None:
        m = r.metrics
        ret = (m["episode_return"] * m["episodes"]).sum(1) / np.maximum(m["episodes"].sum(1), 1)
        print(f"  it {r.iterations}/{r.total_iterations} {time.perf_counter() - t0:.0f}s "
              f"mean episode return per seed {np.round(ret, 2).tolist()}", flush=True)

    _, metrics = loop.run(runner, hps, keys, chunk=10, callbacks=[progress])
    done, ret = metrics["episodes"], metrics["episode_return"]  # [seeds, iterations]

    def mean_return(sl: slice) -> list[float]:
        return ((ret[:, sl] * done[:, sl]).sum(1) / np.maximum(done[:, sl].sum(1), 1)).tolist()

    return {"random": random_ret, "still": still_ret, "seconds": time.perf_counter() - t0,
            "first5": mean_return(slice(0, 5)), "last5": mean_return(slice(-5, None)),
            "last5_episodes": done[:, -5:].sum(1).tolist(),
            "agent_steps_per_seed": CFG.num_iterations * CFG.steps_per_iteration}


@pytest.mark.slow
def test_ppo_learns_visual_centring_from_64x64_pixels(tmp_path) -> None:
    """Runs :func:`train_and_measure` in a subprocess under XLA's default CPU options: the
    suite's compile-speed options (conftest: LLVM -O0) make this conv-heavy training
    several times slower."""
    import json
    import os
    import subprocess
    import sys

    from conftest import TEST_XLA_FLAGS

    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if f not in TEST_XLA_FLAGS.split())
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, __file__, str(out)], env=env, check=True, timeout=3600)
    r = json.loads(out.read_text())
    bar = max(r["random"], r["still"]) + MARGIN
    print(f"\nvisual centring from 64x64 pixels, {SEEDS} seeds x {r['agent_steps_per_seed']:,} "
          f"agent steps, {r['seconds']:.0f} s: baselines random {r['random']:.2f}, still "
          f"{r['still']:.2f} (max 20); first 5 iterations {np.round(r['first5'], 2).tolist()}; "
          f"last 5 {np.round(r['last5'], 2).tolist()}; bar {bar:.2f}")
    assert 11.0 < r["still"] < 13.0  # 12 in expectation: the blind optimum
    assert all(e > 0 for e in r["last5_episodes"])
    assert all(x >= bar for x in r["last5"]), (r["last5"], bar)


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    Path(sys.argv[1]).write_text(json.dumps(train_and_measure()))


BALANCE_ARGS = ["--env", "playground:CartpoleBalance", "--methods", "random,none",
                "--num-envs", "32", "--rollout", "32", "--size", "64", "--episode-length",
                "100", "--lr", "1e-3", "--iterations", "300", "--epochs", "2",
                "--minibatches", "4", "--reward-scale", "0.1"]
BALANCE_MARGIN = 15.0


@pytest.mark.slow
def test_ppo_balances_cartpole_from_64x64_pixels(tmp_path) -> None:
    """PPO without a bonus, DrQ-v2's conv encoder learned through the PPO loss, 64x64 frames
    (3 stacked, action repeat 2), 100-agent-step episodes (return at most 200), 307,200
    agent steps per seed, ``hparams.reward_scale`` 0.1 (value targets of order one; at 1.0
    no run beat random, with a shared or a separate critic encoder; BENCHMARKS.md).
    Acceptance: every seed's mean return over the episodes of its last half of training is
    at least ``BALANCE_MARGIN`` above the best of the random policy's per-seed means (64
    episodes each, same task, stepped from state)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import TEST_XLA_FLAGS

    root = Path(__file__).resolve().parents[1]
    keep = os.environ.get("MIMEX_KEEP_RESULTS")
    out_dir = Path(keep) if keep else tmp_path
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if f not in TEST_XLA_FLAGS.split())
    script = str(root / "benchmarks" / "pixels_learning.py")
    parts = [(0, 3), (3, 2)]
    files = [out_dir / f"balance64_seeds{a}-{a + n - 1}.json" for a, n in parts]
    procs = [subprocess.Popen([sys.executable, script, *BALANCE_ARGS, "--first-seed", str(a),
                               "--seeds", str(n), "--out", str(f)], env=env, cwd=root)
             for (a, n), f in zip(parts, files, strict=True)]
    for p in procs:
        assert p.wait(timeout=3 * 3600) == 0
    merged = out_dir / "balance64.json"
    subprocess.run([sys.executable, script, "--merge", *map(str, files), "--out", str(merged)],
                   env=env, cwd=root, check=True)
    r = json.loads(merged.read_text())["methods"]
    random_means = [row["last_half_mean_episode_return"] for row in r["random"]]
    ppo = [row["last_half_mean_episode_return"] for row in r["none"]]
    bar = max(random_means) + BALANCE_MARGIN
    print(f"\nCartpoleBalance from 64x64 pixels: random {np.round(random_means, 2).tolist()}, "
          f"PPO last half {np.round(ppo, 2).tolist()}, bar {bar:.2f}")
    assert [row["seed"] for row in r["none"]] == list(range(5))
    assert 90.0 < float(np.median(random_means)) < 130.0  # about 110 (BENCHMARKS.md)
    assert all(x >= bar for x in ppo), (ppo, bar)


def test_balance_preset_is_the_slow_tests_setting() -> None:
    """``configs/tasks/cartpole_balance_pixels.yaml`` trains what the slow test trains."""
    import dataclasses
    import sys
    from pathlib import Path

    from mimex_jax.config import load_config

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import pixels_learning

    args = pixels_learning.parser().parse_args(BALANCE_ARGS)
    want = pixels_learning.config(args, "none")
    rc = load_config("configs/tasks/cartpole_balance_pixels.yaml")
    assert rc.train.pixel_config == want.pixel_config
    assert dataclasses.replace(rc.train, pixels=want.pixels) == want
    assert rc.hparams == pixels_learning.hparams(args)
    assert rc.hparams.reward_scale == 0.1 and list(rc.run.seeds) == [0, 1, 2, 3, 4]
