"""The environment interface shared by every suite: `State`, `EnvSpec`, `Env`, `Wrapper`.

The protocol is Brax's: ``env.reset(key) -> State`` and ``env.step(state, action) -> State``,
both pure and jittable. ``State`` is :class:`brax.envs.base.State` (fields ``pipeline_state``,
``obs``, ``reward``, ``done``, ``metrics``, ``info``); ``pipeline_state`` holds whatever the
underlying simulator needs (a Brax pipeline state, an MJX ``Data``, a gymnax state).

Conventions every adapter in this package follows:

- ``obs`` is a flat float32 vector of length ``observation_size``;
- ``reward`` and ``done`` are float32 scalars (``done`` is 0.0 or 1.0);
- ``info["truncation"]`` is 1.0 when ``done`` came from a time limit rather than a terminal
  state (bootstrap from the value of ``info["terminal_obs"]`` in that case), else 0.0;
- the pytree structure and dtypes of the state never change between ``reset`` and ``step``
  (so states can be carried through ``lax.scan`` and selected with ``lax.cond``).

Extra static facts live in :class:`EnvSpec`, reachable as ``env.spec`` and through
convenience properties (``action_kind``, ``num_actions``, ``action_bounds``, ...).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np


@contextlib.contextmanager
def _without_optional_warp_notice():
    """Drop MuJoCo MJX's import-time "Failed to import warp" lines, pass any other output.

    Brax imports ``mujoco.mjx``, which prints those lines whenever the optional Warp package is
    absent. Only pixel observations need Warp, and ``mimex_jax.envs.pixels`` raises a clear
    error of its own when it is missing, so the notice is noise for everyone else.
    """
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield
    for line in buf.getvalue().splitlines(keepends=True):
        if not line.startswith(("Failed to import warp:", "Failed to import mujoco_warp:")):
            sys.stdout.write(line)


with _without_optional_warp_notice():
    from brax.envs.base import Env as BraxEnv
    from brax.envs.base import State

__all__ = ["ActionKind", "Env", "EnvSpec", "ParamsEnv", "State", "Wrapper"]

ActionKind = Literal["continuous", "discrete"]


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static description of one (unbatched) environment.

    Attributes:
      env_id: the ``suite:name`` id the env was made from.
      observation_size: length of the flat float32 observation vector.
      action_kind: ``"continuous"`` (float32 vector of ``action_size``) or ``"discrete"``
        (int32 scalar in ``[0, num_actions)``).
      action_size: continuous: number of action dimensions; discrete: ``num_actions`` (the width
        of a policy's logit vector). ``step`` expects an array of shape ``action_shape``.
      num_actions: number of discrete actions, ``None`` for continuous envs.
      action_low, action_high: per-dimension bounds of continuous actions, ``None`` if discrete.
      episode_length: the time limit in effect (or the suite default before wrapping), ``None``
        when the env itself decides (gymnax: its ``max_steps_in_episode``).
      has_success: whether ``metrics["success"]`` is meaningful for this task.
      backend: the simulator behind the env (``"generalized"``, ``"mjx-jax"``, ``"gymnax"``...).
    """

    env_id: str
    observation_size: int
    action_kind: ActionKind
    action_size: int
    num_actions: int | None = None
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    episode_length: int | None = None
    has_success: bool = False
    backend: str = ""

    @property
    def action_shape(self) -> tuple[int, ...]:
        return () if self.action_kind == "discrete" else (self.action_size,)

    @property
    def action_dtype(self) -> np.dtype:
        return np.dtype(np.int32) if self.action_kind == "discrete" else np.dtype(np.float32)


