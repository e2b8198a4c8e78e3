"""The fused trainer: PPO with an intrinsic reward as ONE compiled step.

``make_train(config)`` returns pure functions::

    init(key, hparams) -> TrainState
    update_step(state, hparams) -> (state, metrics)     # one rollout + reward update + PPO
    train(key, hparams) -> (state, metrics[num_iterations])

``update_step`` is a single XLA program: a ``lax.scan`` rollout over ``rollout_len``
steps of ``num_envs`` vmapped environments (policy, env step, embedding, sequence
windows), one ``update`` of the intrinsic-reward model on all of the rollout's sequences
(its rewards are the pre-update losses, as in the original), ``r = r_ext + k_expl * w *
r_int`` (``w`` constant, or annealed linearly to 0 when ``hparams.anneal = 1``), GAE by a
reverse scan, and PPO epochs x minibatches as nested scans. ``train`` scans
``update_step``; nothing runs in Python per environment step. ``hparams`` is a pytree of
scalars, so ``jax.vmap(train)`` runs a sweep (see :mod:`mimex_jax.sweep`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mimex_jax import envs as envs_lib
from mimex_jax import windows
from mimex_jax.agents.base import AgentDef, agent_names, get_agent
from mimex_jax.agents.ppo import ActorCritic, PixelActorCritic, PPOLossConfig, gae, ppo_loss
from mimex_jax.distributed import constrain_envs
from mimex_jax.envs.pixels import FROZEN_ENCODERS, PixelConfig, pixel_config
from mimex_jax.nn.encoders import make_encoder
from mimex_jax.rewards import IntrinsicReward, RewardBatch, normalize_rewards, registry
from mimex_jax.rewards.base import integral_fields, require
from mimex_jax.rewards.normalize import (
    CENTERINGS,
    NormalizedState,
    RunningStats,
    init_stats,
    update_stats,
)

EMBEDDINGS = ("obs", "random_projection", "torso", "encoder")
OBSERVATIONS = ("state", "pixels")
PIXEL_EMBEDDINGS = ("obs", "torso", "encoder")
LR_SCHEDULES = ("constant", "linear", "cosine")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static configuration: everything that changes shapes or program structure.

    Defaults are the paper's PPO settings (32 steps per env, 10 epochs, 4 minibatches,
    MLPs 256-128-64) on ``brax:reacher_sparse`` with 512 envs and MIMEx (T=5).

    ``clip_value`` clips the value loss around the old values by ``clip_eps`` (PPO2 style);
    off by default, as in the original MIMEx PPO.

    ``normalize_obs`` (running mean/std of observations, clipped to +-10) is off by
    default. On gymnax CartPole-v1 it held PPO's final greedy return to 109, 361 and 129
    on three seeds; without it the same runs reach 486, 475 and 486
    (``python benchmarks/learning_cartpole.py``).

    ``normalize_intrinsic`` divides the bonus by its running std; ``center_intrinsic``
    (``"running"`` or ``"batch"``) also subtracts its running or its batch mean, a
    zero-mean bonus that does not pay for long episodes
    (:func:`mimex_jax.rewards.normalize_rewards`).

    ``observation="pixels"`` renders camera images (:mod:`mimex_jax.envs.pixels`) as set by
    the ``pixels`` mapping (camera, height, width, frame_stack, action_repeat, proprio,
    encoder); the actor-critic then reads them through a conv encoder
    (:class:`~mimex_jax.agents.ppo.PixelActorCritic`) and the bonus sees detached features:
    ``embedding="torso"`` (the actor's last hidden layer) or ``"encoder"`` (the encoder's
    trunk output; ``"obs"`` means the same for pixels: the encoded observation, as the
    original's pixel tasks feed the bonus encoder features). Observation normalisation and
    ``random_projection`` do not apply to pixels (refused).
    """

    env_id: str = "brax:reacher_sparse"
    env_kwargs: tuple[tuple[str, Any], ...] = ()
    num_envs: int = 512
    rollout_len: int = 32
    epochs: int = 10
    minibatches: int = 4
    total_steps: int = 2_000_000
    episode_length: int | None = None
    reward: str = "mimex"
    seq_len: int = 5
    embedding: str = "obs"
    projection_dim: int = 64
    normalize_obs: bool = False
    clip_value: bool = False
    normalize_intrinsic: bool = False
    center_intrinsic: str = "none"
    intrinsic_value_head: bool = False
    actor_hidden: tuple[int, ...] = (256, 128, 64)
    critic_hidden: tuple[int, ...] = (256, 128, 64)
    activation: str = "selu"
    lr_schedule: str = "cosine"
    mimex: tuple[tuple[str, Any], ...] = ()
    bonus: tuple[tuple[str, Any], ...] = ()
    agent: str = "ppo"
    drqv2: tuple[tuple[str, Any], ...] = ()
    observation: str = "state"
    pixels: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        integral_fields(self, ("num_envs", "rollout_len", "epochs", "minibatches",
                               "total_steps", "seq_len", "projection_dim"))
        require("reward", self.reward, self.reward in registry.names(),
                f"a registered bonus {list(registry.names())}")
        require("embedding", self.embedding, self.embedding in EMBEDDINGS, str(EMBEDDINGS))
        require("lr_schedule", self.lr_schedule, self.lr_schedule in LR_SCHEDULES,
                str(LR_SCHEDULES))
        require("agent", self.agent, self.agent in agent_names(), str(agent_names()))
        get_agent(self.agent).validate(self)
        batch = self.steps_per_iteration
        require("total_steps", self.total_steps, self.total_steps >= batch,
                f"at least one iteration, {batch} env steps")
        require("center_intrinsic", self.center_intrinsic,
                self.center_intrinsic in CENTERINGS, str(list(CENTERINGS)))
        require("center_intrinsic", self.center_intrinsic,
                self.center_intrinsic == "none" or self.normalize_intrinsic,
                "'none' unless normalize_intrinsic is true (centring is part of it)")
        require("observation", self.observation, self.observation in OBSERVATIONS,
                str(OBSERVATIONS))
        if self.observation == "pixels":
            pixel_config(self.pixels)  # raises ValueError naming the pixels.<key>
            require("embedding", self.embedding, self.embedding in PIXEL_EMBEDDINGS,
                    f"{PIXEL_EMBEDDINGS} with observation='pixels'")
            require("normalize_obs", self.normalize_obs, not self.normalize_obs,
                    "false with observation='pixels' (images are scaled by the encoder)")
        else:
            require("pixels", dict(self.pixels), not self.pixels,
                    "empty unless observation='pixels'")
            require("embedding", self.embedding, self.embedding != "encoder",
                    "'encoder' only with observation='pixels'")

    @property
    def steps_per_iteration(self) -> int:
        """Environment steps (over all envs) one ``update_step`` takes."""
        return get_agent(self.agent).steps_per_iteration(self)

    @property
    def num_iterations(self) -> int:
        return self.total_steps // self.steps_per_iteration

    @property
    def embedding_kind(self) -> str:
        """What the bonus sees: ``embedding``, with ``"obs"`` of pixels read as ``"encoder"``."""
        if self.observation == "pixels" and self.embedding == "obs":
            return "encoder"
        return self.embedding

    @property
    def pixel_config(self) -> PixelConfig | None:
        """The :class:`~mimex_jax.envs.pixels.PixelConfig` of a pixel run, else ``None``."""
        return pixel_config(self.pixels) if self.observation == "pixels" else None


