"""DrQ-v2 as an :class:`~mimex_jax.agents.base.Agent`: ``init``, ``act``, ``update``.

``update`` is the original's ``DrQV2Agent.update`` after the bonus (which the trainer adds
to ``batch.reward`` first): random-shift both observations (independent offsets), encode,
critic loss ``mse(Q1, y) + mse(Q2, y)`` with ``y = r + discount * min(Q1', Q2')(next,
a')``, ``a'`` drawn with clipped noise from the actor on the (no-grad) next features and
``Q'`` the target critic; one Adam step on encoder + critic; then the actor loss
``-min(Q1, Q2)(h, a)`` with the *updated* critic, on the encoder features computed before
the step and detached (the actor never trains the encoder); one Adam step on the actor;
finally ``target <- tau * critic + (1 - tau) * target``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mimex_jax.agents.base import Agent
from mimex_jax.agents.drqv2 import networks
from mimex_jax.agents.drqv2.config import DrQV2Config, parse_schedule
from mimex_jax.nn.encoders import ConvEncoder


class AgentState(NamedTuple):
    """``params = {"encoder", "actor", "critic"}``; ``target``: the target critic."""

    params: dict
    target: Any
    critic_opt: Any
    actor_opt: Any


class Batch(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array


class DrQV2(NamedTuple):
    """The agent's functions plus the pieces the trainer shares with the bonus."""

    agent: Agent
    encode: Any       # (encoder_params, obs [..., *obs_shape]) -> [..., repr_dim]
    augment: Any      # (key, obs [B, *obs_shape]) -> [B, *obs_shape]
    augment_seq: Any  # (key, seq [B, T, *obs_shape]) -> same
    image: bool
    actor_trunk: Any  # (actor_params, h [..., repr_dim]) -> [..., feature_dim]


def soft_update(target: Any, online: Any, tau: float | jax.Array) -> Any:
    """``tau * online + (1 - tau) * target``, leaf by leaf."""
    return jax.tree.map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)


