"""Random Network Distillation (Burda et al., 2018) as the original MIMEx code runs it.

A predictor MLP regresses a frozen, randomly initialised target MLP (both
D-256-256-288 with ReLU, orthogonal weights with gain sqrt(2), zero biases). The reward
is the per-sample MSE (mean over the 288 features) *before* one Adam step (lr 1e-3)
of the predictor on the mean loss.
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

from mimex_jax.nn.init import orthogonal
from mimex_jax.nn.mlp import TorchMLP
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
    static_config,
    with_leading_axes,
)


@static_config
@dataclasses.dataclass(frozen=True)
class RNDConfig:
    """Static RND configuration (the original's defaults)."""

    obs_dim: int
    feature_dim: int = 288
    hidden_dim: int = 256
    lr: float = 1e-3

    def __post_init__(self) -> None:
        integral_fields(self, ("obs_dim", "feature_dim", "hidden_dim"))
        require("lr", self.lr, isinstance(self.lr, (int, float)) and math.isfinite(self.lr)
                and self.lr > 0, "a finite number > 0")


class RNDNetworks(nn.Module):
    cfg: RNDConfig

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        sizes = (self.cfg.hidden_dim, self.cfg.hidden_dim, self.cfg.feature_dim)
        init = orthogonal(math.sqrt(2.0))
        pred = TorchMLP(sizes, init, zero_bias=True, name="predictor")(obs)
        target = TorchMLP(sizes, init, zero_bias=True, name="target")(obs)
        return pred, target


@functools.partial(jax.jit, static_argnums=1)
def init_rnd_params(key: PRNGKey, cfg: RNDConfig) -> Any:
    return RNDNetworks(cfg).init(key, jnp.zeros((1, cfg.obs_dim), jnp.float32))["params"]


def rnd_reward(params: Any, obs: jax.Array) -> jax.Array:
    """Per-sample RND error ``mean_f (predictor(obs) - target(obs))^2`` -> ``[B]``."""
    check_finite("obs", obs)
    dims = params["predictor"]["layers_0"]["kernel"].shape[0]
    if obs.ndim != 2 or obs.shape[-1] != dims:
        raise ValueError(f"obs: shape {tuple(obs.shape)} is invalid; allowed: [B, {dims}]")
    feat = params["predictor"]["layers_4"]["kernel"].shape[1]
    hidden = params["predictor"]["layers_0"]["kernel"].shape[1]
    cfg = RNDConfig(obs_dim=dims, feature_dim=feat, hidden_dim=hidden)
    return _error_jit(params, cfg, obs)


def _rnd_error(params: Any, cfg: RNDConfig, obs: jax.Array) -> jax.Array:
    pred, target = RNDNetworks(cfg).apply({"params": params}, obs)
    return jnp.mean(jnp.square(pred - jax.lax.stop_gradient(target)), axis=-1)


_error_jit = jax.jit(_rnd_error, static_argnums=1)


class RNDState(NamedTuple):
    params: Any  # {"predictor": ..., "target": ...}; only the predictor trains
    opt_state: Any


def rnd(cfg: RNDConfig) -> IntrinsicReward:
    """RND as an :class:`IntrinsicReward`. Uses ``batch.obs``, else ``batch.seq[:, -1]``."""
    optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=cfg.lr)

    def obs_of(batch: RewardBatch) -> jax.Array:
        obs = batch.obs if batch.obs is not None else (
            batch.seq[:, -1] if batch.seq is not None else None)
        if obs is None:
            raise ValueError("rnd: RewardBatch needs obs (or seq) but both were None")
        if obs.ndim != 2 or obs.shape[-1] != cfg.obs_dim:
            raise ValueError(
                f"rnd: obs shape {tuple(obs.shape)} is invalid; allowed: [B, obs_dim="
                f"{cfg.obs_dim}]")
        check_finite("obs", obs)
        return obs

    def init(key: PRNGKey, batch: RewardBatch | None = None) -> RNDState:
        if batch is not None:
            obs_of(batch)
        params = init_rnd_params(key, cfg)
        return RNDState(params, optimizer.init(params["predictor"]))

    def reward(state: RNDState, batch: RewardBatch, key: PRNGKey) -> jax.Array:
        del key
        return _error_jit(state.params, cfg, obs_of(batch))

    def update(state: RNDState, batch: RewardBatch, key: PRNGKey
               ) -> tuple[RNDState, jax.Array, Metrics]:
        del key
        return _update(state, obs_of(batch))

    @jax.jit
    def _update(state: RNDState, obs: jax.Array) -> tuple[RNDState, jax.Array, Metrics]:
        def loss_fn(predictor: Any) -> tuple[jax.Array, jax.Array]:
            per = _rnd_error({"predictor": predictor, "target": state.params["target"]}, cfg, obs)
            return jnp.mean(per), per

        (loss, per), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params["predictor"])
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params["predictor"])
        predictor = optax.apply_updates(state.params["predictor"], updates)
        new = RNDState({"predictor": predictor, "target": state.params["target"]}, opt_state)
        ok = all_finite(obs)
        metrics = {"loss": loss, "reward_std": jnp.std(per),
                   "nonfinite_input": (~ok).astype(jnp.float32)}
        return guard_update(ok, new, state), per, metrics

    return with_leading_axes(IntrinsicReward(init, reward, update))