class HParams(NamedTuple):
    """Dynamic hyperparameters: scalars, vmappable over a sweep.

    ``reward_scale`` multiplies the task's reward where the learner sees it (PPO's returns,
    DrQ-v2's critic targets), not the intrinsic bonus (``k_expl`` weighs that) nor the
    reported metrics (Brax's ``reward_scaling``). Value targets of order one let the critic
    fit early; PPO from pixels on CartpoleBalance learned only with 0.1 (BENCHMARKS.md).
    """

    lr: float | jax.Array = 1e-3
    max_grad_norm: float | jax.Array = 1.0
    clip_eps: float | jax.Array = 0.1
    value_coef: float | jax.Array = 2.0
    entropy_coef: float | jax.Array = 0.0
    gamma: float | jax.Array = 0.99
    lam: float | jax.Array = 0.95
    k_expl: float | jax.Array = 0.05
    anneal: float | jax.Array = 0.0
    mask_ratio: float | jax.Array = 0.7
    gamma_int: float | jax.Array = 0.99
    reward_scale: float | jax.Array = 1.0

    def validate(self) -> HParams:
        """Check concrete values (skipped for traced ones); returns self."""
        checks = {
            "lr": (lambda v: v > 0, "> 0"), "max_grad_norm": (lambda v: v > 0, "> 0"),
            "clip_eps": (lambda v: 0 < v < 1, "in (0, 1)"),
            "value_coef": (lambda v: v >= 0, ">= 0"), "entropy_coef": (lambda v: v >= 0, ">= 0"),
            "gamma": (lambda v: 0 <= v <= 1, "in [0, 1]"), "lam": (lambda v: 0 <= v <= 1,
                                                                   "in [0, 1]"),
            "k_expl": (lambda v: v >= 0, ">= 0"), "anneal": (lambda v: 0 <= v <= 1, "in [0, 1]"),
            "mask_ratio": (lambda v: 0 < v < 1, "in (0, 1)"),
            "gamma_int": (lambda v: 0 <= v <= 1, "in [0, 1]"),
            "reward_scale": (lambda v: v > 0, "> 0"),
        }
        for name, (ok, allowed) in checks.items():
            value = getattr(self, name)
            if isinstance(value, jax.core.Tracer):
                continue
            arr = jnp.asarray(value)
            if not bool(jnp.all(jnp.isfinite(arr))) or not bool(jnp.all(ok(arr))):
                raise ValueError(f"hparams.{name}={value!r} is invalid; allowed: {allowed}")
        return self


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    reward_state: Any
    env_state: Any
    window: jax.Array
    obs_stats: RunningStats
    projection: jax.Array
    key: jax.Array
    iteration: jax.Array


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    value_int: jax.Array
    reward: jax.Array
    done: jax.Array
    truncation: jax.Array
    bootstrap: jax.Array
    bootstrap_int: jax.Array
    seq: jax.Array
    emb: jax.Array
    emb_next: jax.Array
    episode: dict


