"""Adapter for MuJoCo Playground's DM Control Suite tasks (``playground:<Name>``) and its
Franka Panda manipulation tasks (:mod:`mimex_jax.envs.manipulation`).

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
    """DM Control Suite task names, the Panda tasks and their sparse versions."""
    from mimex_jax.envs.manipulation import PANDA_TASKS, SPARSE_PANDA_TASKS

    suite, _ = _import_suite()
    return sorted([*suite.ALL_ENVS, *PANDA_TASKS, *SPARSE_PANDA_TASKS])


def _suite_of(name: str):
    """Playground's registry module that holds ``name`` (its Panda tasks need Menagerie)."""
    from mimex_jax.envs.manipulation import PANDA_TASKS, check_menagerie

    suite, _ = _import_suite()
    if name in suite.ALL_ENVS:
        return suite
    if name in PANDA_TASKS:
        check_menagerie(name)
        from mujoco_playground import manipulation

        return manipulation
    raise ValueError(f"unknown Playground task {name!r}; available: {playground_env_names()}")


def _flat_keys(cfg, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        if hasattr(v, "items"):
            keys += _flat_keys(v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return keys


class PlaygroundEnv(Env):
    """A Playground task behind the :class:`~mimex_jax.envs.base.Env` API.

    ``obs`` is flattened to float32, ``info["truncation"]`` (always 0.0) is added, other info
    and metrics pass through. Actions are float32 vectors in [-1, 1]. Subclasses change the
    reward or add metrics in :meth:`_finish`; the keys they add are listed in ``_ADDED`` (taken
    out of the state before Playground's own ``step`` sees it).
    """

    _ADDED: tuple[str, ...] = ("success",)

    def __init__(self, name: str, *, env_id: str | None = None, **config_overrides):
        _, self._mjx_env = _import_suite()
        suite = _suite_of(name)
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
        # Playground's Panda resets leave the Data without kinematics (poses all zero), which
        # renders black first frames: they get a camera if they have none, and poses on reset.
        self._pose_on_reset = suite is not _import_suite()[0]
        if self._pose_on_reset:
            from mimex_jax.envs.manipulation import add_default_camera

            add_default_camera(self._env)
        self._env_id = env_id or f"playground:{name}"
        self._episode_length = int(self._env._config.episode_length)
        self._impl = str(self._env._config.impl)

    @property
    def unwrapped(self):
        return self._env

    def _to_ours(self, s) -> State:
        return State(
            pipeline_state=s.data,
            obs=flat_f32(s.obs),
            reward=jnp.asarray(s.reward, jnp.float32),
            done=jnp.asarray(s.done, jnp.float32),
            metrics=dict(s.metrics),
            info={**s.info, "truncation": jnp.zeros((), jnp.float32)},
        )

    def _finish(self, state: State, first: bool) -> State:
        """The state this adapter returns (``first``: from ``reset``, no transition yet)."""
        if self._name in INDICATOR_REWARD_TASKS:
            success = jnp.zeros((), jnp.float32) if first else (state.reward > 0)
            state.metrics["success"] = jnp.asarray(success, jnp.float32)
        return state

    def reset(self, rng: jax.Array) -> State:
        s = self._env.reset(rng)
        if self._pose_on_reset:  # body, geom, site, camera and light poses of the reset qpos
            from mujoco import mjx

            m = self._env.mjx_model
            s = s.replace(data=mjx.camlight(m, mjx.kinematics(m, s.data)))
        return strong_types(self._finish(self._to_ours(s), first=True))

    def step(self, state: State, action: jax.Array) -> State:
        inner_info = {k: v for k, v in state.info.items() if k != "truncation"}
        inner_metrics = {k: v for k, v in state.metrics.items() if k not in self._ADDED}
        pg_state = self._mjx_env.State(
            data=state.pipeline_state,
            obs=state.obs,
            reward=state.reward,
            done=jnp.zeros_like(state.done),  # a new transition; the env sets done itself
            metrics=inner_metrics,
            info=inner_info,
        )
        s = self._env.step(pg_state, jnp.asarray(action, jnp.float32))
        nstate = self._finish(self._to_ours(s), first=False)
        return cast_like(nstate, state, f"state of {self._env_id}")

    @functools.cached_property
    def spec(self) -> EnvSpec:
        shapes = jax.eval_shape(self.reset, jax.random.PRNGKey(0))
        n = int(self._env.action_size)
        return EnvSpec(
            env_id=self._env_id,
            observation_size=int(shapes.obs.shape[0]),
            action_kind="continuous",
            action_size=n,
            action_low=(-1.0,) * n,
            action_high=(1.0,) * n,
            episode_length=self._episode_length,
            has_success="success" in shapes.metrics,
            backend=f"mjx-{self._impl}",
        )
