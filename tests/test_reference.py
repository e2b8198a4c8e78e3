"""Known-answer tests: reproduce the original PyTorch implementation's outputs exactly.

The cases in tests/reference were produced by the original MIMEx code (timm ViT blocks)
on random weights; cls/mask tokens and biases are non-zero on purpose, so a loader that
drops a parameter fails here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import load_case

from mimex_jax.interop import (
    icm_params_from_torch,
    mimex_params_from_torch,
    rnd_params_from_torch,
)
from mimex_jax.nn.transformer import sinusoidal_table
from mimex_jax.rewards import (
    ICMConfig,
    MIMExConfig,
    RewardBatch,
    icm,
    icm_reward,
    mimex_apply,
    mimex_loss,
    rnd,
    rnd_reward,
)
from mimex_jax.rewards.icm import ICMState
from mimex_jax.rewards.rnd import RNDConfig, RNDState

MIMEX_CASES = ["bert_T5_cls", "bert_T4_nocls_normloss", "mae_mask_all_T5"]


def mimex_case(name: str) -> tuple[dict, MIMExConfig]:
    case = load_case(name)
    c = case["cfg"]
    cfg = MIMExConfig(
        seq_len=c["seq_len"], feature_dim=c["feature_dim"], mask_ratio=c["mask_ratio"],
        use_cls=c["use_cls"], norm_loss=c.get("norm_loss", False),
        mask_all=c["model"] == "mae_mask_all", n_mask=c["n_mask"], lr=c["adam_lr"],
    )
    return case, cfg


@pytest.mark.parametrize("name", MIMEX_CASES)
def test_mimex_loss_and_pred_match_original(name: str) -> None:
    case, cfg = mimex_case(name)
    params = mimex_params_from_torch(case["sd"], cfg)
    loss, pred = mimex_apply(params, cfg, jnp.asarray(case["x"]), jnp.asarray(case["mask"]))
    np.testing.assert_allclose(loss, case["loss"], rtol=1e-5, atol=1e-6)
    # float32 predictions: |pred| reaches ~4 and six blocks of float32 rounding leave
    # ~2e-6 absolute noise in either implementation, so a few near-zero entries exceed
    # atol=1e-6. The float64 evaluation below meets rtol 1e-5 / atol 1e-6 everywhere.
    np.testing.assert_allclose(pred, case["pred"], rtol=1e-5, atol=3e-6)
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        loss64, pred64 = mimex_apply(
            p64, cfg, jnp.asarray(case["x"], jnp.float64), jnp.asarray(case["mask"]))
        assert pred64.dtype == jnp.float64
        np.testing.assert_allclose(loss64, case["loss"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pred64, case["pred"], rtol=1e-5, atol=1e-6)
    # The public loss function and the jitted general path (K = T) agree too.
    loss_jit = jax.jit(mimex_loss, static_argnums=1)(
        params, cfg, jnp.asarray(case["x"]), jnp.asarray(case["mask"]))
    np.testing.assert_allclose(loss_jit, case["loss"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MIMEX_CASES)
def test_mimex_loss_after_one_adam_step_matches_original(name: str) -> None:
    case, cfg = mimex_case(name)
    params = mimex_params_from_torch(case["sd"], cfg)
    x, mask = jnp.asarray(case["x"]), jnp.asarray(case["mask"])
    opt = optax.adam(case["cfg"]["adam_lr"])

    @jax.jit
    def step(p):
        def mean_loss(q):
            return jnp.mean(mimex_apply(q, cfg, x, mask, num_slots=cfg.seq_len)[0])

        grads = jax.grad(mean_loss)(p)
        updates, _ = opt.update(grads, opt.init(p), p)
        return optax.apply_updates(p, updates)

    after = mimex_loss(step(params), cfg, x, mask)
    np.testing.assert_allclose(after, case["loss_after_step"], rtol=1e-4)
    # The step changed the loss (the check is not vacuous).
    assert not np.allclose(after, case["loss"], rtol=1e-4)


@pytest.mark.parametrize("name", MIMEX_CASES)
def test_positional_tables_match_original_buffers(name: str) -> None:
    case, cfg = mimex_case(name)
    for key, arr in case["sd"].items():
        if key.endswith(".pe"):
            np.testing.assert_allclose(sinusoidal_table(*arr.shape[1:])[None], arr, atol=1e-6)


def test_rnd_reward_and_step_match_original() -> None:
    case = load_case("rnd_D32")
    params = rnd_params_from_torch(case["sd"])
    obs = jnp.asarray(case["obs"])
    np.testing.assert_allclose(rnd_reward(params, obs), case["reward"], rtol=1e-5, atol=1e-6)

    reward_fn = rnd(RNDConfig(obs_dim=obs.shape[1], lr=case["cfg"]["adam_lr"]))
    state = reward_fn.init(jax.random.key(0), RewardBatch(obs=obs))
    state = RNDState(params, state.opt_state)
    new_state, r, _ = jax.jit(reward_fn.update)(state, RewardBatch(obs=obs), jax.random.key(1))
    np.testing.assert_allclose(r, case["reward"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rnd_reward(new_state.params, obs), case["reward_after_step"],
                               rtol=1e-4)
    # The target network is frozen.
    chex_equal = jax.tree.map(np.array_equal, new_state.params["target"], params["target"])
    assert all(jax.tree.leaves(chex_equal))


def test_icm_reward_matches_original() -> None:
    case = load_case("icm_D32_A2")
    params = icm_params_from_torch(case["sd"])
    obs, nxt, act = (jnp.asarray(case[k]) for k in ("obs", "next_obs", "action"))
    np.testing.assert_allclose(icm_reward(params, obs, nxt, act), case["reward"],
                               rtol=1e-5, atol=1e-6)
    # update() returns the same pre-update reward, then changes all three modules.
    c = case["cfg"]
    reward_fn = icm(ICMConfig(obs_dim=c["obs_dim"], action_dim=c["action_dim"], lr=c["adam_lr"]))
    batch = RewardBatch(obs=obs, next_obs=nxt, action=act)
    st = reward_fn.init(jax.random.key(0), batch)
    st = ICMState(params, st.inv_opt_state, st.for_opt_state)
    new, r, metrics = reward_fn.update(st, batch, jax.random.key(1))
    np.testing.assert_allclose(r, case["reward"], rtol=1e-5, atol=1e-6)
    for module in ("enc", "inv_model", "for_model"):
        changed = jax.tree.map(lambda a, b: not np.allclose(a, b), new.params[module],
                               params[module])
        assert any(jax.tree.leaves(changed)), module
    assert float(metrics["loss"]) == pytest.approx(float(np.mean(case["reward"])), rel=1e-5)
