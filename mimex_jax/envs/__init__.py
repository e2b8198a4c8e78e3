"""Environments behind one Brax-style interface: ``reset(key) -> State``, ``step(State, a)``.

Typical use::

    env = mimex_jax.envs.make("brax:reacher_sparse", num_envs=64)
    state = jax.jit(env.reset)(key)                # batched over 64 envs
    state = jax.jit(env.step)(state, actions)      # actions: [64, *env.action_shape]
    env.action_kind, env.num_actions, env.action_bounds, env.observation_size

Ids read ``suite:name`` (suites ``brax``, ``playground``, ``gymnax``); see
:mod:`mimex_jax.envs.registry` for the suites and keywords, :mod:`mimex_jax.envs.wrappers`
for episode statistics / auto-reset / time limits, :mod:`mimex_jax.envs.sparse` for the sparse
Brax tasks and their success radii.
"""

from mimex_jax.envs.base import ActionKind, Env, EnvSpec, State, Wrapper
from mimex_jax.envs.registry import SUITES, list_envs, make, make_base
from mimex_jax.envs.wrappers import AutoReset, ClipAction, EpisodeStats, EpisodeTimeLimit, VecEnv

__all__ = [
    "SUITES",
    "ActionKind",
    "AutoReset",
    "ClipAction",
    "Env",
    "EnvSpec",
    "EpisodeStats",
    "EpisodeTimeLimit",
    "State",
    "VecEnv",
    "Wrapper",
    "list_envs",
    "make",
    "make_base",
]
