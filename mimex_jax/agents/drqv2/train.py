"""The fused DrQ-v2 trainer: act -> replay insert -> agent updates with the bonus, as ONE
compiled ``update_step``.

``build(cfg)`` returns the same ``Built(init, update_step, train, env, stages)`` as the
PPO trainer, so :mod:`mimex_jax.loop`, checkpoints, sweeps and the CLI run it unchanged.
One iteration:

1. ``update_every_steps`` times (a ``lax.scan``): act in all ``num_envs`` envs (uniform
   actions during the first ``num_expl_steps`` env steps, then the actor with scheduled
   noise), step them, write every transition into the replay buffer (in the state).
2. ``updates_per_step`` times, once ``num_seed_steps`` env steps are collected: sample a
   batch of n-step transitions (and, for sequence bonuses, the T observations ending at
   each one, left-padded at the episode start); score them with the intrinsic reward on
   the augmented, detached encoder features and update the reward model on the same batch
   (one update per agent update, rewards = pre-update losses, as the original);
   ``r <- r + k_expl * w * r_int`` (``w`` = 1, or annealed by ``hparams.anneal``); one
   DrQ-v2 update (:mod:`mimex_jax.agents.drqv2.agent`).

Actions are produced in ``[-1, 1]`` and mapped affinely onto the env's action bounds.
``hparams.lr`` is the learning rate of all three DrQ-v2 optimisers (the original's 1e-4
is set by ``configs/agents/drqv2.yaml``); ``hparams.gamma`` the discount.

Bonus inputs, as the original's ``DrQV2Agent.update``: MIMEx (and the running-mean
baseline) score ``seq`` [B, T, repr] (the sequence shifted with one offset per sequence,
then encoded); RND/ICM score ``obs``/``next_obs`` (the n-step next observation, the
original's batch ``next_obs``) and the action. The original's ``n_masks > 1`` sums
``n_masks`` losses and divides by ``n_masks - 1`` while updating the model once per
mask; here ``train.mimex.n_mask`` averages over the masks (divides by ``n_mask``) in one
update, so the bonus scale does not depend on the number of masks.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mimex_jax import envs as envs_lib
from mimex_jax.agents.base import AgentDef
from mimex_jax.agents.drqv2 import replay
from mimex_jax.agents.drqv2.agent import AgentState, Batch, make_drqv2, soft_update
from mimex_jax.agents.drqv2.config import DrQV2Config
from mimex_jax.distributed import constrain_envs
from mimex_jax.rewards import RewardBatch
from mimex_jax.rewards.base import require
from mimex_jax.trainer import (
    Built,
    HParams,
    Stages,
    TrainConfig,
    apply_bonus_hparams,
    episode_metrics,
    make_env,
    make_reward,
)

_EPISODE_KEYS = ("episode_done", "episode_return", "episode_length", "episode_success")


class DrQV2TrainState(NamedTuple):
    """``params`` (encoder, actor, critic) and ``obs_stats`` (unused, ``()``) keep the names
    evaluation reads; ``buffer`` is the replay buffer; ``bonus_encoder`` the EMA copy of
    the encoder the bonus reads (``drqv2.ema_tau < 1``), else ``()``."""

    params: dict
    target: Any
    critic_opt: Any
    actor_opt: Any
    reward_state: Any
    env_state: Any
    buffer: replay.Replay
    obs_stats: tuple
    key: jax.Array
    iteration: jax.Array
    bonus_encoder: Any = ()


def drqv2_config(cfg: TrainConfig) -> DrQV2Config:
    """``train.drqv2`` as a :class:`DrQV2Config`."""
    return DrQV2Config(**dict(cfg.drqv2))


def _validate(cfg: TrainConfig) -> None:
    d = drqv2_config(cfg)
    slots = d.slots_per_env(cfg.num_envs)
    px = cfg.pixel_config
    if px is not None:
        require("pixels.proprio", px.proprio, not px.proprio,
                "false with agent='drqv2' (the encoder takes images only)")
        require("pixels.encoder", px.encoder, px.encoder == "conv",
                "'conv' with agent='drqv2' (DrQ-v2 learns its own conv encoder)")
        require("pixels.shared_encoder", px.shared_encoder, px.shared_encoder,
                "true with agent='drqv2' (its critic trains the encoder, the actor reads it)")
    need = replay.window_length(d.nstep, _seq_len(cfg), d.seq_type, _frame_stack(cfg)) + 1
    require("drqv2.buffer_size", d.buffer_size, slots >= need,
            f">= num_envs * {need} = {cfg.num_envs * need} (the sampling window of nstep, "
            "seq_len, seq_type and frame_stack, plus one)")


def _seq_len(cfg: TrainConfig) -> int:
    """T of the replayed sequences: ``cfg.seq_len`` for sequence bonuses, else 0."""
    return cfg.seq_len if cfg.reward in ("mimex", "running_mean") else 0


def _frame_stack(cfg: TrainConfig) -> int:
    """Frames per observation: ``pixels.frame_stack`` of pixel runs, else 1."""
    px = cfg.pixel_config
    return px.frame_stack if px is not None else 1


def _steps_per_iteration(cfg: TrainConfig) -> int:
    return cfg.num_envs * drqv2_config(cfg).update_every_steps


def _scale_action(env: envs_lib.Env, action: jax.Array) -> jax.Array:
    low, high = env.action_bounds
    return jnp.asarray(low) + (action + 1.0) * 0.5 * (jnp.asarray(high) - jnp.asarray(low))


def _spec(env: envs_lib.Env, d: DrQV2Config):
    if env.action_kind != "continuous" or env.action_bounds is None:
        raise ValueError(f"agent='drqv2' needs a continuous, bounded action space; "
                         f"env {env.env_id!r} has {env.action_kind} actions")
    obs = jax.eval_shape(env.reset, jax.random.key(0)).obs
    return make_drqv2(d, tuple(obs.shape[1:]), obs.dtype, env.action_size)


def _make_policy(cfg: TrainConfig, env: envs_lib.Env):
    """Evaluation policy: the actor's mean (deterministic) or its noisy sample at the end
    of the noise schedule."""
    d = drqv2_config(cfg)
    agent = _spec(env, d).agent

    def policy(params, obs_stats, obs, key, deterministic):
        del obs_stats
        step = jnp.asarray(float(2 ** 62))  # past exploration and the noise schedule
        return _scale_action(env, agent.act(params, obs, key, step, deterministic))

    return policy


def build(cfg: TrainConfig, env: envs_lib.Env | None = None,
          frame_stack: int | None = None) -> Built:
    """The fused DrQ-v2 trainer for ``cfg`` (``env``: a batched, auto-resetting env to use
    instead of ``cfg.env_id``, e.g. a test env; it must have ``cfg.num_envs`` envs;
    ``frame_stack``: how many frames its observations stack along the last axis, oldest
    first; default ``pixels.frame_stack`` of pixel runs, else 1). The replay buffer stores
    each frame once and rebuilds the stacks when it samples."""
    d = drqv2_config(cfg)
    if env is None:
        env = make_env(cfg, cfg.num_envs)
    k = _frame_stack(cfg) if frame_stack is None else int(frame_stack)
    drq = _spec(env, d)
    agent = drq.agent
    n, a_dim = cfg.num_envs, env.action_size
    capacity = d.slots_per_env(n)
    seq_len = _seq_len(cfg)
    obs_aval = jax.eval_shape(env.reset, jax.random.key(0)).obs
    repr_dim = jax.eval_shape(
        lambda k: drq.encode(agent.init(k, jnp.zeros((1,) + obs_aval.shape[1:],
                                                     obs_aval.dtype)).params["encoder"],
                             jnp.zeros((1,) + obs_aval.shape[1:], obs_aval.dtype)),
        jax.random.key(0)).shape[-1]
    trunk_features = d.bonus_features == "actor_trunk"
    ema = d.ema_tau < 1 and cfg.reward != "none"
    reward_fn = make_reward(cfg, d.feature_dim if trunk_features else repr_dim, a_dim, False)
    n_iter = cfg.num_iterations
    per_iter = _steps_per_iteration(cfg)

    def init(key: jax.Array, hp: HParams) -> DrQV2TrainState:
        k_env, k_agent, k_rew, key = jax.random.split(key, 4)
        env_state = env.reset(k_env)
        ag = agent.init(k_agent, env_state.obs[:1])
        buf = replay.init(env_state.obs, a_dim, capacity, k)
        bonus_dim = d.feature_dim if trunk_features else repr_dim
        feats = jnp.zeros((d.batch_size, bonus_dim))
        dummy = RewardBatch(seq=jnp.zeros((d.batch_size, max(cfg.seq_len, 1), bonus_dim)),
                            obs=feats, next_obs=feats, action=jnp.zeros((d.batch_size, a_dim)))
        reward_state = apply_bonus_hparams(cfg, reward_fn.init(k_rew, dummy), hp)
        return DrQV2TrainState(ag.params, ag.target, ag.critic_opt, ag.actor_opt, reward_state,
                               env_state, buf, (), key, jnp.zeros((), jnp.int32),
                               ag.params["encoder"] if ema else ())

    def collect(state: DrQV2TrainState, hp: HParams):
        """Stage 1: ``update_every_steps`` batched env steps into the buffer."""
        def one(carry, inp):
            # data parallelism: envs and their replay rings stay split over the env axis
            env_state, buf = constrain_envs(carry, 0, n)
            k, s = inp
            step = (state.iteration * d.update_every_steps + s) * n
            action = agent.act(state.params, env_state.obs, k, step)
            nxt = env.step(env_state, _scale_action(env, action))
            trunc = nxt.info.get("truncation", jnp.zeros_like(nxt.done))
            discount = 1.0 - nxt.done * (1.0 - trunc)
            buf = replay.add(buf, action, nxt.reward, discount, nxt.info["terminal_obs"],
                             nxt.done, nxt.obs)
            ep = {k2: nxt.metrics[k2] for k2 in _EPISODE_KEYS}
            return (nxt, buf), (ep, nxt.reward)

        key, k_roll, k_upd = jax.random.split(state.key, 3)
        keys = jax.random.split(k_roll, d.update_every_steps)
        (env_state, buf), (ep, rewards) = jax.lax.scan(
            one, (state.env_state, state.buffer), (keys, jnp.arange(d.update_every_steps)))
        return env_state, buf, ep, rewards, key, k_upd

    def features(params, enc_params, key, s: replay.Sample) -> RewardBatch:
        """What the bonus sees: augmented, detached features of ``enc_params`` (the
        encoder or its EMA copy), through the actor's trunk with ``actor_trunk``."""
        k_seq, k_obs, k_next = jax.random.split(key, 3)

        def enc(x):
            h = drq.encode(enc_params, x)
            if trunk_features:
                h = drq.actor_trunk(params["actor"], h)
            return jax.lax.stop_gradient(h)

        seq = enc(drq.augment_seq(k_seq, s.seq)) if s.seq is not None else None
        obs = enc(drq.augment(k_obs, s.obs)) if cfg.reward in ("rnd", "icm") else None
        nxt = enc(drq.augment(k_next, s.next_obs)) if cfg.reward == "icm" else None
        return RewardBatch(seq=seq, obs=obs, next_obs=nxt, action=s.action)

    def one_update(carry, key, hp: HParams, step, w):
        ag, reward_state, buf, bonus_enc = carry
        k_sample, k_feat, k_rew, k_agent = jax.random.split(key, 4)
        s = replay.sample(buf, k_sample, d.batch_size, d.nstep, hp.gamma, seq_len,
                           d.seq_type, k)
        if cfg.reward == "none":
            r_int, r_metrics = jnp.zeros_like(s.reward), {}
        else:
            if ema:
                bonus_enc = soft_update(bonus_enc, ag.params["encoder"], d.ema_tau)
            rb = features(ag.params, bonus_enc if ema else ag.params["encoder"], k_feat, s)
            reward_state, r_int, r_metrics = reward_fn.update(reward_state, rb, k_rew)
        reward = hp.reward_scale * s.reward + hp.k_expl * w * r_int
        batch = Batch(s.obs, s.action, reward, s.discount, s.next_obs)
        ag, a_metrics = agent.update(ag, batch, k_agent, step, hp.lr)
        metrics = {"reward_int": jnp.mean(r_int), "reward_int_std": jnp.std(r_int),
                   "nstep_mean": jnp.mean(s.steps.astype(jnp.float32)), **a_metrics,
                   **{f"reward_model/{k}": v for k, v in r_metrics.items()}}
        return (ag, reward_state, buf, bonus_enc), metrics

    def learn(state: DrQV2TrainState, hp: HParams, buf: replay.Replay, key: jax.Array):
        """Stage 2: ``updates_per_step`` agent (+ bonus) updates, after the seed phase."""
        step = (state.iteration + 1) * per_iter
        w = 1.0 - hp.anneal * state.iteration.astype(jnp.float32) / n_iter
        ag = AgentState(state.params, state.target, state.critic_opt, state.actor_opt)
        reward_state = apply_bonus_hparams(cfg, state.reward_state, hp)
        keys = jax.random.split(key, d.updates_per_step)

        def run(carry):
            carry, m = jax.lax.scan(lambda c, k: one_update(c, k, hp, step, w), carry, keys)
            return carry, jax.tree.map(jnp.mean, m)

        carry = (ag, reward_state, buf, state.bonus_encoder)
        shapes = jax.eval_shape(run, carry)[1]
        skip = lambda carry: (carry, jax.tree.map(  # noqa: E731
            lambda x: jnp.zeros(x.shape, x.dtype), shapes))
        (ag, reward_state, _, bonus_enc), metrics = jax.lax.cond(
            step >= d.num_seed_steps, run, skip, carry)
        metrics["updated"] = (step >= d.num_seed_steps).astype(jnp.float32)
        metrics["expl_weight"] = hp.k_expl * w
        return ag, reward_state, bonus_enc, metrics

    def update_step(state: DrQV2TrainState, hp: HParams) -> tuple[DrQV2TrainState, dict]:
        env_state, buf, ep, rewards, key, k_upd = collect(state, hp)
        ag, reward_state, bonus_enc, l_metrics = learn(state, hp, buf, k_upd)
        metrics = {
            **episode_metrics(ep),
            "reward_ext": jnp.mean(rewards),
            **l_metrics,
        }
        new = DrQV2TrainState(ag.params, ag.target, ag.critic_opt, ag.actor_opt, reward_state,
                              env_state, buf, (), key, state.iteration + 1, bonus_enc)
        return new, metrics

    def train(key: jax.Array, hp: HParams) -> tuple[DrQV2TrainState, dict]:
        state = init(key, hp)
        return jax.lax.scan(lambda s, _: update_step(s, hp), state, None, length=n_iter)

    def score(state: DrQV2TrainState, hp: HParams, col):
        """The bonus alone on one sampled batch of ``collect``'s buffer (for timing)."""
        k_sample, k_feat, k_rew = jax.random.split(col[5], 3)
        s = replay.sample(col[1], k_sample, d.batch_size, d.nstep, hp.gamma, seq_len,
                           d.seq_type, k)
        if cfg.reward == "none":
            return state.reward_state, jnp.zeros_like(s.reward), {}
        return reward_fn.update(apply_bonus_hparams(cfg, state.reward_state, hp),
                                features(state.params, state.bonus_encoder if ema
                                         else state.params["encoder"], k_feat, s), k_rew)

    return Built(init, update_step, train, env,
                 Stages(collect, score, lambda state, hp, col: learn(state, hp, col[1],
                                                                      col[5])))


DRQV2_AGENT = AgentDef(validate=_validate, steps_per_iteration=_steps_per_iteration,
                       build=build, make_policy=_make_policy)