class Env(BraxEnv):
    """Base class of every env in this package (a :class:`brax.envs.base.Env`).

    Subclasses implement ``reset``, ``step`` and ``spec``; everything else derives from ``spec``.
    """

    @property
    def spec(self) -> EnvSpec:
        raise NotImplementedError

    @property
    def observation_size(self) -> int:
        return self.spec.observation_size

    @property
    def action_size(self) -> int:
        return self.spec.action_size

    @property
    def action_kind(self) -> ActionKind:
        return self.spec.action_kind

    @property
    def is_discrete(self) -> bool:
        return self.spec.action_kind == "discrete"

    @property
    def num_actions(self) -> int | None:
        return self.spec.num_actions

    @property
    def action_shape(self) -> tuple[int, ...]:
        return self.spec.action_shape

    @property
    def action_dtype(self) -> np.dtype:
        return self.spec.action_dtype

    @property
    def action_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(low, high)`` float32 arrays of shape ``[action_size]``; ``None`` if discrete."""
        if self.spec.action_low is None or self.spec.action_high is None:
            return None
        return (
            np.asarray(self.spec.action_low, np.float32),
            np.asarray(self.spec.action_high, np.float32),
        )

    @property
    def has_success(self) -> bool:
        return self.spec.has_success

    @property
    def episode_length(self) -> int | None:
        return self.spec.episode_length

    @property
    def backend(self) -> str:
        return self.spec.backend

    @property
    def env_id(self) -> str:
        return self.spec.env_id


class ParamsEnv(Env):
    """Base of adapters around a gymnax-style env object with a static ``EnvParams``
    (gymnax, xminigrid, Craftax): subclasses set ``self._env`` and ``self._params``."""

    _env: Any
    _params: Any

    @property
    def unwrapped(self):
        return self._env

    @property
    def params(self):
        """The wrapped env's ``EnvParams`` in use (static; closed over by reset/step)."""
        return self._params

    def _discrete_spec(self, env_id: str, num_actions: int, episode_length: int,
                       has_success: bool, backend: str) -> EnvSpec:
        """The spec of a discrete-action env with flat observations (sized by tracing reset)."""
        shapes = jax.eval_shape(self.reset, jax.random.PRNGKey(0))
        return EnvSpec(env_id=env_id, observation_size=int(shapes.obs.shape[0]),
                       action_kind="discrete", action_size=int(num_actions),
                       num_actions=int(num_actions), episode_length=int(episode_length),
                       has_success=has_success, backend=backend)


class Wrapper(Env):
    """Base of all wrappers: forwards ``reset``/``step``/``spec`` and unknown attributes."""

    def __init__(self, env: Env):
        self.env = env

    def reset(self, rng: jax.Array) -> State:
        return self.env.reset(rng)

    def step(self, state: State, action: jax.Array) -> State:
        return self.env.step(state, action)

    @property
    def spec(self) -> EnvSpec:
        return self.env.spec

    @property
    def unwrapped(self) -> BraxEnv:
        return self.env.unwrapped

    def __getattr__(self, name: str) -> Any:
        if name == "env":  # not set yet (e.g. during unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.env, name)


# --------------------------------------------------------------------------------------------
# Pytree helpers shared by the adapters and wrappers.


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def strong_types(tree: Any) -> Any:
    """Turns every leaf into a jax array with a strong (non-weak) dtype.

    Python scalars and weakly typed arrays become arrays of their default dtype, so that the
    state returned by ``reset`` has exactly the types ``step`` returns.
    """

    def fix(x):
        if _is_key(x):
            return x
        x = jnp.asarray(x)
        return x.astype(x.dtype)

    return jax.tree.map(fix, tree)


def cast_like(new: Any, ref: Any, what: str = "state") -> Any:
    """Casts every leaf of ``new`` to the dtype of the matching leaf of ``ref``.

    Used after an underlying simulator's ``step`` so its output has the same avals as its input
    (some simulators return weakly typed or differently typed leaves after a step).
    """
    new_struct, ref_struct = jax.tree.structure(new), jax.tree.structure(ref)
    if new_struct != ref_struct:
        raise ValueError(
            f"the {what} returned by step has a different pytree structure than its input; "
            f"input: {ref_struct}, output: {new_struct}"
        )

    def fix(n, r):
        if _is_key(r):
            return n
        return jnp.asarray(n).astype(jnp.result_type(r))

    return jax.tree.map(fix, new, ref)


def flat_f32(obs: Any) -> jax.Array:
    """Flattens an observation (array or pytree of arrays) into one float32 vector."""
    leaves = jax.tree.leaves(obs)
    return jnp.concatenate([jnp.ravel(jnp.asarray(x, jnp.float32)) for x in leaves])


def scalar_f32(x: Any) -> jax.Array:
    return jnp.reshape(jnp.asarray(x, jnp.float32), ())
