"""Evaluate a trained policy: mean return, success and length over fresh episodes.

:func:`random_policy_returns` is the matching baseline: uniformly random actions on the
same task (time limit and action repeat included), from state, without rendering.

``make_evaluate(cfg)`` returns a jittable ``evaluate(params, obs_stats, key, episodes,
deterministic)`` that runs ``episodes`` environments in parallel for one full episode
each (the task's time limit bounds the scan) and reports the first finished episode of
every environment. ``deterministic=True`` acts with the policy's mode (the mean action,
or the most likely discrete action); ``False`` samples as in training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from mimex_jax import envs as envs_lib
from mimex_jax.agents.base import get_agent
from mimex_jax.trainer import TrainConfig, make_env


def episode_limit(cfg: TrainConfig) -> int:
    """The number of steps that bounds one episode of ``cfg``'s task."""
    if cfg.episode_length is not None:
        return int(cfg.episode_length)
    spec = envs_lib.make_base(cfg.env_id, **dict(cfg.env_kwargs)).spec
    if spec.episode_length is None:
        raise ValueError(f"env {cfg.env_id!r} has no time limit; set episode_length to "
                         "evaluate it")
    repeat = cfg.pixel_config.action_repeat if cfg.pixel_config is not None else 1
    return -(-int(spec.episode_length) // repeat)  # agent steps after action repeat


def make_evaluate(cfg: TrainConfig, episodes: int,
                  frames: Callable[[envs_lib.Env], Callable[[Any], jax.Array]] | None = None,
                  ) -> Callable[..., dict[str, jax.Array]]:
    """Build ``evaluate(params, obs_stats, key, deterministic=True) -> per-episode arrays``.

    Returns a dict of ``[episodes]`` arrays: ``return``, ``success``, ``length`` and
    ``finished`` (1.0 where the episode ended within the limit; always 1.0 for tasks with a
    time limit). ``frames``, given the batched eval env, returns a function of its state
    (e.g. a renderer, :mod:`mimex_jax.video`); its value in the state each action is taken
    in is stacked over the scan as ``out["frames"]`` (``[limit, episodes, ...]``).
    """
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"episodes={episodes!r} is invalid; allowed: an integer >= 1")
    env = make_env(cfg, episodes)
    policy = get_agent(cfg.agent).make_policy(cfg, env)
    limit = episode_limit(cfg)
    observe = frames(env) if frames is not None else None

    def evaluate(params: Any, obs_stats: Any, key: jax.Array,
                 deterministic: bool = True) -> dict[str, jax.Array]:
        k_reset, k_act = jax.random.split(key)
        state = env.reset(k_reset)
        zeros = jnp.zeros((episodes,), jnp.float32)

        def one(carry, k):
            state, seen, ret, succ, length = carry
            frame = observe(state) if observe is not None else None
            action = policy(params, obs_stats, state.obs, k, deterministic)
            state = env.step(state, action)
            m = state.metrics
            first = m["episode_done"] * (1.0 - seen)  # this env's first finished episode
            ret = ret + first * m["episode_return"]
            succ = succ + first * m["episode_success"]
            length = length + first * m["episode_length"]
            return (state, jnp.maximum(seen, m["episode_done"]), ret, succ, length), frame

        (_, seen, ret, succ, length), shown = jax.lax.scan(
            one, (state, zeros, zeros, zeros, zeros), jax.random.split(k_act, limit))
        out = {"return": ret, "success": succ, "length": length, "finished": seen}
        if observe is not None:
            out["frames"] = shown
        return out

    return evaluate


def random_policy_returns(cfg: TrainConfig, episodes: int, key: jax.Array) -> jax.Array:
    """Returns ``[episodes]`` returns of a policy acting uniformly at random on ``cfg``'s task.

    Actions are uniform over the action box (continuous) or the action set (discrete); the
    task's time limit and, for pixel configs, its action repeat are kept, but the env is
    stepped from state without rendering: a random policy ignores its observations, so the
    returns are those of the pixel task at a fraction of the cost. Jit it yourself
    (``jax.jit(random_policy_returns, static_argnums=(0, 1))``) or call it once.
    """
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"episodes={episodes!r} is invalid; allowed: an integer >= 1")
    limit = episode_limit(cfg)
    repeat = cfg.pixel_config.action_repeat if cfg.pixel_config is not None else None
    env = envs_lib.make(cfg.env_id, num_envs=episodes, episode_length=limit,
                        auto_reset=False, action_repeat=repeat, **dict(cfg.env_kwargs))
    spec = env.spec

    def sample(k: jax.Array) -> jax.Array:
        if spec.action_kind == "discrete":
            return jax.random.randint(k, (episodes,), 0, spec.num_actions)
        low = jnp.asarray(spec.action_low, jnp.float32)
        high = jnp.asarray(spec.action_high, jnp.float32)
        return jax.random.uniform(k, (episodes, spec.action_size), jnp.float32, low, high)

    def one(carry, k):
        state, seen, ret = carry
        state = env.step(state, sample(k))
        m = state.metrics
        ret = ret + m["episode_done"] * (1.0 - seen) * m["episode_return"]
        return (state, jnp.maximum(seen, m["episode_done"]), ret), None

    k_reset, k_act = jax.random.split(key)
    zeros = jnp.zeros((episodes,), jnp.float32)
    (_, _, ret), _ = jax.lax.scan(one, (env.reset(k_reset), zeros, zeros),
                                  jax.random.split(k_act, limit))
    return ret
