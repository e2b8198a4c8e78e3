"""Env ids (``suite:name``) and the :func:`make` factory.

Suites:

- ``brax:<name>``: every env in Brax's registry (keyword ``backend``, default
  ``"generalized"``, plus the env's own constructor keywords), and the sparse tasks
  ``brax:reacher_sparse`` / ``brax:pusher_sparse`` (keyword ``radius``), see
  :mod:`mimex_jax.envs.sparse`.
- ``playground:<Name>``: MuJoCo Playground DM Control Suite tasks (``impl="jax"`` by default;
  keywords are config entries), see :mod:`mimex_jax.envs.playground_suite`; Playground's
  Franka Panda tasks ``PandaPickCube``, ``PandaOpenCabinet``, ``PandaRobotiqPushCube`` and
  their sparse-success versions ``playground:PandaPickCubeSparse`` (etc.; keyword
  ``success_threshold``), see :mod:`mimex_jax.envs.manipulation`.
- ``gymnax:<id>``: gymnax envs (keywords: constructor args such as DeepSea's ``size``, and
  ``EnvParams`` fields), see :mod:`mimex_jax.envs.gymnax_suite`.
- ``minigrid:<name>``: MiniGrid tasks of xminigrid (optional extra ``envs``), e.g.
  ``minigrid:DoorKey-8x8``, and MiniGrid's ``KeyCorridorS3R1`` ... ``S6R3`` and
  ``MultiRoom-N2-S4`` / ``-N4-S5`` / ``-N6`` built on its core (keywords ``view_size``,
  ``max_steps``), see :mod:`mimex_jax.envs.minigrid_suite` and
  :mod:`mimex_jax.envs.minigrid_tasks`.
- ``craftax:<name>``: Craftax symbolic envs (optional extra ``envs``), e.g.
  ``craftax:Craftax-Classic-Symbolic-v1`` (keywords: Craftax ``EnvParams`` fields), see
  :mod:`mimex_jax.envs.craftax_suite`.
"""

from __future__ import annotations

from collections.abc import Callable

from mimex_jax.envs.base import Env
from mimex_jax.envs.pixels import ActionRepeat, PixelConfig, PixelObservation
from mimex_jax.envs.wrappers import AutoReset, ClipAction, EpisodeStats, EpisodeTimeLimit, VecEnv

__all__ = ["SUITES", "list_envs", "make", "make_base"]


def _brax_names() -> list[str]:
    from mimex_jax.envs.brax_suite import brax_env_names
    from mimex_jax.envs.sparse import SPARSE_TASKS

    return sorted([*brax_env_names(), *SPARSE_TASKS])


def _make_brax(name: str, overrides: dict) -> Env:
    from mimex_jax.envs.brax_suite import BraxEnv, brax_env_names
    from mimex_jax.envs.sparse import SPARSE_TASKS

    if name in SPARSE_TASKS:
        return SPARSE_TASKS[name](**overrides)
    if name not in brax_env_names():
        raise ValueError(f"unknown env id 'brax:{name}'; brax envs: {_brax_names()}")
    return BraxEnv(name, **overrides)


def _playground_names() -> list[str]:
    from mimex_jax.envs.playground_suite import playground_env_names

    return playground_env_names()


def _make_playground(name: str, overrides: dict) -> Env:
    from mimex_jax.envs.manipulation import SPARSE_PANDA_TASKS, PandaSparseEnv
    from mimex_jax.envs.playground_suite import PlaygroundEnv

    if name in SPARSE_PANDA_TASKS:
        return PandaSparseEnv(name, **overrides)
    return PlaygroundEnv(name, **overrides)


def _gymnax_names() -> list[str]:
    from mimex_jax.envs.gymnax_suite import gymnax_env_names

    return gymnax_env_names()


def _make_gymnax(name: str, overrides: dict) -> Env:
    from mimex_jax.envs.gymnax_suite import GymnaxEnv

    return GymnaxEnv(name, **overrides)


def _minigrid_names() -> list[str]:
    from mimex_jax.envs.minigrid_suite import minigrid_env_names

    return minigrid_env_names()


def _make_minigrid(name: str, overrides: dict) -> Env:
    from mimex_jax.envs.minigrid_suite import MiniGridEnv

    return MiniGridEnv(name, **overrides)


def _craftax_names() -> list[str]:
    from mimex_jax.envs.craftax_suite import craftax_env_names

    return craftax_env_names()


def _make_craftax(name: str, overrides: dict) -> Env:
    from mimex_jax.envs.craftax_suite import CraftaxEnv

    return CraftaxEnv(name, **overrides)


# suite -> (list names, make adapter from (name, overrides)); adapters import lazily.
_SUITES: dict[str, tuple[Callable[[], list[str]], Callable[[str, dict], Env]]] = {
    "brax": (_brax_names, _make_brax),
    "playground": (_playground_names, _make_playground),
    "gymnax": (_gymnax_names, _make_gymnax),
    "minigrid": (_minigrid_names, _make_minigrid),
    "craftax": (_craftax_names, _make_craftax),
}
SUITES = tuple(_SUITES)

# Suites whose adapter enforces its own time limit (``episode_length`` -> env parameter).
_EPISODE_LENGTH_KEY = {"gymnax": "max_steps_in_episode", "playground": "episode_length",
                       "minigrid": "max_steps", "craftax": "max_timesteps"}