def _normalize(stats: RunningStats, obs: jax.Array) -> jax.Array:
    return jnp.clip((obs - stats.mean) / jnp.sqrt(stats.var + 1e-8), -10.0, 10.0)


def bonus_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The user's settings of the selected bonus: ``train.bonus`` (plus, for MIMEx, the
    historical ``train.mimex`` mapping, which ``train.bonus`` overrides)."""
    base = dict(cfg.mimex) if cfg.reward == "mimex" else {}
    return {**base, **dict(cfg.bonus)}


def make_reward(cfg: TrainConfig, emb_dim: int, action_dim: int, discrete: bool
                ) -> IntrinsicReward:
    """The intrinsic reward named by ``cfg.reward`` (:mod:`mimex_jax.rewards.registry`) for
    embeddings of width ``emb_dim``."""
    ctx = registry.BonusContext(cfg.seq_len, emb_dim, action_dim, discrete)
    fn = registry.get(cfg.reward).build(ctx, bonus_settings(cfg))
    if cfg.normalize_intrinsic and cfg.reward != "none":
        return normalize_rewards(fn, center=cfg.center_intrinsic)
    return fn


def with_bonus_settings(cfg: TrainConfig, settings: dict[str, Any]) -> TrainConfig:
    """``cfg`` whose bonus settings are ``settings`` (MIMEx keeps them in ``train.mimex``)."""
    items = tuple(sorted(settings.items()))
    if cfg.reward == "mimex":
        return dataclasses.replace(cfg, mimex=items, bonus=())
    return dataclasses.replace(cfg, bonus=items)


def size_for_sweep(cfg: TrainConfig, ratios: Any) -> TrainConfig:
    """``cfg`` with the bonus's static settings sized for every swept ``mask_ratio``
    (the registry's ``size_for_sweep`` hook; MIMEx: encoder slots). Unchanged otherwise."""
    hook = registry.get(cfg.reward).size_for_sweep
    if hook is None:
        return cfg
    ratios = [float(r) for r in np.ravel(np.asarray(ratios))]  # float64 kept as given
    settings = bonus_settings(cfg)
    sized = hook(settings, cfg.seq_len, ratios)
    return cfg if sized == settings else with_bonus_settings(cfg, sized)


def apply_bonus_hparams(cfg: TrainConfig, reward_state: Any, hp: HParams) -> Any:
    """Write swept hyperparameters the bonus reads (MIMEx: ``mask_ratio``) into its state."""
    hook = registry.get(cfg.reward).apply_hparams
    if hook is None:
        return reward_state
    if isinstance(reward_state, NormalizedState):
        return reward_state._replace(inner=hook(reward_state.inner, hp))
    return hook(reward_state, hp)


def _schedule(kind: str, progress: jax.Array) -> jax.Array:
    if kind == "constant":
        return jnp.ones_like(progress)
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + jnp.cos(math.pi * progress))


