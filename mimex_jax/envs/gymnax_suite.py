"""Adapter for gymnax environments (``gymnax:<id>``), e.g. ``gymnax:DeepSea-bsuite``.

gymnax's ``env.step(key, state, action, params)`` resets internally when an episode ends and
returns the first observation of the next episode. This adapter calls the un-reset transition
``env.step_env`` instead, so ``step`` returns the TERMINAL transition (terminal ``obs``,
``done == 1``) exactly like a Brax env; the :class:`~mimex_jax.envs.wrappers.AutoReset` wrapper
then starts the next episode from a fresh key. (Used without ``AutoReset`` the env stays in its
terminal state; stepping it further is undefined, as for any env.)

- Randomness: the gymnax key lives in ``info["gymnax_key"]`` and is split on every step.
- ``done = terminated or truncated`` with ``truncated = state.time >= max_steps_in_episode``;
  ``info["truncation"]`` is 1.0 when the time limit ended a non-terminal episode.
- ``obs`` is flattened to float32 (DeepSea: ``size * size``); ``reward`` and ``done`` float32.
- Discrete envs take int32 scalar actions; continuous envs float32 vectors of ``action_size``
  (bounds from gymnax's action space).
- Keywords are the env constructor's arguments (DeepSea: ``size``) and the fields of its
  ``EnvParams`` (e.g. ``max_steps_in_episode``, ``deterministic``). ``episode_length`` given to
  :func:`mimex_jax.envs.make` sets ``max_steps_in_episode``.
- ``metrics["success"]``: DeepSea: the treasure was collected on this step; MountainCar(,
  Continuous), Acrobot: the goal was reached (natural termination).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np

from mimex_jax.envs.base import EnvSpec, ParamsEnv, State, cast_like, flat_f32, strong_types

__all__ = ["GymnaxEnv", "gymnax_env_names"]


def _success_from_denoised_return(old, new, terminated):
    del terminated
    return new.denoised_return > old.denoised_return


def _success_on_termination(old, new, terminated):
    del old, new
    return terminated


# How ``metrics["success"]`` is computed, per gymnax id: f(old_state, new_state, terminated).
_SUCCESS = {
    "DeepSea-bsuite": _success_from_denoised_return,
    "MountainCar-v0": _success_on_termination,
    "MountainCarContinuous-v0": _success_on_termination,
    "Acrobot-v1": _success_on_termination,
}


def _import_gymnax():
    try:
        import gymnax
    except Exception as err:
        raise ImportError(
            "the 'gymnax:' env suite needs gymnax (`pip install gymnax`), which could not be "
            f"imported: {err!r}"
        ) from err
    return gymnax


def gymnax_env_names() -> list[str]:
    return sorted(_import_gymnax().registered_envs)


def _factory(name: str):
    from gymnax import registration

    return registration._registry[name]


def _ctor_keywords(name: str) -> list[str]:
    factory = _factory(name)
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = inspect.signature(target).parameters
    return [
        p.name
        for p in params.values()
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]


def _param_fields(env) -> list[str]:
    return [f.name for f in dataclasses.fields(env.default_params)]


class GymnaxEnv(ParamsEnv):
    """A gymnax env behind the :class:`~mimex_jax.envs.base.Env` interface (see module doc)."""

    def __init__(self, name: str, **overrides):
        gymnax = _import_gymnax()
        if name not in gymnax.registered_envs:
            raise ValueError(
                f"unknown gymnax env {name!r}; registered gymnax envs: "
                f"{sorted(gymnax.registered_envs)}"
            )
        ctor = _ctor_keywords(name)
        ctor_kwargs = {k: v for k, v in overrides.items() if k in ctor}
        env, params = gymnax.make(name, **ctor_kwargs)
        fields = _param_fields(env)
        unknown = sorted(set(overrides) - set(ctor) - set(fields))
        if unknown:
            raise ValueError(
                f"unknown keyword(s) {unknown} for gymnax:{name}; allowed: constructor "
                f"{ctor}, EnvParams {fields}"
            )
        param_kwargs = {k: v for k, v in overrides.items() if k not in ctor}
        self._name = name
        self._env = env
        self._params = params.replace(**param_kwargs)
        self._success_fn = _SUCCESS.get(name)


    def _action_space(self):
        return self._env.action_space(self._params)

    def _is_discrete(self) -> bool:
        return hasattr(self._action_space(), "n")

    def _metrics(self, success) -> dict:
        if self._success_fn is None:
            return {}
        return {"success": jnp.asarray(success, jnp.float32)}

    def reset(self, rng: jax.Array) -> State:
        carry_key, reset_key = jax.random.split(rng)
        obs, gstate = self._env.reset_env(reset_key, self._params)
        zero = jnp.zeros((), jnp.float32)
        state = State(
            pipeline_state=gstate,
            obs=flat_f32(obs),
            reward=zero,
            done=zero,
            metrics=self._metrics(zero),
            info={"gymnax_key": carry_key, "truncation": zero},
        )
        return strong_types(state)

    def step(self, state: State, action: jax.Array) -> State:
        carry_key, step_key = jax.random.split(state.info["gymnax_key"])
        space = self._action_space()
        if self._is_discrete():
            action = jnp.asarray(action).astype(jnp.int32).reshape(())
        else:
            action = jnp.asarray(action, jnp.float32).reshape(space.shape)
        old = state.pipeline_state
        obs, gstate, reward, terminated, _ = self._env.step_env(
            step_key, old, action, self._params
        )
        terminated = jnp.asarray(terminated, bool).reshape(())
        truncated = jnp.asarray(self._env.is_truncated(gstate, self._params), bool).reshape(())
        done = jnp.logical_or(terminated, truncated)
        success = self._success_fn(old, gstate, terminated) if self._success_fn else None
        nstate = State(
            pipeline_state=gstate,
            obs=flat_f32(obs),
            reward=jnp.asarray(reward, jnp.float32).reshape(()),
            done=done.astype(jnp.float32),
            metrics=self._metrics(success),
            info={
                **state.info,
                "gymnax_key": carry_key,
                "truncation": jnp.logical_and(truncated, ~terminated).astype(jnp.float32),
            },
        )
        return cast_like(nstate, state, f"state of gymnax:{self._name}")

    @functools.cached_property
    def spec(self) -> EnvSpec:
        shapes = jax.eval_shape(self.reset, jax.random.PRNGKey(0))
        space = self._action_space()
        if self._is_discrete():
            n = int(space.n)
            kind, size, low, high = "discrete", n, None, None
        else:
            size = int(np.prod(space.shape))
            low = tuple(float(x) for x in np.broadcast_to(np.asarray(space.low), (size,)))
            high = tuple(float(x) for x in np.broadcast_to(np.asarray(space.high), (size,)))
            kind, n = "continuous", None
        return EnvSpec(
            env_id=f"gymnax:{self._name}",
            observation_size=int(shapes.obs.shape[0]),
            action_kind=kind,
            action_size=size,
            num_actions=n,
            action_low=low,
            action_high=high,
            episode_length=int(self._params.max_steps_in_episode),
            has_success=self._success_fn is not None,
            backend="gymnax",
        )