# Suites whose adapter ends episodes at that limit itself (no EpisodeTimeLimit on top).
_SELF_LIMITED = frozenset({"gymnax", "minigrid", "craftax"})


def _parse(env_id: str) -> tuple[str, str]:
    if not isinstance(env_id, str) or ":" not in env_id:
        raise ValueError(
            f"env id must read 'suite:name', got {env_id!r}; suites: {list(SUITES)} "
            "(see mimex_jax.envs.list_envs())"
        )
    suite, name = env_id.split(":", 1)
    if suite not in _SUITES:
        raise ValueError(f"unknown env suite {suite!r} in {env_id!r}; suites: {list(SUITES)}")
    return suite, name


def list_envs(suite: str | None = None) -> list[str]:
    """All env ids of one suite, or of every suite whose package imports."""
    if suite is not None:
        if suite not in _SUITES:
            raise ValueError(f"unknown env suite {suite!r}; suites: {list(SUITES)}")
        return [f"{suite}:{n}" for n in _SUITES[suite][0]()]
    ids = []
    for s in SUITES:
        try:
            ids += list_envs(s)
        except ImportError:
            continue
    return ids


def make_base(env_id: str, **overrides) -> Env:
    """The bare suite adapter for ``env_id`` (no time limit, stats, auto-reset or batching)."""
    suite, name = _parse(env_id)
    return _SUITES[suite][1](name, dict(overrides))


def make(
    env_id: str,
    *,
    num_envs: int | None = None,
    episode_length: int | None = None,
    auto_reset: bool = True,
    clip_actions: bool = True,
    pixels: PixelConfig | None = None,
    action_repeat: int | None = None,
    **overrides,
) -> Env:
    """Makes the env the trainer uses: adapter -> time limit -> stats -> batch -> auto-reset.

    Args:
      env_id: ``"suite:name"``, e.g. ``"brax:reacher_sparse"``,
        ``"playground:CartpoleSwingupSparse"``, ``"gymnax:DeepSea-bsuite"``.
      num_envs: if given, ``reset(key)`` splits ``key`` and both ``reset`` and ``step`` are
        vmapped over ``num_envs`` envs (:class:`~mimex_jax.envs.wrappers.VecEnv`); ``None``
        gives one unbatched env.
      episode_length: time limit in steps; ``None`` uses the task default
        (``env.spec.episode_length``: Brax 1000, reacher_sparse 50, pusher_sparse 100,
        Playground its config, gymnax its ``max_steps_in_episode``).
      auto_reset: wrap with :class:`~mimex_jax.envs.wrappers.AutoReset`.
      clip_actions: wrap with :class:`~mimex_jax.envs.wrappers.ClipAction`.
      **overrides: suite keywords (Brax constructor keywords incl. ``backend``, sparse
        ``radius``, Playground config entries, gymnax constructor/``EnvParams`` keywords).
        Unknown keywords raise ``ValueError`` listing the allowed ones.
      pixels: render camera images as observations (:mod:`mimex_jax.envs.pixels`; needs
        ``num_envs``): action repeat inside the time limit (``episode_length`` then counts
        agent steps; the default is the task's length divided by the repeat), frames
        rendered for the whole batch after ``VecEnv``.
      action_repeat: physics steps per agent step (rewards summed) for state observations,
        e.g. to match a pixel run's dynamics; with ``pixels`` it must be ``None`` or equal
        ``pixels.action_repeat``. As with pixels, ``episode_length`` then counts agent steps.

    Returns:
      An :class:`~mimex_jax.envs.base.Env`; ``env.spec`` describes one env.
    """
    suite, _ = _parse(env_id)
    if action_repeat is not None and (isinstance(action_repeat, bool)
                                      or not isinstance(action_repeat, int) or action_repeat < 1):
        raise ValueError(f"action_repeat={action_repeat!r} is invalid; allowed: an integer >= 1")
    if pixels is not None:
        if action_repeat not in (None, pixels.action_repeat):
            raise ValueError(f"action_repeat={action_repeat} conflicts with "
                             f"pixels.action_repeat={pixels.action_repeat}")
        action_repeat = pixels.action_repeat
    key = _EPISODE_LENGTH_KEY.get(suite)
    if episode_length is not None and key is not None:
        if key in overrides and overrides[key] != episode_length:
            raise ValueError(
                f"episode_length={episode_length} conflicts with {key}={overrides[key]}"
            )
        overrides[key] = int(episode_length)
    if pixels is not None and num_envs is None:
        raise ValueError("pixel observations need num_envs (the renderer is batched)")
    env = make_base(env_id, **overrides)
    if action_repeat is not None and action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    if suite not in _SELF_LIMITED:
        length = env.spec.episode_length if episode_length is None else episode_length
        if length is not None:
            env = EpisodeTimeLimit(env, length)
    env = EpisodeStats(env)
    if clip_actions:
        env = ClipAction(env)
    if num_envs is not None:
        env = VecEnv(env, num_envs)
    if pixels is not None:
        env = PixelObservation(env, pixels)
    if auto_reset:  # outside VecEnv: one reset per batch step, only when some env is done
        env = AutoReset(env)
    return env