def make_env(cfg: TrainConfig, num_envs: int) -> envs_lib.Env:
    """The batched, auto-resetting env of ``cfg`` (rendered to pixels when configured)."""
    return envs_lib.make(cfg.env_id, num_envs=num_envs, episode_length=cfg.episode_length,
                         pixels=cfg.pixel_config, **dict(cfg.env_kwargs))


def make_network(cfg: TrainConfig, env: envs_lib.Env) -> ActorCritic | PixelActorCritic:
    """The actor-critic for ``env`` with the sizes of ``cfg``."""
    discrete = env.action_kind == "discrete"
    kw = dict(action_dim=env.num_actions if discrete else env.action_size,
              discrete=discrete, actor_hidden=cfg.actor_hidden,
              critic_hidden=cfg.critic_hidden, act=cfg.activation,
              intrinsic_value_head=cfg.intrinsic_value_head)
    px = cfg.pixel_config
    if px is None:
        return ActorCritic(**kw)
    return PixelActorCritic(**kw, encoder=px.encoder,
                            encoder_kwargs=tuple(sorted(px.encoder_kwargs().items())),
                            torso_output="encoder" if cfg.embedding_kind == "encoder" else "actor",
                            shared_encoder=px.shared_encoder)


def normalize_obs(stats: RunningStats, obs: jax.Array) -> jax.Array:
    """Observation normalisation as the trainer applies it (clipped to +-10)."""
    return _normalize(stats, obs)


def _pretrained_encoder(cfg: TrainConfig, net: Any, env: envs_lib.Env) -> Any:
    """The ViT weights of ``pixels.vit_path`` as encoder params (checked now, not when
    compiling), or ``None``. They enter the program as constants; frozen, they stay as loaded.
    """
    px = cfg.pixel_config
    if px is None or px.vit_path is None:
        return None
    from mimex_jax.nn.encoders import load_state_dict, vit_params_from_state_dict

    obs = jax.eval_shape(env.reset, jax.random.key(0)).obs
    one = jax.tree.map(lambda x: jnp.zeros((1,) + x.shape[1:], x.dtype), obs)
    shapes = jax.eval_shape(net.init, jax.random.key(0), one)["params"]["encoder"]
    try:
        return vit_params_from_state_dict(load_state_dict(px.vit_path), shapes)
    except ValueError as err:
        raise ValueError(f"pixels.vit_path={px.vit_path!r} is invalid: {err}") from None


