"""The composable API: integral types, init from the config, leading axes, jit as written,
and the bonus registry with a bonus registered from outside the package."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimex_jax import masks
from mimex_jax.config import ConfigError, from_dict
from mimex_jax.rewards import (
    ICMConfig,
    IntrinsicReward,
    MIMExConfig,
    RewardBatch,
    RNDConfig,
    icm,
    init_mimex_params,
    mimex,
    mimex_loss,
    registry,
    rnd,
)
from mimex_jax.trainer import HParams, TrainConfig, make_train

SMALL = dict(embed_dim=16, depth=1, num_heads=2, decoder_embed_dim=8, decoder_num_heads=2)


def test_configs_accept_numpy_and_jax_integers() -> None:
    cfg = MIMExConfig(seq_len=np.int64(5), feature_dim=np.int32(4), **SMALL)
    assert type(cfg.feature_dim) is int and cfg.feature_dim == 4
    assert RNDConfig(obs_dim=jnp.asarray(7)).obs_dim == 7
    assert ICMConfig(obs_dim=np.uint8(3), action_dim=2).obs_dim == 3
    with pytest.raises(ValueError, match=r"feature_dim=4.0 is invalid; allowed: an integer "
                                         r">= 1 \(got builtins.float\)"):
        MIMExConfig(seq_len=5, feature_dim=4.0)
    with pytest.raises(ValueError, match=r"obs_dim=True .*\(got builtins.bool\)"):
        RNDConfig(obs_dim=True)


@pytest.mark.parametrize("make", [
    lambda: mimex(MIMExConfig(seq_len=3, feature_dim=4, **SMALL)),
    lambda: rnd(RNDConfig(obs_dim=4, feature_dim=8, hidden_dim=8)),
    lambda: icm(ICMConfig(obs_dim=4, action_dim=2, feature_dim=8, hidden_dim=8)),
], ids=["mimex", "rnd", "icm"])
def test_init_from_config_alone_and_leading_axes(make) -> None:
    bonus: IntrinsicReward = make()
    state = bonus.init(jax.random.key(0))          # no dummy batch needed
    seq = jax.random.normal(jax.random.key(1), (2, 3, 3, 4))   # [steps, envs, T, D]
    batch = RewardBatch(seq=seq, obs=seq[..., -1, :], next_obs=seq[..., -2, :],
                        action=jnp.ones((2, 3, 2)))
    flat = RewardBatch(*(x.reshape((6,) + x.shape[2:]) for x in batch))
    k = jax.random.key(2)
    r = bonus.reward(state, batch, k)
    assert r.shape == (2, 3)
    np.testing.assert_allclose(r.reshape(6), bonus.reward(state, flat, k), rtol=1e-6)
    new, r_upd, _ = jax.jit(bonus.update)(state, batch, k)
    assert r_upd.shape == (2, 3)
    one = RewardBatch(*(x[0, 0] for x in batch))   # a single sample: scalar reward
    assert bonus.reward(new, one, k).shape == ()
    bad = batch._replace(obs=seq[0, :, -1])
    with pytest.raises(ValueError, match="leading axes"):
        bonus.reward(state, bad, k)


def test_jit_of_mimex_loss_as_written() -> None:
    cfg = MIMExConfig(seq_len=3, feature_dim=4, **SMALL)
    params = init_mimex_params(jax.random.key(0), cfg)
    seq = jax.random.normal(jax.random.key(1), (5, 3, 4))
    mask = masks.uniform_token(jax.random.key(2), (5, 3), 0.7)
    np.testing.assert_allclose(jax.jit(mimex_loss)(params, cfg, seq, mask),
                               mimex_loss(params, cfg, seq, mask), rtol=1e-6)


# ---------------------------------------------------------------- a bonus from outside


@dataclasses.dataclass(frozen=True)
class NormConfig:
    """Toy bonus: scale * |newest embedding|^2 (no learning)."""

    feature_dim: int
    scale: float = 1.0


class NormState(NamedTuple):
    calls: jax.Array


def norm_bonus(cfg: NormConfig) -> IntrinsicReward:
    def init(key, batch=None):
        return NormState(jnp.zeros((), jnp.int32))

    def reward(state, batch, key):
        return cfg.scale * jnp.sum(jnp.square(batch.seq[:, -1]), axis=-1)

    def update(state, batch, key):
        return NormState(state.calls + 1), reward(state, batch, key), {"calls": state.calls}

    return IntrinsicReward(init, reward, update)


@pytest.fixture
def toy_registered():
    registry.register(registry.BonusSpec(
        "toy_norm", NormConfig, lambda ctx, cfg: norm_bonus(cfg), derived=("feature_dim",),
        config_args=lambda ctx: {"feature_dim": ctx.feature_dim}))
    yield
    registry.unregister("toy_norm")


def test_registered_bonus_trains_and_configures_from_yaml(toy_registered) -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("toy_norm"))
    data = {"train": {"env_id": "gymnax:MountainCar-v0", "num_envs": 2, "rollout_len": 4,
                      "epochs": 1, "minibatches": 1, "total_steps": 8, "reward": "toy_norm",
                      "actor_hidden": [8], "critic_hidden": [8], "bonus": {"scale": 3.0}}}
    rc = from_dict(data)
    assert dict(rc.train.bonus) == {"scale": 3.0}
    init, update_step, _, _ = make_train(rc.train)
    state = init(jax.random.key(0), HParams())
    state, metrics = jax.jit(update_step)(state, HParams())
    assert int(state.reward_state.calls) == 1 and float(metrics["reward_model/calls"]) == 0
    obs = np.asarray(state.window[:, -1])  # the bonus scored windows of the raw obs
    assert float(metrics["reward_int"]) > 0 and obs.shape == (2, 2)
    bad = {**data, "train": {**data["train"], "bonus": {"width": 3}}}
    with pytest.raises(ConfigError, match=r"train.bonus.width is not a setting of bonus "
                                          r"'toy_norm'; allowed: \['scale'\]"):
        from_dict(bad)
    derived = {**data, "train": {**data["train"], "bonus": {"scale": "x"}}}
    with pytest.raises(ConfigError, match="train.bonus.scale"):
        from_dict(derived)


def test_unknown_reward_lists_registered_ones() -> None:
    with pytest.raises(ValueError, match=r"reward='nope' is invalid; allowed: a registered "
                                         r"bonus \[.*'mimex'.*\]"):
        TrainConfig(reward="nope")
    with pytest.raises(ValueError, match="rnd.*hidden_dim"):
        registry.get("rnd").build(registry.BonusContext(5, 4, 1, False), {"hidden": 3})
