"""Adapter for Brax's registered environments (``brax:<name>``).

Backend: ``"generalized"`` by default. Measured on a 2-core CPU (jax 0.10.2, brax 0.14.2, 64
envs, random actions, steps/s): reacher generalized 21k / positional 38k / spring 66k / mjx 35k;
pusher generalized 1.3k / positional 0.5k / spring 1.8k / mjx 15 (sic, 16 envs);
halfcheetah generalized 3.2k / spring 8.1k / mjx 1.1k. ``"spring"`` is faster but is a cruder
physics approximation (and Brax retunes some envs for it), ``"mjx"`` is far slower on CPU for
contact-rich envs, so the default stays Brax's own default, ``"generalized"``; pass
``backend="spring"`` to trade fidelity for speed.
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp

from mimex_jax.envs.base import Env, EnvSpec, State, cast_like, flat_f32, strong_types

__all__ = ["BRAX_BACKENDS", "BraxEnv", "brax_env_names", "brax_keywords"]

BRAX_BACKENDS = ("generalized", "positional", "spring", "mjx")
DEFAULT_BACKEND = "generalized"
DEFAULT_EPISODE_LENGTH = 1000  # Brax's own training default


# Brax envs whose physics calls ``jnp.clip(..., a_min=...)`` (removed in recent JAX).
_NEEDS_CLIP_A_MIN = frozenset({"swimmer"})


def _jnp_clip_has_a_min() -> bool:
    return "a_min" in inspect.signature(jnp.clip).parameters


def _registry() -> dict:
    import brax.envs

    # brax exposes no public listing; its registry dict is ``brax.envs._envs``.
    return dict(brax.envs._envs)


def brax_env_names() -> list[str]:
    return sorted(_registry())


def brax_keywords(name: str) -> list[str]:
    """Constructor keywords accepted by the Brax env ``name`` (``backend`` included)."""
    from brax.envs.base import PipelineEnv

    cls = _registry()[name]
    params = inspect.signature(cls.__init__).parameters
    names = {
        p.name
        for p in params.values()
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if takes_kwargs and issubclass(cls, PipelineEnv):
        names |= {"backend", "n_frames", "debug"}
    return sorted(names)


class BraxEnv(Env):
    """A Brax env behind the :class:`~mimex_jax.envs.base.Env` interface.

    The Brax state passes through unchanged except that ``obs`` becomes float32,
    ``info["truncation"]`` (always 0.0, Brax envs only terminate) is added, and every leaf keeps
    the dtype it had at reset. Actions are float32 vectors in [-1, 1].
    """

    default_episode_length: int = DEFAULT_EPISODE_LENGTH

    def __init__(self, name: str, *, env_id: str | None = None, **kwargs):
        registry = _registry()
        if name not in registry:
            raise ValueError(
                f"unknown Brax env {name!r}; registered Brax envs: {sorted(registry)}"
            )
        allowed = brax_keywords(name)
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown keyword(s) {unknown} for brax:{name}; allowed: {allowed}"
            )
        kwargs.setdefault("backend", DEFAULT_BACKEND)
        if "backend" in allowed and kwargs["backend"] not in BRAX_BACKENDS:
            raise ValueError(
                f"backend={kwargs['backend']!r} for brax:{name}; allowed: {list(BRAX_BACKENDS)}"
            )
        if "backend" not in allowed:
            kwargs.pop("backend")
        if name in _NEEDS_CLIP_A_MIN and not _jnp_clip_has_a_min():
            raise NotImplementedError(
                f"brax:{name} cannot run with this JAX: Brax's fluid model (brax/fluid.py, used "
                f"by {sorted(_NEEDS_CLIP_A_MIN)} and only available on the 'generalized' "
                "backend) calls jnp.clip(a_min=...), which JAX removed (jax "
                f"{jax.__version__}). Use an older JAX or a fixed Brax release."
            )
        self._name = name
        self._env_id = env_id or f"brax:{name}"
        self._backend_name = kwargs.get("backend", "n/a")
        self._env = registry[name](**kwargs)

    @property
    def unwrapped(self):
        return self._env

    def reset(self, rng: jax.Array) -> State:
        state = self._env.reset(rng)
        state = state.replace(
            obs=flat_f32(state.obs),
            reward=jnp.asarray(state.reward, jnp.float32),
            done=jnp.asarray(state.done, jnp.float32),
            metrics=dict(state.metrics),
            info={**state.info, "truncation": jnp.zeros((), jnp.float32)},
        )
        return strong_types(state)

    def step(self, state: State, action: jax.Array) -> State:
        inner_info = {k: v for k, v in state.info.items() if k != "truncation"}
        # Brax envs update ``state.metrics`` in place: hand them copies of the dicts. They also
        # carry ``done`` over from the input state unless they terminate: start from 0.
        inner = state.replace(
            metrics=dict(state.metrics), info=inner_info, done=jnp.zeros_like(state.done)
        )
        nstate = self._env.step(inner, jnp.asarray(action, jnp.float32))
        nstate = nstate.replace(
            obs=flat_f32(nstate.obs),
            info={**nstate.info, "truncation": jnp.zeros((), jnp.float32)},
        )
        return cast_like(nstate, state, f"state of brax:{self._name}")

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
            episode_length=self.default_episode_length,
            has_success="success" in shapes.metrics,
            backend=self._backend_name,
        )