def make_drqv2(cfg: DrQV2Config, obs_shape: tuple[int, ...], obs_dtype: Any,
               action_dim: int) -> DrQV2:
    """DrQ-v2 for observations of ``obs_shape`` (``[H, W, C]`` uint8 images use the conv
    encoder and random shifts; flat vectors the :class:`~networks.StateEncoder`)."""
    image = len(obs_shape) == 3
    if image and jnp.dtype(obs_dtype) != jnp.uint8:
        raise ValueError(f"image observations must be uint8 [H, W, C], got {obs_dtype} "
                         f"{obs_shape}")
    if not image and len(obs_shape) != 1:
        raise ValueError(f"observation shape {obs_shape} is invalid; allowed: [D] states or "
                         "[H, W, C] uint8 images")
    encoder = ConvEncoder() if image else networks.StateEncoder(cfg.state_hidden)
    actor = networks.Actor(action_dim, cfg.feature_dim, cfg.hidden_dim)
    critic = networks.Critic(cfg.feature_dim, cfg.hidden_dim)
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-4)
    schedule = parse_schedule(cfg.stddev_schedule)
    clip = float(cfg.stddev_clip)

    def encode(enc_params, obs):
        if not enc_params:  # identity state encoder has no parameters
            return obs.astype(jnp.float32)
        return encoder.apply({"params": enc_params}, obs)

    def augment(key, obs):
        return networks.random_shift(key, obs, cfg.aug_pad) if image else obs

    def actor_trunk(actor_params, h):
        return networks.Trunk(cfg.feature_dim).apply({"params": actor_params["trunk"]}, h)

    def augment_seq(key, seq):
        return networks.random_shift_seq(key, seq, cfg.aug_pad) if image else seq

    def init(key: jax.Array, obs: jax.Array) -> AgentState:
        """``obs``: ``[B, *obs_shape]`` example observations (values unused)."""
        k_enc, k_act, k_crit = jax.random.split(key, 3)
        enc_params = encoder.init(k_enc, obs).get("params", {})
        h = encode(enc_params, obs)
        params = {"encoder": enc_params,
                  "actor": actor.init(k_act, h)["params"],
                  "critic": critic.init(k_crit, h, jnp.zeros(h.shape[:-1] + (action_dim,)))
                  ["params"]}
        return AgentState(params, params["critic"],
                          opt.init({"encoder": params["encoder"], "critic": params["critic"]}),
                          opt.init(params["actor"]))

    def act(params: dict, obs: jax.Array, key: jax.Array, step: jax.Array,
            deterministic: bool = False) -> jax.Array:
        """Actions in ``[-1, 1]``: the mean when ``deterministic``; else a noisy sample
        (unclipped noise, scheduled std), uniform while ``step < num_expl_steps``."""
        mean = actor.apply({"params": params["actor"]}, encode(params["encoder"], obs))
        if deterministic:
            return mean
        k_noise, k_unif = jax.random.split(key)
        noisy = networks.sample_action(k_noise, mean, networks.stddev(schedule, step), None)
        uniform = jax.random.uniform(k_unif, mean.shape, mean.dtype, -1.0, 1.0)
        return jnp.where(step < cfg.num_expl_steps, uniform, noisy)

    def update(state: AgentState, batch: Batch, key: jax.Array, step: jax.Array,
               lr: jax.Array) -> tuple[AgentState, dict]:
        k_obs, k_next, k_target, k_actor = jax.random.split(key, 4)
        params = state.params
        obs = augment(k_obs, batch.obs)
        next_obs = augment(k_next, batch.next_obs)
        std = networks.stddev(schedule, step)
        next_h = jax.lax.stop_gradient(encode(params["encoder"], next_obs))
        next_mean = actor.apply({"params": params["actor"]}, next_h)
        next_action = networks.sample_action(k_target, next_mean, std, clip)
        tq1, tq2 = critic.apply({"params": state.target}, next_h, next_action)
        target_q = jax.lax.stop_gradient(batch.reward + batch.discount * jnp.minimum(tq1, tq2))

        def critic_loss(p):
            h = encode(p["encoder"], obs)
            q1, q2 = critic.apply({"params": p["critic"]}, h, batch.action)
            loss = jnp.mean(jnp.square(q1 - target_q)) + jnp.mean(jnp.square(q2 - target_q))
            return loss, (h, q1, q2)

        trained = {"encoder": params["encoder"], "critic": params["critic"]}
        (c_loss, (h, q1, q2)), grads = jax.value_and_grad(critic_loss, has_aux=True)(trained)
        critic_opt = state.critic_opt
        critic_opt.hyperparams["learning_rate"] = lr
        updates, critic_opt = opt.update(grads, critic_opt, trained)
        trained = optax.apply_updates(trained, updates)
        h = jax.lax.stop_gradient(h)

        def actor_loss(p):
            mean = actor.apply({"params": p}, h)
            action = networks.sample_action(k_actor, mean, std, clip)
            a1, a2 = critic.apply({"params": trained["critic"]}, h, action)
            return -jnp.mean(jnp.minimum(a1, a2))

        a_loss, a_grads = jax.value_and_grad(actor_loss)(params["actor"])
        actor_opt = state.actor_opt
        actor_opt.hyperparams["learning_rate"] = lr
        a_updates, actor_opt = opt.update(a_grads, actor_opt, params["actor"])
        new_params = {"encoder": trained["encoder"], "critic": trained["critic"],
                      "actor": optax.apply_updates(params["actor"], a_updates)}
        target = soft_update(state.target, trained["critic"], cfg.critic_target_tau)
        metrics = {"critic_loss": c_loss, "critic_q1": jnp.mean(q1), "critic_q2": jnp.mean(q2),
                   "critic_target_q": jnp.mean(target_q), "actor_loss": a_loss,
                   "batch_reward": jnp.mean(batch.reward), "stddev": std}
        return AgentState(new_params, target, critic_opt, actor_opt), metrics

    return DrQV2(Agent(init, act, update), encode, augment, augment_seq, image, actor_trunk)