def _frozen_encoder(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` sees pixels through a frozen encoder (``random_conv``, ``vit``)."""
    px = cfg.pixel_config
    return px is not None and px.encoder in FROZEN_ENCODERS


def _frozen_features(cfg: TrainConfig, net: Any, env: envs_lib.Env) -> Callable | None:
    """``(params, obs) -> {"features", ["proprio"]}`` when the rollout should store a frozen
    encoder's features instead of the frames (``pixels.cache_features`` and fewer bytes),
    else ``None``."""
    px = cfg.pixel_config
    if not _frozen_encoder(cfg) or not px.cache_features:
        return None
    enc = make_encoder(px.encoder, **px.encoder_kwargs())
    obs = jax.eval_shape(env.reset, jax.random.key(0)).obs
    frames = obs["pixels"] if isinstance(obs, dict) else obs
    params = jax.eval_shape(net.init, jax.random.key(0), obs)["params"]["encoder"]
    feat = jax.eval_shape(lambda p, x: enc.apply({"params": p}, x), params, frames)
    if feat.size * feat.dtype.itemsize > frames.size * frames.dtype.itemsize:
        return None

    def features(params: Any, obs: Any) -> dict[str, jax.Array]:
        pixels = obs["pixels"] if isinstance(obs, dict) else obs
        out = {"features": enc.apply({"params": params["encoder"]}, pixels)}
        if isinstance(obs, dict):
            out["proprio"] = obs["proprio"]
        return out

    return features


class Collected(NamedTuple):
    """What the rollout stage hands to the reward and PPO stages."""

    env_state: Any
    window: jax.Array
    traj: Transition
    key: jax.Array
    k_rew: jax.Array
    k_ppo: jax.Array


class Stages(NamedTuple):
    collect: Callable
    score: Callable
    learn: Callable


class Built(NamedTuple):
    init: Callable
    update_step: Callable
    train: Callable
    env: envs_lib.Env
    stages: Stages


def episode_metrics(ep: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Iteration means over the episodes that finished in it (``episode_*`` step metrics
    of the env wrappers and of envs that report more, e.g. Craftax's
    ``episode_achievements``; any shape); ``episodes`` is how many finished."""
    n_done = jnp.sum(ep["episode_done"])
    denom = jnp.maximum(n_done, 1.0)
    return {"episodes": n_done,
            **{k: jnp.sum(v) / denom for k, v in ep.items() if k != "episode_done"}}


def episode_step_metrics(metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """The ``episode_*`` entries of an env step's metrics (non-zero where episodes end)."""
    return {k: v for k, v in metrics.items() if k.startswith("episode_")}


def _validate_ppo(cfg: TrainConfig) -> None:
    batch = cfg.num_envs * cfg.rollout_len
    require("minibatches", cfg.minibatches, batch % cfg.minibatches == 0,
            f"a divisor of num_envs * rollout_len = {batch}")
    require("drqv2", cfg.drqv2, not cfg.drqv2, "empty unless agent is 'drqv2'")


def _make_ppo_policy(cfg: TrainConfig, env: envs_lib.Env) -> Callable:
    """Evaluation policy of PPO: the mode (deterministic) or a sample of the actor."""
    net = make_network(cfg, env)

    def policy(params, obs_stats, obs, key, deterministic):
        o = _normalize(obs_stats, obs) if cfg.normalize_obs else obs
        dist = net.apply({"params": params}, o)[0]
        return dist.mode() if deterministic else dist.sample(key)

    return policy


def _build(cfg: TrainConfig) -> Built:
    """The fused trainer of ``cfg.agent`` (see :mod:`mimex_jax.agents.base`)."""
    return get_agent(cfg.agent).build(cfg)


def _build_ppo(cfg: TrainConfig) -> Built:
    env = make_env(cfg, cfg.num_envs)
    pixels = cfg.observation == "pixels"
    embedding = cfg.embedding_kind
    # Pixel runs keep no per-pixel statistics or projection (both refused for pixels).
    obs_dim = 1 if pixels else env.observation_size
    net = make_network(cfg, env)
    discrete, action_dim = net.discrete, net.action_dim
    emb_dim = {"obs": obs_dim, "random_projection": cfg.projection_dim,
               "torso": cfg.actor_hidden[-1],
               "encoder": getattr(net, "feature_dim", 0)}[embedding]
    reward_fn = make_reward(cfg, emb_dim, action_dim, discrete)
    pretrained = _pretrained_encoder(cfg, net, env)
    cached = _frozen_features(cfg, net, env)  # frozen encoder: features in the rollout
    optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    frozen = _frozen_encoder(cfg)

    def trained(tree: Any) -> Any:
        """The parameters the optimizer updates (a frozen encoder's stay out: no Adam
        moments for weights whose gradient is always zero, 2 x 88 MB for a ViT-S)."""
        return {k: v for k, v in tree.items() if k != "encoder"} if frozen else tree
    n_iter = cfg.num_iterations
    n, t_len = cfg.num_envs, cfg.rollout_len

    def policy(params, stats, obs):
        o = _normalize(stats, obs) if cfg.normalize_obs else obs
        return net.apply({"params": params}, o), o

    def embed_from(out, obs_n, projection):
        """What the reward model sees, from an already computed network pass."""
        if embedding == "obs":
            return obs_n
        if embedding == "random_projection":
            return obs_n @ projection
        return jax.lax.stop_gradient(out[3])

    def embed(params, stats, projection, obs):
        """Embed ``obs``; runs the network only for the ``torso``/``encoder`` embeddings."""
        if embedding in ("torso", "encoder"):
            return embed_from(*policy(params, stats, obs), projection)
        obs_n = _normalize(stats, obs) if cfg.normalize_obs else obs
        return embed_from(None, obs_n, projection)

    def with_mask_ratio(reward_state, hp):
        return apply_bonus_hparams(cfg, reward_state, hp)

    def init(key: jax.Array, hp: HParams) -> TrainState:
        k_env, k_net, k_rew, k_proj, key = jax.random.split(key, 5)
        env_state = env.reset(k_env)
        one_obs = jax.tree.map(lambda x: jnp.zeros((1,) + x.shape[1:], x.dtype), env_state.obs)
        params = net.init(k_net, one_obs)["params"]
        if pretrained is not None:
            params = {**params, "encoder": jax.tree.map(jnp.asarray, pretrained)}
        stats = init_stats((obs_dim,))
        projection = jax.random.normal(k_proj, (obs_dim, cfg.projection_dim)) / math.sqrt(
            obs_dim)
        emb0 = embed(params, stats, projection, env_state.obs)
        window = windows.start(emb0, cfg.seq_len)
        dummy = RewardBatch(seq=window, obs=emb0, next_obs=emb0,
                            action=jnp.zeros((n,), jnp.int32) if discrete
                            else jnp.zeros((n, action_dim)))
        reward_state = with_mask_ratio(reward_fn.init(k_rew, dummy), hp)
        return TrainState(params, optimizer.init(trained(params)), reward_state, env_state,
                          window, stats, projection, key, jnp.zeros((), jnp.int32))

    def rollout(state: TrainState, key: jax.Array):
        def inputs(obs):
            """What the network takes for ``obs``: the frames, or a frozen encoder's
            features (``pixels.cache_features``), which the rollout also stores."""
            return obs if cached is None else cached(state.params, obs)

        def forward(obs_in):
            return policy(state.params, state.obs_stats, obs_in)

        def one(carry, k):
            # data parallelism: env axis
            env_state, window, (obs, (out, obs_n)) = constrain_envs(carry, 0, n)
            dist, value, value_int, _ = out
            action = dist.sample(k)
            log_prob = dist.log_prob(action)
            nxt = env.step(env_state, action)
            # The produced observation (bootstrap value, embedding) gets a network pass.
            # After an auto-reset the next step starts from another one, the reset
            # observation (it also feeds the window): its pass runs only when some env is
            # done, and it is carried to the next step as that step's current observation,
            # so each distinct observation goes through the network once.
            term_in = inputs(nxt.info["terminal_obs"])
            term_out, term_n = forward(term_in)
            _, v_term, v_int_term, _ = term_out
            done = nxt.done > 0.5

            def reset_pass(_):
                reset_in = inputs(nxt.obs)
                fresh = (reset_in, forward(reset_in))
                return jax.tree.map(
                    lambda a, b: jnp.where(jnp.reshape(done, done.shape + (1,) * (a.ndim - 1)),
                                           a, b), fresh, (term_in, (term_out, term_n)))

            nxt_cur = jax.lax.cond(jnp.any(done), reset_pass,
                                   lambda _: (term_in, (term_out, term_n)), None)
            emb = embed_from(out, obs_n, state.projection)
            emb_next = embed_from(term_out, term_n, state.projection)
            emb_reset = embed_from(*nxt_cur[1], state.projection)
            seq, window = windows.step(window, emb_next, emb_reset, nxt.done)
            trunc = nxt.info.get("truncation", jnp.zeros_like(nxt.done))
            episode = episode_step_metrics(nxt.metrics)
            tr = Transition(
                obs=obs, action=action, log_prob=log_prob, value=value,
                value_int=value if value_int is None else value_int, reward=nxt.reward,
                done=nxt.done, truncation=trunc, bootstrap=v_term,
                bootstrap_int=v_term if v_int_term is None else v_int_term,
                seq=seq, emb=emb, emb_next=emb_next, episode=episode)
            return (nxt, window, nxt_cur), tr

        obs0 = inputs(state.env_state.obs)
        (env_state, window, _), traj = jax.lax.scan(
            one, (state.env_state, state.window, (obs0, forward(obs0))),
            jax.random.split(key, t_len))
        return env_state, window, traj

    def flat(x: jax.Array) -> jax.Array:
        """``[t, n, ...]`` -> ``[t * n, ...]`` (time-major); env-sharded on both sides."""
        x = constrain_envs(x, 1, n).reshape((t_len * n,) + x.shape[2:])
        return constrain_envs(x, 0, t_len * n)

    def collect(state: TrainState, hp: HParams) -> Collected:
        """Stage 1: the rollout (policy, env step, embeddings, windows)."""
        key, k_roll, k_rew, k_ppo = jax.random.split(state.key, 4)
        env_state, window, traj = rollout(state, k_roll)
        return Collected(env_state, window, traj, key, k_rew, k_ppo)

    def score(state: TrainState, hp: HParams, col: Collected):
        """Stage 2: one update of the reward model on all the rollout's sequences."""
        traj = col.traj
        batch = RewardBatch(seq=flat(traj.seq), obs=flat(traj.emb), next_obs=flat(traj.emb_next),
                            action=flat(traj.action))
        reward_state = with_mask_ratio(state.reward_state, hp)
        reward_state, r_int, r_metrics = reward_fn.update(reward_state, batch, col.k_rew)
        return reward_state, constrain_envs(r_int.reshape(t_len, n), 1, n), r_metrics

    def learn(state: TrainState, hp: HParams, col: Collected, r_int: jax.Array):
        """Stage 3: returns, GAE and the PPO epochs x minibatches."""
        traj, env_state = col.traj, col.env_state
        progress = state.iteration.astype(jnp.float32) / n_iter
        w = 1.0 - hp.anneal * progress
        last = policy(state.params, state.obs_stats, env_state.obs)[0]
        if cfg.intrinsic_value_head:
            adv_e, ret_e = gae(hp.reward_scale * traj.reward, traj.value, traj.done, last[1],
                               hp.gamma, hp.lam, traj.truncation, traj.bootstrap)
            # The intrinsic stream is non-episodic: no termination cuts it.
            zeros = jnp.zeros_like(traj.done)
            adv_i, ret_i = gae(hp.k_expl * w * r_int, traj.value_int, zeros, last[2],
                               hp.gamma_int, hp.lam)
            advantages = adv_e + adv_i
        else:
            rewards = hp.reward_scale * traj.reward + hp.k_expl * w * r_int
            advantages, ret_e = gae(rewards, traj.value, traj.done, last[1], hp.gamma, hp.lam,
                                    traj.truncation, traj.bootstrap)
            ret_i = ret_e
        lr = hp.lr * _schedule(cfg.lr_schedule, progress)
        loss_cfg = PPOLossConfig(hp.clip_eps, hp.value_coef, hp.entropy_coef, cfg.clip_value)
        data = (jax.tree.map(flat, traj.obs), flat(traj.action), flat(traj.log_prob),
                flat(traj.value), flat(traj.value_int), flat(advantages), flat(ret_e), flat(ret_i))

        def loss_fn(params, mb):
            obs, action, old_lp, old_v, old_vi, adv, ret, ret_int = mb
            (dist, v, v_int, _), _ = policy(params, state.obs_stats, obs)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            total, pieces = ppo_loss(dist.log_prob(action), old_lp, adv, v, old_v, ret,
                                     dist.entropy(), loss_cfg)
            if cfg.intrinsic_value_head:
                v_int_loss = jnp.mean(jnp.square(v_int - ret_int))
                total = total + hp.value_coef * v_int_loss
                pieces = {**pieces, "value_int_loss": v_int_loss}
            return total, pieces

        def sgd(carry, mb):
            params, opt_state = carry
            (_, pieces), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, mb)
            grads = trained(grads)  # a frozen encoder's are zero: the norm is the same
            g_norm = optax.tree.norm(grads)
            scale = jnp.minimum(1.0, hp.max_grad_norm / (g_norm + 1e-6))
            grads = jax.tree.map(lambda g: g * scale, grads)
            opt_state.hyperparams["learning_rate"] = lr
            updates, opt_state = optimizer.update(grads, opt_state, trained(params))
            params = {**params, **optax.apply_updates(trained(params), updates)}
            return (params, opt_state), {**pieces, "grad_norm": g_norm}

        def epoch(carry, k):
            perm = jax.random.permutation(k, t_len * n)
            mbs = jax.tree.map(
                lambda x: x[perm].reshape((cfg.minibatches, -1) + x.shape[1:]), data)
            mbs = constrain_envs(mbs, 1, t_len * n // cfg.minibatches)
            return jax.lax.scan(sgd, carry, mbs)

        (params, opt_state), pieces = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(col.k_ppo, cfg.epochs))
        var_y = jnp.var(ret_e)
        metrics = {
            "explained_variance": 1.0 - jnp.var(ret_e - traj.value) / (var_y + 1e-8),
            "lr": lr, "expl_weight": hp.k_expl * w,
            **{k: jnp.mean(v) for k, v in pieces.items()},
        }
        return params, opt_state, metrics

    def update_step(state: TrainState, hp: HParams) -> tuple[TrainState, dict]:
        col = collect(state, hp)
        reward_state, r_int, r_metrics = score(state, hp, col)
        params, opt_state, ppo_metrics = learn(state, hp, col, r_int)
        traj = col.traj
        obs_stats = update_stats(state.obs_stats, flat(traj.obs), axis=0) if cfg.normalize_obs \
            else state.obs_stats
        metrics = {
            **episode_metrics(traj.episode),
            "reward_ext": jnp.mean(traj.reward),
            "reward_int": jnp.mean(r_int), "reward_int_std": jnp.std(r_int),
            **ppo_metrics,
            **{f"reward_model/{k}": v for k, v in r_metrics.items()},
        }
        new_state = TrainState(params, opt_state, reward_state, col.env_state, col.window,
                               obs_stats, state.projection, col.key, state.iteration + 1)
        return new_state, metrics

    def train(key: jax.Array, hp: HParams) -> tuple[TrainState, dict]:
        state = init(key, hp)
        return jax.lax.scan(lambda s, _: update_step(s, hp), state, None, length=n_iter)

    return Built(init, update_step, train, env, Stages(collect, score, learn))


PPO_AGENT = AgentDef(validate=_validate_ppo,
                     steps_per_iteration=lambda cfg: cfg.num_envs * cfg.rollout_len,
                     build=_build_ppo, make_policy=_make_ppo_policy)


def make_train(cfg: TrainConfig) -> tuple[Callable, Callable, Callable, envs_lib.Env]:
    """Build ``(init, update_step, train, env)`` for a static config.

    ``cfg.agent`` picks the trainer from :mod:`mimex_jax.agents.base`'s registry: PPO (this
    module) or DrQ-v2 (:mod:`mimex_jax.agents.drqv2.train`); both return the same shapes.
    """
    b = _build(cfg)
    return b.init, b.update_step, b.train, b.env


def make_stages(cfg: TrainConfig) -> tuple[Callable, Stages]:
    """``(init, Stages(collect, score, learn))``: the parts ``update_step`` fuses.

    For timing the stages alone against the fused step (``benchmarks/throughput.py``):
    ``col = collect(state, hp)``; ``reward_state, r_int, m = score(state, hp, col)``;
    ``params, opt_state, m = learn(state, hp, col, r_int)``.
    """
    b = _build(cfg)
    return b.init, b.stages
