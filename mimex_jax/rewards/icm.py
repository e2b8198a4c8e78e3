"""Intrinsic Curiosity Module (Pathak et al., 2017) as the original MIMEx code runs it.

* encoder ``enc``: Linear(D, 288);
* inverse model ``inv_model``: Linear(576, 256)-ReLU-Linear(256, A), trained together
  with the encoder (MSE for continuous actions, cross-entropy for discrete ones);
* forward model ``for_model``: Linear(288 + A, 256)-ReLU-Linear(256, 288) on
  stop-gradient features (discrete actions enter one-hot).

Two Adam optimizers (lr 1e-3). The reward is the forward model's MSE, averaged over the
288 features, computed with the encoder and forward model as they were *before* this
update -- the original updates the inverse model first but detaches the features it
computed before that step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mimex_jax.nn.mlp import TorchMLP, torch_linear_bias_init, torch_linear_kernel_init
from mimex_jax.rewards.base import (
    IntrinsicReward,
    Metrics,
    PRNGKey,
    RewardBatch,
    all_finite,
    check_finite,
    guard_update,
    integral_fields,
    require,
    require_array,
    static_config,
    with_leading_axes,
)


@static_config
@dataclasses.dataclass(frozen=True)
class ICMConfig:
    """Static ICM configuration. ``discrete=True``: actions are int indices < action_dim."""

    obs_dim: int
    action_dim: int
    feature_dim: int = 288
    hidden_dim: int = 256
    lr: float = 1e-3
    discrete: bool = False

    def __post_init__(self) -> None:
        integral_fields(self, ("obs_dim", "action_dim", "feature_dim", "hidden_dim"))
        require("lr", self.lr, isinstance(self.lr, (int, float)) and math.isfinite(self.lr)
                and self.lr > 0, "a finite number > 0")


class ICMNetworks(nn.Module):
    cfg: ICMConfig

    def setup(self) -> None:
        c = self.cfg
        self.enc = nn.Dense(c.feature_dim, kernel_init=torch_linear_kernel_init(),
                            bias_init=torch_linear_bias_init(c.obs_dim), name="enc")
        self.inv_model = TorchMLP((c.hidden_dim, c.action_dim), name="inv_model")
        self.for_model = TorchMLP((c.hidden_dim, c.feature_dim), name="for_model")

    def encode(self, obs: jax.Array) -> jax.Array:
        return self.enc(obs)

    def inverse(self, feat: jax.Array, next_feat: jax.Array) -> jax.Array:
        return self.inv_model(jnp.concatenate([feat, next_feat], axis=-1))

    def forward(self, feat: jax.Array, action: jax.Array) -> jax.Array:
        return self.for_model(jnp.concatenate([feat, action], axis=-1))

    def __call__(self, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, ...]:
        feat = self.encode(obs)
        return self.inverse(feat, feat), self.forward(feat, action)


@functools.partial(jax.jit, static_argnums=1)
def init_icm_params(key: PRNGKey, cfg: ICMConfig) -> Any:
    obs = jnp.zeros((1, cfg.obs_dim), jnp.float32)
    act = jnp.zeros((1, cfg.action_dim), jnp.float32)
    return ICMNetworks(cfg).init(key, obs, act)["params"]


def _action_input(cfg: ICMConfig, action: jax.Array) -> jax.Array:
    if cfg.discrete:
        return jax.nn.one_hot(action, cfg.action_dim, dtype=jnp.float32)
    return action.astype(jnp.float32)


def _features(params: Any, cfg: ICMConfig, obs: jax.Array, next_obs: jax.Array):
    net = ICMNetworks(cfg)
    enc = lambda o: net.apply({"params": params}, o, method=ICMNetworks.encode)
    return enc(obs), enc(next_obs)


def _forward_error(params: Any, cfg: ICMConfig, feat: jax.Array, next_feat: jax.Array,
                   action: jax.Array) -> jax.Array:
    pred = ICMNetworks(cfg).apply({"params": params}, feat, _action_input(cfg, action),
                                  method=ICMNetworks.forward)
    return jnp.mean(jnp.square(pred - next_feat), axis=-1)


def _config_from_params(params: Any, discrete: bool) -> ICMConfig:
    obs_dim, feat = params["enc"]["kernel"].shape
    hidden, action_dim = params["inv_model"]["layers_2"]["kernel"].shape
    return ICMConfig(obs_dim=obs_dim, action_dim=action_dim, feature_dim=feat,
                     hidden_dim=hidden, discrete=discrete)


def icm_reward(params: Any, obs: jax.Array, next_obs: jax.Array, action: jax.Array
               ) -> jax.Array:
    """Per-sample forward-model error on encoder features -> ``[B]``.

    Integer ``action`` of shape ``[B]`` is treated as discrete (one-hot), float
    ``[B, A]`` as continuous.
    """
    cfg = _config_from_params(params, discrete=bool(jnp.issubdtype(action.dtype, jnp.integer)))
    _check(cfg, obs, next_obs, action)
    return _reward_jit(params, cfg, obs, next_obs, action)


@functools.partial(jax.jit, static_argnums=1)
def _reward_jit(params: Any, cfg: ICMConfig, obs: jax.Array, next_obs: jax.Array,
                action: jax.Array) -> jax.Array:
    feat, next_feat = _features(params, cfg, obs, next_obs)
    return _forward_error(params, cfg, feat, next_feat, action)


def _check(cfg: ICMConfig, obs: jax.Array, next_obs: jax.Array, action: jax.Array) -> None:
    for name, x in (("obs", obs), ("next_obs", next_obs)):
        if x.ndim != 2 or x.shape[-1] != cfg.obs_dim:
            raise ValueError(f"icm: {name} shape {tuple(x.shape)} is invalid; allowed: "
                             f"[B, obs_dim={cfg.obs_dim}]")
        check_finite(name, x)
    want = (obs.shape[0],) if cfg.discrete else (obs.shape[0], cfg.action_dim)
    if tuple(action.shape) != want:
        raise ValueError(f"icm: action shape {tuple(action.shape)} is invalid; allowed: "
                         f"{list(want)} ({'discrete' if cfg.discrete else 'continuous'})")
    check_finite("action", action)


class ICMState(NamedTuple):
    params: Any
    inv_opt_state: Any  # Adam over enc + inv_model
    for_opt_state: Any  # Adam over for_model


def _split(params: Any) -> tuple[dict, dict]:
    inv = {"enc": params["enc"], "inv_model": params["inv_model"]}
    return inv, {"for_model": params["for_model"]}


def icm(cfg: ICMConfig) -> IntrinsicReward:
    """ICM as an :class:`IntrinsicReward`; needs ``obs``, ``next_obs`` and ``action``."""
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=cfg.lr)

    def inputs(batch: RewardBatch) -> tuple[jax.Array, jax.Array, jax.Array]:
        obs, next_obs, action = (require_array(batch, f, "icm")
                                 for f in ("obs", "next_obs", "action"))
        _check(cfg, obs, next_obs, action)
        return obs, next_obs, action

    def init(key: PRNGKey, batch: RewardBatch | None = None) -> ICMState:
        if batch is not None:
            inputs(batch)
        params = init_icm_params(key, cfg)
        inv, fwd = _split(params)
        return ICMState(params, opt.init(inv), opt.init(fwd))

    def reward(state: ICMState, batch: RewardBatch, key: PRNGKey) -> jax.Array:
        del key
        return _reward_jit(state.params, cfg, *inputs(batch))

    def update(state: ICMState, batch: RewardBatch, key: PRNGKey
               ) -> tuple[ICMState, jax.Array, Metrics]:
        del key
        return _update(state, *inputs(batch))

    @jax.jit
    def _update(state: ICMState, obs: jax.Array, next_obs: jax.Array, action: jax.Array
                ) -> tuple[ICMState, jax.Array, Metrics]:
        net = ICMNetworks(cfg)
        inv_params, for_params = _split(state.params)

        def inverse_loss(p: Any) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
            full = {**p, **for_params}
            feat, next_feat = _features(full, cfg, obs, next_obs)
            out = net.apply({"params": full}, feat, next_feat, method=ICMNetworks.inverse)
            if cfg.discrete:
                loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, action))
            else:
                loss = jnp.mean(jnp.square(out - action))
            return loss, (feat, next_feat)

        (inv_loss, (feat, next_feat)), g_inv = jax.value_and_grad(
            inverse_loss, has_aux=True)(inv_params)
        feat, next_feat = jax.lax.stop_gradient((feat, next_feat))

        def forward_loss(p: Any) -> tuple[jax.Array, jax.Array]:
            per = _forward_error({**inv_params, **p}, cfg, feat, next_feat, action)
            return jnp.mean(per), per

        (fwd_loss, per), g_for = jax.value_and_grad(forward_loss, has_aux=True)(for_params)
        u_inv, inv_opt_state = opt.update(g_inv, state.inv_opt_state, inv_params)
        u_for, for_opt_state = opt.update(g_for, state.for_opt_state, for_params)
        params = {**optax.apply_updates(inv_params, u_inv),
                  **optax.apply_updates(for_params, u_for)}
        new = ICMState(params, inv_opt_state, for_opt_state)
        ok = all_finite(obs, next_obs, action)
        metrics = {"loss": fwd_loss, "inverse_loss": inv_loss, "reward_std": jnp.std(per),
                   "nonfinite_input": (~ok).astype(jnp.float32)}
        return guard_update(ok, new, state), per, metrics

    return with_leading_axes(IntrinsicReward(init, reward, update))
