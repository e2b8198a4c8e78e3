"""GAE and the PPO loss as pure functions (no networks inside: they take log-probs and values).

Shapes: time-major ``[T, N]`` for GAE (T rollout steps, N environments); the loss takes
flat minibatches ``[B]``.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp


def gae(rewards: jax.Array, values: jax.Array, dones: jax.Array, last_value: jax.Array,
        gamma: float | jax.Array, lam: float | jax.Array,
        truncations: jax.Array | None = None, bootstrap_values: jax.Array | None = None,
        ) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation by a reverse ``lax.scan``.

    Args:
      rewards, values, dones: ``[T, N]``; ``dones[t]`` is 1 when the episode ended at
        step t (the value after it is not bootstrapped).
      last_value: ``[N]`` value of the state after the final step.
      truncations: optional ``[T, N]``; 1 where the episode was cut by a time limit
        rather than terminated: the return bootstraps from ``bootstrap_values[t]`` (the
        value of the true final observation) but the advantage chain still stops.
    Returns:
      ``(advantages, returns)``, both ``[T, N]``; returns = advantages + values.
    """
    chex.assert_rank(values, 2)
    chex.assert_equal_shape([rewards, values, dones]
                            + [x for x in (truncations, bootstrap_values) if x is not None])
    chex.assert_shape(last_value, values.shape[1:])
    dones = dones.astype(values.dtype)
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    if truncations is not None:
        trunc = truncations.astype(values.dtype)
        boot = bootstrap_values if bootstrap_values is not None else next_values
        # Terminal: no bootstrap. Truncated: bootstrap from the final observation's value.
        next_term = jnp.where(trunc > 0, boot, next_values * (1.0 - dones))
    else:
        next_term = next_values * (1.0 - dones)
    deltas = rewards + gamma * next_term - values

    def step(carry: jax.Array, x: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        delta, done = x
        adv = delta + gamma * lam * (1.0 - done) * carry
        return adv, adv

    _, adv = jax.lax.scan(step, jnp.zeros_like(last_value), (deltas, dones), reverse=True)
    return adv, adv + values


class PPOLossConfig(NamedTuple):
    """Dynamic (vmappable) PPO loss coefficients."""

    clip_eps: float | jax.Array = 0.1
    value_coef: float | jax.Array = 2.0
    entropy_coef: float | jax.Array = 0.0
    clip_value: bool | jax.Array = True


def ppo_loss(log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array,
             values: jax.Array, old_values: jax.Array, returns: jax.Array,
             entropy: jax.Array, cfg: PPOLossConfig,
             ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped-surrogate PPO loss; returns ``(total, pieces)``.

    ``total = policy + value_coef * value - entropy_coef * entropy``. With
    ``clip_value`` the value loss is the max of the unclipped and clipped squared errors
    (PPO2 style), as the original agent uses. Advantages are used as given (normalise
    them before calling, per minibatch, if wanted).
    """
    chex.assert_rank(log_prob, 1)
    chex.assert_equal_shape([log_prob, old_log_prob, advantages, values, old_values, returns,
                             entropy])
    chex.assert_type([log_prob, advantages, values, returns], float)
    ratio = jnp.exp(log_prob - old_log_prob)
    surr1 = ratio * advantages
    surr2 = jnp.clip(ratio, 1.0 - cfg.clip_eps, 1.0 + cfg.clip_eps) * advantages
    policy = -jnp.mean(jnp.minimum(surr1, surr2))
    v_clipped = old_values + jnp.clip(values - old_values, -cfg.clip_eps, cfg.clip_eps)
    unclipped = jnp.square(values - returns)
    clipped = jnp.maximum(unclipped, jnp.square(v_clipped - returns))
    value = jnp.mean(jnp.where(cfg.clip_value, clipped, unclipped))
    ent = jnp.mean(entropy)
    total = policy + cfg.value_coef * value - cfg.entropy_coef * ent
    approx_kl = jnp.mean((ratio - 1.0) - (log_prob - old_log_prob))
    clip_frac = jnp.mean((jnp.abs(ratio - 1.0) > cfg.clip_eps).astype(jnp.float32))
    return total, {"policy_loss": policy, "value_loss": value, "entropy": ent,
                   "approx_kl": approx_kl, "clip_fraction": clip_frac}
