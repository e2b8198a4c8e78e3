"""Checkpoint/resume of a pixel run is exact (issue 13's acceptance list).

A pixel PPO run (uint8 frame stacks and MJX data in the env state, DrQ-v2's conv encoder
learned through the PPO loss) on the one-joint MJX scene of ``test_pixels.py`` (rendered by
MuJoCo's batch renderer), so that only the renderer and the agent compile, not a task's
physics: one update, a checkpoint, a restore into an abstract template, and the next update
from the restored state equal to the uninterrupted run's in every bit.

No bonus: a cold run of this file took 19 s of CPU (with imports; 81-97 s of wall time on the
shared 2-core VM at load 12); with MIMEx it took 26 s, over the 20 s budget of a default
test. Resuming MIMEx's state exactly is tested on state runs (tests/test_checkpoint.py).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("warp")
pytest.importorskip("mujoco")

from test_checkpoint import assert_identical  # noqa: E402
from test_pixels import Slider  # noqa: E402

from mimex_jax import trainer  # noqa: E402
from mimex_jax.checkpoint import Checkpointer  # noqa: E402
from mimex_jax.envs.pixels import ActionRepeat, PixelObservation  # noqa: E402
from mimex_jax.envs.wrappers import AutoReset, EpisodeStats, EpisodeTimeLimit, VecEnv  # noqa: E402
from mimex_jax.trainer import HParams, TrainConfig  # noqa: E402

CFG = TrainConfig(
    # The env id passes validation; make_env is replaced by the slider scene below.
    env_id="playground:CartpoleSwingupSparse", num_envs=2, rollout_len=4, epochs=1,
    minibatches=1, total_steps=2 * 4 * 3, episode_length=3, reward="none",
    observation="pixels", embedding="encoder", actor_hidden=(8,), critic_hidden=(8,),
    pixels=(("camera", "front"), ("height", 16), ("width", 16), ("frame_stack", 2),
            ("action_repeat", 1)),
)
HP = HParams(lr=3e-3)


def slider_env(cfg: TrainConfig, num_envs: int, scene: type = Slider):
    """The trainer's env stack over the slider scene (or a subclass ``scene``), rendered as
    ``cfg.pixels`` says."""
    px = cfg.pixel_config
    inner = EpisodeStats(EpisodeTimeLimit(ActionRepeat(scene(), px.action_repeat),
                                          cfg.episode_length))
    return AutoReset(PixelObservation(VecEnv(inner, num_envs), px))


def test_pixel_run_resumes_exactly_from_a_checkpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(trainer, "make_env", slider_env)
    init, update_step, _, env = trainer.make_train(CFG)
    assert isinstance(env.env, PixelObservation)
    update = jax.jit(update_step)
    s1, _ = update(jax.jit(init)(jax.random.key(0), HP), HP)
    assert s1.env_state.obs.dtype == jnp.uint8 and s1.env_state.obs.shape == (2, 16, 16, 6)
    assert int(np.asarray(s1.env_state.obs).std()) > 0  # real frames, not zeros
    template = jax.eval_shape(init, jax.random.key(0), HP)
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, s1, CFG, HP)
        restored, hp, _ = ckpt.restore(template, cfg=CFG)
    assert_identical(s1, restored)
    assert hp == HP
    # The uninterrupted run's next update and the resumed one agree in every bit.
    a, metrics_a = update(s1, HP)
    b, metrics_b = update(restored, hp)
    assert_identical(a, b)
    for k in metrics_a:
        np.testing.assert_array_equal(metrics_a[k], metrics_b[k], err_msg=k)


def test_pixel_sweep_members_equal_runs_alone(monkeypatch) -> None:
    """A vmapped sweep of pixel runs (two seeds, two learning rates in one program) renders
    through one context of 2 x num_envs worlds; each member equals its run alone."""
    monkeypatch.setattr(trainer, "make_env", slider_env)
    init, update_step, _, _ = trainer.make_train(CFG)
    keys = jax.random.split(jax.random.key(3), 2)
    hps = [HParams(lr=3e-3), HParams(lr=1e-2)]
    hp_stack = jax.tree.map(lambda *x: jnp.stack(x), *hps)
    sweep = jax.jit(jax.vmap(lambda k, hp: update_step(init(k, hp), hp)))
    states, metrics = sweep(keys, hp_stack)
    alone = jax.jit(lambda k, hp: update_step(init(k, hp), hp))
    frames = np.asarray(states.env_state.obs)
    assert frames.shape == (2, 2, 16, 16, 6) and frames.dtype == np.uint8
    assert np.any(frames[0] != frames[1])  # the members' worlds are their own
    for i, hp in enumerate(hps):
        s, m = alone(keys[i], hp)
        # the rollout ran on the initial policy: the same actions, the same frames
        np.testing.assert_array_equal(np.asarray(s.env_state.obs), frames[i])
        for k in m:
            np.testing.assert_allclose(np.asarray(metrics[k][i]), np.asarray(m[k]),
                                       rtol=1e-4, atol=1e-5, err_msg=k)
        for a, b in zip(jax.tree.leaves(s.params), jax.tree.leaves(states.params),
                        strict=True):
            np.testing.assert_allclose(np.asarray(b[i]), np.asarray(a), rtol=1e-4,
                                       atol=1e-6)


def test_frozen_encoder_features_are_stored_in_the_rollout(monkeypatch) -> None:
    """A frozen encoder's features replace the frames in the rollout when they are smaller
    (the tiny ViT's: 2 x 16 floats against 16 x 16 x 6 bytes, but not the random conv's
    32 x 9 x 9 floats at 32x32 against 32 x 32 x 6 bytes); the update equals that of a
    rollout of frames (``cache_features: false``) up to float rounding."""
    import dataclasses

    monkeypatch.setattr(trainer, "make_env", slider_env)

    def config(encoder: str, size: int, cache: bool, **kw) -> TrainConfig:
        px = dict(CFG.pixels, height=size, width=size, encoder=encoder, cache_features=cache,
                  **kw)
        return dataclasses.replace(CFG, pixels=tuple(sorted(px.items())))

    conv = config("random_conv", 32, True)
    env = slider_env(conv, conv.num_envs)
    assert trainer._frozen_features(conv, trainer.make_network(conv, env), env) is None
    vit = dict(vit_patch=4, vit_width=16, vit_depth=1, vit_heads=2, vit_grid=4)
    runs = {}
    for cache in (True, False):
        cfg = config("vit", 16, cache, **vit)
        init, stages = trainer.make_stages(cfg)
        s0 = jax.jit(init)(jax.random.key(0), HP)
        obs = jax.eval_shape(stages.collect, s0, HP).traj.obs
        if cache:
            assert set(obs) == {"features"} and obs["features"].shape == (4, 2, 32)
        else:
            assert obs.dtype == jnp.uint8 and obs.shape == (4, 2, 16, 16, 6)
        _, update_step, _, _ = trainer.make_train(cfg)
        runs[cache] = jax.jit(update_step)(s0, HP)
    (a, ma), (b, mb) = runs[True], runs[False]
    # the frozen encoder keeps its weights and gets no Adam moments
    s0 = jax.jit(trainer.make_train(cfg)[0])(jax.random.key(0), HP)
    jax.tree.map(np.testing.assert_array_equal, a.params["encoder"], s0.params["encoder"])
    adam = a.opt_state.inner_state[0]
    assert "encoder" not in adam.mu and "encoder" not in adam.nu and "heads" in adam.mu
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    for k in ma:
        np.testing.assert_allclose(ma[k], mb[k], rtol=1e-4, atol=1e-5, err_msg=k)
