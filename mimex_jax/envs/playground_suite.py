"""Adapter for MuJoCo Playground's DM Control Suite tasks (``playground:<Name>``).

Needs the ``playground`` package (import name ``mujoco_playground``). Tasks run on MJX with
``impl="jax"`` by default (Playground's own default, ``"warp"``, is slow on CPU); any entry of
the task's default config (``ctrl_dt``, ``sim_dt``, ``episode_length``, ``impl``, ``njmax``,
...) can be overridden by keyword, nested entries with dotted names.

The Playground state maps onto :class:`~mimex_jax.envs.base.State` with ``pipeline_state`` =
the MJX ``Data``. For tasks whose reward is a 0/1 indicator (the ``*Sparse`` tasks, BallInCup,
FingerTurn*, Reacher*) ``metrics["success"]`` is ``reward > 0``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from mimex_jax.envs.base import Env, EnvSpec, State, cast_like, flat_f32, strong_types

__all__ = ["INDICATOR_REWARD_TASKS", "PlaygroundEnv", "playground_env_names"]

INDICATOR_REWARD_TASKS = frozenset({
    "AcrobotSwingupSparse",
    "BallInCup",
    "CartpoleBalanceSparse",
    "CartpoleSwingupSparse",
    "FingerTurnEasy",
    "FingerTurnHard",
    "ReacherEasy",
    "ReacherHard",
})


def _import_suite():
    """Imports Playground's DM Control Suite module or raises an ImportError that says why."""
    try:
        from mujoco_playground import dm_control_suite
        from mujoco_playground._src import mjx_env
    except Exception as err:  # ImportError, or a broken install failing at import time
        raise ImportError(
            "the 'playground:' env suite needs MuJoCo Playground (`pip install playground`, "
            f"import name `mujoco_playground`), which could not be imported: {err!r}"
        ) from err
    return dm_control_suite, mjx_env


def playground_env_names() -> list[str]:
    suite, _ = _import_suite()
    return sorted(suite.ALL_ENVS)


def _flat_keys(cfg, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        if hasattr(v, "items"):
            keys += _flat_keys(v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return keys


class PlaygroundEnv(Env):
    """A Playground DM Control Suite task behind the :class:`~mimex_jax.envs.base.Env` API.

    ``obs`` is flattened to float32, ``info["truncation"]`` (always 0.0) is added, other info
    and metrics pass through. Actions are float32 vectors in [-1, 1].
    """

    def __init__(self, name: str, **config_overrides):
        suite, self._mjx_env = _import_suite()
        if name not in suite.ALL_ENVS:
            raise ValueError(
                f"unknown Playground DM Control Suite task {name!r}; available: "
                f"{sorted(suite.ALL_ENVS)}"
            )
        allowed = _flat_keys(suite.get_default_config(name))
        unknown = sorted(set(config_overrides) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown keyword(s) {unknown} for playground:{name}; allowed (config "
                f"entries): {sorted(allowed)}"
            )
        config_overrides.setdefault("impl", "jax")
        self._name = name
        self._env = suite.load(name, config_overrides=config_overrides)
        self._episode_length = int(self._env._config.episode_length)
        self._impl = str(self._env._config.impl)

    @property
    def unwrapped(self):
        return self._env

    def _to_ours(self, s, info_extra: dict) -> State:
        return State(
            pipeline_state=s.data,
            obs=flat_f32(s.obs),
            reward=jnp.asarray(s.reward, jnp.float32),
            done=jnp.asarray(s.done, jnp.float32),
            metrics=self._with_success(dict(s.metrics), s.reward),
            info={**s.info, **info_extra},
        )

    def _with_success(self, metrics: dict, reward: jax.Array) -> dict:
        if self._name in INDICATOR_REWARD_TASKS:
            metrics["success"] = (jnp.asarray(reward) > 0).astype(jnp.float32)
        return metrics

    def reset(self, rng: jax.Array) -> State:
        s = self._env.reset(rng)
        state = self._to_ours(s, {"truncation": jnp.zeros((), jnp.float32)})
        if "success" in state.metrics:  # no transition yet
            state.metrics["success"] = jnp.zeros((), jnp.float32)
        return strong_types(state)

    def step(self, state: State, action: jax.Array) -> State:
        inner_info = {k: v for k, v in state.info.items() if k != "truncation"}
        inner_metrics = {k: v for k, v in state.metrics.items() if k != "success"}
        pg_state = self._mjx_env.State(
            data=state.pipeline_state,
            obs=state.obs,
            reward=state.reward,
            done=jnp.zeros_like(state.done),  # a new transition; the env sets done itself
            metrics=inner_metrics,
            info=inner_info,
        )
        s = self._env.step(pg_state, jnp.asarray(action, jnp.float32))
        nstate = self._to_ours(s, {"truncation": jnp.zeros((), jnp.float32)})
        return cast_like(nstate, state, f"state of playground:{self._name}")

    @functools.cached_property
    def spec(self) -> EnvSpec:
        shapes = jax.eval_shape(self.reset, jax.random.PRNGKey(0))
        n = int(self._env.action_size)
        return EnvSpec(
            env_id=f"playground:{self._name}",
            observation_size=int(shapes.obs.shape[0]),
            action_kind="continuous",
            action_size=n,
            action_low=(-1.0,) * n,
            action_high=(1.0,) * n,
            episode_length=self._episode_length,
            has_success="success" in shapes.metrics,
            backend=f"mjx-{self._impl}",
        )
