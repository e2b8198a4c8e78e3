"""Fused trainer: sequence windows, sweep == single runs, determinism, validation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimex_jax import windows
from mimex_jax.sweep import cover_mask_ratios, grid
from mimex_jax.trainer import HParams, TrainConfig, make_stages, make_train

TINY = TrainConfig(
    env_id="gymnax:MountainCar-v0", num_envs=4, rollout_len=8, epochs=2, minibatches=2,
    total_steps=4 * 8 * 3, episode_length=10, reward="mimex",
    actor_hidden=(16,), critic_hidden=(16,),
    mimex=(("embed_dim", 16), ("depth", 1), ("num_heads", 2), ("decoder_embed_dim", 8)),
)


def test_windows_pad_and_reset_at_episode_boundaries() -> None:
    e = lambda v: jnp.full((2, 1), float(v))
    w = windows.start(e(1), 3)
    np.testing.assert_array_equal(w[:, :, 0], [[0, 0, 1], [0, 0, 1]])
    done = jnp.array([0.0, 1.0])
    seq, w = windows.step(w, e(2), jnp.array([[2.0], [9.0]]), done)
    # Both score the transition on a sequence ending at the produced (terminal) obs ...
    np.testing.assert_array_equal(seq[:, :, 0], [[0, 1, 2], [0, 1, 2]])
    # ... but env 1's window restarts with only its new episode's first obs (9).
    np.testing.assert_array_equal(w[:, :, 0], [[0, 1, 2], [0, 0, 9]])
    seq, w = windows.step(w, e(3), e(3), jnp.zeros(2))
    np.testing.assert_array_equal(seq[:, :, 0], [[1, 2, 3], [0, 9, 3]])


SWEEP_HPS, SWEEP_LABELS = grid(k_expl=[0.0, 0.5], mask_ratio=[0.5, 0.7])


@pytest.fixture(scope="module")
def tiny_train():
    # The static MIMEx config covers the sweep's smallest mask ratio (0.5 -> 2 slots).
    cfg = cover_mask_ratios(TINY, SWEEP_HPS)
    assert dict(cfg.mimex)["mask_ratio"] == 0.5
    _, _, train, _ = make_train(cfg)
    return jax.jit(train)


def test_sweep_of_four_equals_single_runs(tiny_train) -> None:
    hps, labels = SWEEP_HPS, SWEEP_LABELS
    keys = jnp.stack([jax.random.key(i) for i in range(4)])
    _, swept = jax.jit(jax.vmap(tiny_train))(keys, hps)
    assert swept["episode_return"].shape == (4, 3)
    assert float(swept["reward_model/slot_overflow"].max()) == 0.0
    for i in range(4):
        hp = jax.tree.map(lambda x, i=i: x[i], hps)
        _, single = tiny_train(jax.random.key(i), hp)
        for name in ("reward_int", "value_loss", "policy_loss", "episode_return"):
            np.testing.assert_allclose(swept[name][i], single[name], rtol=2e-4, atol=1e-5,
                                       err_msg=f"{labels[i]} {name}")
    # k_expl = 0 really removes the bonus from the return.
    assert float(swept["expl_weight"][0, 0]) == 0.0 and float(swept["expl_weight"][2, 0]) > 0


def test_same_key_same_metrics(tiny_train) -> None:
    # A sweep member's hparams (float32 arrays): the program test_sweep_of_four compiled.
    # ``HParams()`` holds weakly typed Python floats, a different signature to jit.
    hp = jax.tree.map(lambda x: x[0], SWEEP_HPS)
    _, a = tiny_train(jax.random.key(3), hp)
    _, b = tiny_train(jax.random.key(3), hp)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    _, c = tiny_train(jax.random.key(4), hp)
    assert not np.array_equal(a["reward_int"], c["reward_int"])


def test_config_and_hparam_validation() -> None:
    with pytest.raises(ValueError, match="minibatches=3 is invalid; allowed: a divisor"):
        TrainConfig(num_envs=4, rollout_len=8, minibatches=3)
    with pytest.raises(ValueError, match="center_intrinsic='batch' is invalid; allowed: "
                                         "'none' unless normalize_intrinsic"):
        TrainConfig(center_intrinsic="batch")
    with pytest.raises(ValueError, match="center_intrinsic=True is invalid; allowed: "
                                         r"\['none', 'running', 'batch'\]"):
        TrainConfig(center_intrinsic=True, normalize_intrinsic=True)
    with pytest.raises(ValueError, match="reward='curiosity' is invalid"):
        TrainConfig(reward="curiosity")
    with pytest.raises(ValueError, match=r"hparams.gamma=1.5 is invalid; allowed: in \[0, 1\]"):
        HParams(gamma=1.5).validate()
    with pytest.raises(ValueError, match="sweep axis 'gama' is unknown"):
        grid(gama=[0.9])


def test_reward_scale_multiplies_the_task_reward_the_learner_sees() -> None:
    # learn() with reward_scale s on a rollout equals learn() with scale 1 on the same
    # rollout whose task rewards were multiplied by s (bit for bit: the same float ops);
    # the bonus (k_expl * r_int) is not scaled.
    init, stages = make_stages(dataclasses.replace(TINY, reward="rnd", embedding="obs"))
    hp = HParams(k_expl=0.5, gamma=0.9)
    state = init(jax.random.key(0), hp)
    col = jax.jit(stages.collect)(state, hp)
    _, r_int, _ = jax.jit(stages.score)(state, hp, col)
    assert float(jnp.abs(r_int).max()) > 0 and float(jnp.abs(col.traj.reward).max()) > 0
    learn = jax.jit(stages.learn)
    s = 0.1
    scaled = col._replace(traj=col.traj._replace(reward=s * col.traj.reward))
    a = learn(state, hp._replace(reward_scale=s), col, r_int)
    b = learn(state, hp, scaled, r_int)
    for x, y in zip(jax.tree.leaves(a[:2]), jax.tree.leaves(b[:2]), strict=True):
        np.testing.assert_array_equal(x, y)
    c = learn(state, hp, col, r_int)
    assert not np.allclose(a[2]["value_loss"], c[2]["value_loss"])
    with pytest.raises(ValueError, match=r"hparams.reward_scale=0.0 is invalid; allowed: > 0"):
        HParams(reward_scale=0.0).validate()


@pytest.mark.parametrize("reward,embedding", [
    ("none", "obs"), ("rnd", "random_projection"), ("running_mean", "torso"),
    ("icm", "obs"),
])
def test_every_reward_and_embedding_runs(reward: str, embedding: str) -> None:
    cfg = dataclasses.replace(
        TINY, env_id="gymnax:MountainCarContinuous-v0", reward=reward, embedding=embedding,
        epochs=1, total_steps=4 * 8 * 2, intrinsic_value_head=reward == "rnd")
    _, _, train, _ = make_train(cfg)
    _, metrics = jax.jit(train)(jax.random.key(0), HParams())
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in metrics.values())
    if reward == "none":
        assert float(jnp.max(jnp.abs(metrics["reward_int"]))) == 0.0
    else:
        assert float(metrics["reward_int"][-1]) > 0.0
