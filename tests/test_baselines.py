"""RND, ICM (continuous and discrete), running mean, none; interop key errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_case

from mimex_jax.interop import (
    icm_params_from_torch,
    mimex_params_from_torch,
    rnd_params_from_torch,
)
from mimex_jax.rewards import (
    ICMConfig,
    MIMExConfig,
    RewardBatch,
    RNDConfig,
    RunningMeanConfig,
    icm,
    none,
    rnd,
    running_mean,
)


def test_rnd_uses_last_sequence_entry_when_obs_missing() -> None:
    fn = rnd(RNDConfig(obs_dim=4, hidden_dim=16, feature_dim=8))
    seq = jax.random.normal(jax.random.key(0), (6, 3, 4))
    state = fn.init(jax.random.key(1))
    a = fn.reward(state, RewardBatch(seq=seq), jax.random.key(2))
    b = fn.reward(state, RewardBatch(obs=seq[:, -1]), jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="obs_dim=4"):
        fn.reward(state, RewardBatch(obs=jnp.zeros((2, 5))), jax.random.key(0))


def test_icm_discrete_actions_train_inverse_model() -> None:
    cfg = ICMConfig(obs_dim=5, action_dim=3, feature_dim=16, hidden_dim=32, discrete=True)
    fn = icm(cfg)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    obs = jax.random.normal(k1, (64, 5))
    action = jax.random.randint(k2, (64,), 0, 3)
    # next_obs depends on the action, so the inverse model can learn it.
    next_obs = obs + jax.nn.one_hot(action, 5) * 3.0
    batch = RewardBatch(obs=obs, next_obs=next_obs, action=action)
    state = fn.init(k3, batch)
    update = jax.jit(fn.update)
    _, r0, m0 = update(state, batch, k3)
    for _ in range(60):
        state, r, m = update(state, batch, k3)
    assert r.shape == (64,)
    assert float(m["inverse_loss"]) < 0.5 * float(m0["inverse_loss"])
    assert float(m["loss"]) < float(m0["loss"])
    with pytest.raises(ValueError, match="discrete"):
        fn.update(state, RewardBatch(obs=obs, next_obs=next_obs,
                                     action=jnp.zeros((64, 3))), k3)


def test_running_mean_reward_is_distance_to_past_mean() -> None:
    fn = running_mean(RunningMeanConfig(seq_len=2, feature_dim=3))
    a = jnp.ones((4, 2, 3))
    state = fn.init(jax.random.key(0))
    state, r, _ = fn.update(state, RewardBatch(seq=a), jax.random.key(0))
    np.testing.assert_allclose(r, 1.0)  # distance to the zero initial mean
    state, r, _ = fn.update(state, RewardBatch(seq=3 * a), jax.random.key(0))
    np.testing.assert_allclose(r, 4.0)  # (3 - 1)^2 against the mean of the first batch
    np.testing.assert_allclose(state.mean, 2.0)  # mean over both batches (4 + 4 seqs)
    assert float(state.count) == 8.0


def test_none_returns_zeros() -> None:
    fn = none()
    seq = jnp.ones((7, 3, 2))
    state = fn.init(jax.random.key(0), RewardBatch(seq=seq))
    state, r, metrics = fn.update(state, RewardBatch(seq=seq), jax.random.key(0))
    np.testing.assert_array_equal(r, np.zeros(7))


def test_interop_errors_name_the_key() -> None:
    case = load_case("bert_T5_cls")
    cfg = MIMExConfig(seq_len=5, feature_dim=32)
    sd = dict(case["sd"])
    missing = {k: v for k, v in sd.items() if k != "cls_token"}
    with pytest.raises(ValueError, match=r"missing key\(s\) \['cls_token'\]"):
        mimex_params_from_torch(missing, cfg)
    with pytest.raises(ValueError, match="unexpected key 'blocks.9.norm1.weight'"):
        mimex_params_from_torch({**sd, "blocks.9.norm1.weight": np.ones(128)}, cfg)
    bad = {**sd, "blocks.1.attn.qkv.weight": np.ones((384, 64), np.float32)}
    with pytest.raises(ValueError, match=r"'blocks.1.attn.qkv.weight' has shape \(384, 64\); "
                                         r"expected \(384, 128\)"):
        mimex_params_from_torch(bad, cfg)
    # A no-cls config refuses a state_dict that carries a cls token.
    with pytest.raises(ValueError, match="unexpected key 'cls_token'"):
        mimex_params_from_torch(sd, MIMExConfig(seq_len=5, feature_dim=32, use_cls=False))
    rnd_sd = load_case("rnd_D32")["sd"]
    with pytest.raises(ValueError, match="missing key 'predictor.0.weight'"):
        rnd_params_from_torch({k: v for k, v in rnd_sd.items() if k != "predictor.0.weight"})
    with pytest.raises(ValueError, match=r"missing key\(s\) \['target.4.bias'\]"):
        rnd_params_from_torch({k: v for k, v in rnd_sd.items() if k != "target.4.bias"})
    icm_sd = load_case("icm_D32_A2")["sd"]
    with pytest.raises(ValueError, match="'for_model.0.weight' has shape"):
        icm_params_from_torch({**icm_sd, "for_model.0.weight": np.ones((256, 291), np.float32)})


def test_running_stats_merge_equals_pooled_statistics() -> None:
    from mimex_jax.rewards.normalize import init_stats, update_stats

    a = jax.random.normal(jax.random.key(0), (50, 3)) * 2.0 + 1.0
    b = jax.random.normal(jax.random.key(1), (70, 3)) - 3.0
    stats = update_stats(update_stats(init_stats((3,)), a, axis=0), b, axis=0)
    pooled = np.concatenate([np.asarray(a), np.asarray(b)])
    # The 1e-4 prior count (mean 0, var 1) shifts the result by ~1e-6.
    np.testing.assert_allclose(stats.mean, pooled.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats.var, pooled.var(0), rtol=1e-4, atol=1e-4)
    scalar = update_stats(init_stats(), a)
    np.testing.assert_allclose(scalar.var, np.asarray(a).var(), rtol=1e-4)
