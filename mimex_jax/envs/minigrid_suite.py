"""Adapter for the MiniGrid tasks of XLand-MiniGrid (``minigrid:<name>``), e.g.
``minigrid:DoorKey-8x8``.

The backend is `xminigrid <https://github.com/dunnolab/xland-minigrid>`_ (``pip install
xminigrid``, or ``pip install mimex-jax[envs]``): pure JAX, jittable and vmappable, with small
dependencies. Its MiniGrid ports are the ids of :func:`minigrid_env_names` (``DoorKey-5x5``,
``-6x6``, ``-8x8``, ``-16x16``, ``FourRooms``, ``LockedRoom``, ``BlockedUnlockPickUp``,
``UnlockPickUp``, ``Unlock``, ``Empty-*``, ``Memory*`` ...), plus MiniGrid's
``KeyCorridorS3R1`` ... ``KeyCorridorS6R3`` and ``MultiRoom-N2-S4`` / ``-N4-S5`` / ``-N6``,
which xminigrid lacks and :mod:`mimex_jax.envs.minigrid_tasks` builds on xminigrid's core.

- Observation: the agent's egocentric ``view_size x view_size`` symbolic view (xminigrid's
  "transparent" field of view; the carried object shows in the agent's own cell), each cell
  one-hot over tile kinds (13) and colours (12), flattened to a float32 vector of
  ``view_size**2 * 25`` (1225 for the default ``view_size=7``). An MLP policy reads it as is.
- Actions: 6 discrete (forward, turn right, turn left, pick up, put down, toggle), int32.
- Reward: MiniGrid's ``1 - 0.9 * steps / max_steps`` on reaching the goal, else 0.
- ``done`` on reaching the goal or at ``max_steps`` (MiniGrid's default ``10 * height *
  width``; ``episode_length`` given to :func:`mimex_jax.envs.make` sets it);
  ``info["truncation"]`` is 1.0 when the time limit ended the episode.
- ``metrics["success"]``: 1.0 on the step that reaches the goal (terminal with reward > 0).
- Keywords: ``view_size``, ``max_steps``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from mimex_jax.envs.base import EnvSpec, ParamsEnv, State, cast_like, strong_types

__all__ = ["MiniGridEnv", "minigrid_env_names"]

_PREFIX = "MiniGrid-"
_KEYWORDS = ("view_size", "max_steps")


def _import_xminigrid():
    try:
        import xminigrid
    except Exception as err:
        raise ImportError(
            "the 'minigrid:' env suite needs xminigrid (`pip install xminigrid` or "
            f"`pip install mimex-jax[envs]`), which could not be imported: {err!r}"
        ) from err
    return xminigrid


def minigrid_env_names() -> list[str]:
    """The MiniGrid task names of xminigrid, without its ``MiniGrid-`` prefix, and the
    tasks of :mod:`mimex_jax.envs.minigrid_tasks`."""
    from mimex_jax.envs.minigrid_tasks import EXTRA_TASKS

    names = _import_xminigrid().registered_environments()
    return sorted([n[len(_PREFIX):] for n in names if n.startswith(_PREFIX)]
                  + list(EXTRA_TASKS))


def onehot_view(view: jax.Array) -> jax.Array:
    """``[V, V, 2]`` (tile, colour) indices -> flat float32 one-hot of ``V * V * 25``."""
    from xminigrid.core.constants import NUM_COLORS, NUM_TILES

    tiles = jax.nn.one_hot(view[..., 0], NUM_TILES, dtype=jnp.float32)
    colors = jax.nn.one_hot(view[..., 1], NUM_COLORS, dtype=jnp.float32)
    return jnp.concatenate([tiles, colors], axis=-1).reshape(-1)


class MiniGridEnv(ParamsEnv):
    """An xminigrid MiniGrid task behind the :class:`~mimex_jax.envs.base.Env` interface."""

    def __init__(self, name: str, **overrides):
        xminigrid = _import_xminigrid()
        names = minigrid_env_names()
        if name not in names:
            raise ValueError(f"unknown MiniGrid env {name!r}; xminigrid MiniGrid envs: {names}")
        unknown = sorted(set(overrides) - set(_KEYWORDS))
        if unknown:
            raise ValueError(
                f"unknown keyword(s) {unknown} for minigrid:{name}; allowed: {list(_KEYWORDS)}"
            )
        for k, v in overrides.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{k}={v!r} for minigrid:{name} is invalid; allowed: an "
                                 "integer >= 1")
        from mimex_jax.envs.minigrid_tasks import EXTRA_TASKS, make_extra

        env, params = (make_extra(name) if name in EXTRA_TASKS
                       else xminigrid.make(_PREFIX + name))
        self._name = name
        self._env = env
        self._params = params.replace(**overrides)


    def reset(self, rng: jax.Array) -> State:
        ts = self._env.reset(self._params, rng)
        zero = jnp.zeros((), jnp.float32)
        state = State(
            pipeline_state=ts,
            obs=onehot_view(ts.observation),
            reward=zero,
            done=zero,
            metrics={"success": zero},
            info={"truncation": zero},
        )
        return strong_types(state)

    def step(self, state: State, action: jax.Array) -> State:
        action = jnp.asarray(action).astype(jnp.int32).reshape(())
        ts = self._env.step(self._params, state.pipeline_state, action)
        reward = jnp.asarray(ts.reward, jnp.float32).reshape(())
        terminated = jnp.asarray(ts.discount, jnp.float32).reshape(()) == 0.0
        done = ts.last()
        success = jnp.logical_and(terminated, reward > 0.0)
        nstate = State(
            pipeline_state=ts,
            obs=onehot_view(ts.observation),
            reward=reward,
            done=done.astype(jnp.float32),
            metrics={"success": success.astype(jnp.float32)},
            info={**state.info,
                  "truncation": jnp.logical_and(done, ~terminated).astype(jnp.float32)},
        )
        return cast_like(nstate, state, f"state of minigrid:{self._name}")

    @functools.cached_property
    def spec(self) -> EnvSpec:
        return self._discrete_spec(f"minigrid:{self._name}", self._env.num_actions(self._params),
                                   self._params.max_steps, has_success=True,
                                   backend="xminigrid")
