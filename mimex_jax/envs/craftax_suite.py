"""Adapter for Craftax (``craftax:<name>``), e.g. ``craftax:Craftax-Classic-Symbolic-v1``.

`Craftax <https://github.com/MichaelTMatthews/Craftax>`_ (Matthews et al., ICML 2024; ``pip
install craftax`` or ``pip install mimex-jax[envs]``) is a JAX rewrite of Crafter
(``Craftax-Classic-*``, 22 achievements) and its larger extension (``Craftax-*``, NetHack-like
floors, more achievements). Only the symbolic observations are exposed here
(``Craftax-Classic-Symbolic-v1``: 1345 floats, ``Craftax-Symbolic-v1``: 8268 floats); the
pixel variants are left out (large image observations that an MLP policy does not take).

- The env is made with ``auto_reset=False`` and stepped with its un-reset ``step_env``, so
  ``step`` returns the terminal transition; :class:`~mimex_jax.envs.wrappers.AutoReset` starts
  the next episode. Randomness: a key in ``info["craftax_key"]``, split every step.
- ``done``: death, lava, or the time limit ``max_timesteps`` (Craftax's default 10000 for
  Classic, 100000 for Craftax; ``episode_length`` given to :func:`mimex_jax.envs.make` sets
  it); ``info["truncation"]`` is 1.0 when only the time limit ended the episode.
- Reward: Craftax's own (+1 per new achievement in Classic, weighted by difficulty in Craftax;
  +-0.1 per health point gained or lost).
- No success flag (``has_success == False``): Craftax has no goal; report success as n/a.
- ``metrics["episode_achievements"]``: on the step that ends an episode, the percentage of the
  env's achievements unlocked during it (0 on other steps, like the ``episode_*`` metrics of
  :class:`~mimex_jax.envs.wrappers.EpisodeStats`); the trainer averages it over finished
  episodes. The Craftax paper's headline number is the episode return as a % of the maximum
  (``MAX_RETURN``); divide ``episode_return`` by it for that.
- Keywords: fields of Craftax's ``EnvParams`` (``max_timesteps``, ``day_length``, ...).
- Speed (2-core CPU shared with other jobs, load average ~10, jax 0.10.2, craftax 1.6.1;
  ``benchmarks/env_speed.py``): Classic-Symbolic with random actions 1130 env steps/s at 16
  envs, 274 at 64 (noisy); compiling the step takes 35-150 s. Measure before sizing a run.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from mimex_jax.envs.base import EnvSpec, ParamsEnv, State, cast_like, flat_f32, strong_types

__all__ = ["CRAFTAX_ENVS", "MAX_RETURN", "CraftaxEnv", "craftax_env_names"]

CRAFTAX_ENVS = ("Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1")
# Episode return when every achievement is unlocked (Classic: 22 x 1; Craftax: the README's
# "maximum (226)"), the denominator of the published "% of max" scores.
MAX_RETURN = {"Craftax-Classic-Symbolic-v1": 22.0, "Craftax-Symbolic-v1": 226.0}


def _import_craftax():
    try:
        from craftax import craftax_env
    except Exception as err:
        raise ImportError(
            "the 'craftax:' env suite needs craftax (`pip install craftax` or "
            f"`pip install mimex-jax[envs]`), which could not be imported: {err!r}"
        ) from err
    return craftax_env


def craftax_env_names() -> list[str]:
    """The Craftax ids this suite serves (imports craftax to check it is installed)."""
    _import_craftax()
    return list(CRAFTAX_ENVS)


class CraftaxEnv(ParamsEnv):
    """A Craftax symbolic env behind the :class:`~mimex_jax.envs.base.Env` interface."""

    def __init__(self, name: str, **overrides):
        craftax_env = _import_craftax()
        if name not in CRAFTAX_ENVS:
            raise ValueError(f"unknown Craftax env {name!r}; allowed: {list(CRAFTAX_ENVS)}")
        env = craftax_env.make_craftax_env_from_name(name, auto_reset=False)
        params = env.default_params
        fields = [f.name for f in dataclasses.fields(params)]
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ValueError(
                f"unknown keyword(s) {unknown} for craftax:{name}; allowed: EnvParams {fields}"
            )
        self._name = name
        self._env = env
        self._params = params.replace(**overrides)
        # The same params without a time limit: tells death/lava from the time limit.
        self._no_limit = self._params.replace(max_timesteps=jnp.iinfo(jnp.int32).max)


    def reset(self, rng: jax.Array) -> State:
        carry_key, reset_key = jax.random.split(rng)
        obs, cstate = self._env.reset_env(reset_key, self._params)
        zero = jnp.zeros((), jnp.float32)
        state = State(
            pipeline_state=cstate,
            obs=flat_f32(obs),
            reward=zero,
            done=zero,
            metrics={"episode_achievements": zero},
            info={"craftax_key": carry_key, "truncation": zero},
        )
        return strong_types(state)

    def step(self, state: State, action: jax.Array) -> State:
        carry_key, step_key = jax.random.split(state.info["craftax_key"])
        action = jnp.asarray(action).astype(jnp.int32).reshape(())
        obs, cstate, reward, done, _ = self._env.step_env(
            step_key, state.pipeline_state, action, self._params)
        done = jnp.asarray(done, bool).reshape(())
        natural = jnp.asarray(self._env.is_terminal(cstate, self._no_limit), bool).reshape(())
        unlocked = 100.0 * jnp.mean(jnp.asarray(cstate.achievements, jnp.float32))
        nstate = State(
            pipeline_state=cstate,
            obs=flat_f32(obs),
            reward=jnp.asarray(reward, jnp.float32).reshape(()),
            done=done.astype(jnp.float32),
            metrics={"episode_achievements": unlocked * done},
            info={**state.info, "craftax_key": carry_key,
                  "truncation": jnp.logical_and(done, ~natural).astype(jnp.float32)},
        )
        return cast_like(nstate, state, f"state of craftax:{self._name}")

    @functools.cached_property
    def spec(self) -> EnvSpec:
        return self._discrete_spec(f"craftax:{self._name}",
                                   self._env.action_space(self._params).n,
                                   self._params.max_timesteps, has_success=False,
                                   backend="craftax")
