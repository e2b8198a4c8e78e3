"""One place to add an intrinsic reward: a registry that the trainer, config loader, CLI,
sweeps and benchmarks read.

A bonus is registered once with :func:`register` as a :class:`BonusSpec`: a name, the
frozen config dataclass whose fields users may set from YAML (``train.bonus: {...}``),
the fields the trainer fills in itself (widths of the embedding, the action space), and a
``make`` that builds the :class:`~mimex_jax.rewards.IntrinsicReward`. Optional hooks let a
bonus read swept hyperparameters (MIMEx reads ``hparams.mask_ratio``) and size its static
config for a sweep. The built-in bonuses (none, mimex, rnd, icm, running_mean) are
registered at import; a user's own bonus is one :func:`register` call away::

    from mimex_jax.rewards import registry
    registry.register(registry.BonusSpec(
        name="my_bonus", config=MyConfig, derived=("obs_dim",),
        make=lambda ctx, cfg: my_bonus(cfg), config_args=lambda ctx: {"obs_dim": ctx.feature_dim}))

See ``docs/adding_a_bonus.md`` for the whole recipe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from mimex_jax.rewards.base import IntrinsicReward, RewardState


class BonusContext(NamedTuple):
    """What the trainer knows when it builds a bonus: the embedding the bonus sees."""

    seq_len: int        # T of the sequence windows
    feature_dim: int    # width of one embedded observation
    action_dim: int     # action size (continuous) or number of actions (discrete)
    discrete: bool      # discrete actions


@dataclasses.dataclass(frozen=True)
class BonusSpec:
    """How to build one bonus from a :class:`BonusContext` and user settings.

    Attributes:
      name: the value of ``train.reward``.
      config: the frozen dataclass of the bonus's settings, or None if it has none.
      derived: fields of ``config`` that the trainer fills from the context (users may not
        set them); ``config_args(ctx)`` returns their values.
      make: ``(ctx, config_instance_or_None) -> IntrinsicReward``.
      config_args: ``ctx -> {derived field: value}``.
      apply_hparams: ``(state, hparams) -> state``: write swept dynamic hyperparameters
        into the bonus state (default: none).
      size_for_sweep: ``(settings, seq_len, ratios) -> settings``: adjust the static
        settings so one compiled program serves every swept value (default: unchanged).
    """

    name: str
    config: type | None
    make: Callable[[BonusContext, Any], IntrinsicReward]
    derived: tuple[str, ...] = ()
    config_args: Callable[[BonusContext], dict[str, Any]] = lambda ctx: {}
    apply_hparams: Callable[[RewardState, Any], RewardState] | None = None
    size_for_sweep: Callable[[dict[str, Any], int, Sequence[float]], dict[str, Any]] | None \
        = None

    def settable(self) -> list[str]:
        """Field names of ``config`` a user may set (``train.bonus.<name>``)."""
        if self.config is None:
            return []
        return [f.name for f in dataclasses.fields(self.config) if f.name not in self.derived]

    def build_config(self, ctx: BonusContext, settings: Mapping[str, Any]) -> Any:
        """The config instance for ``ctx`` and user ``settings`` (validated by the class)."""
        settings = dict(settings)
        if self.config is None:
            if settings:
                raise ValueError(f"bonus {self.name!r} takes no settings; got "
                                 f"{sorted(settings)}")
            return None
        for key in settings:
            if key in self.derived:
                raise ValueError(f"{key} of bonus {self.name!r} is set by the trainer "
                                 f"(from the embedding / action space); remove it")
            if key not in self.settable():
                raise ValueError(f"{key!r} is not a setting of bonus {self.name!r}; allowed: "
                                 f"{self.settable()}")
        return self.config(**self.config_args(ctx), **settings)

    def build(self, ctx: BonusContext, settings: Mapping[str, Any] = ()) -> IntrinsicReward:
        """The :class:`IntrinsicReward` for ``ctx`` and user ``settings``."""
        return self.make(ctx, self.build_config(ctx, dict(settings)))


_BONUSES: dict[str, BonusSpec] = {}


def register(spec: BonusSpec, *, replace: bool = False) -> BonusSpec:
    """Add ``spec`` under ``spec.name``; refuses to shadow a name unless ``replace``."""
    if not isinstance(spec, BonusSpec):
        raise TypeError(f"register: expected a BonusSpec, got {type(spec).__name__}")
    if spec.name in _BONUSES and not replace:
        raise ValueError(f"bonus {spec.name!r} is already registered (pass replace=True to "
                         "override it)")
    _BONUSES[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered bonus (tests, notebooks)."""
    _BONUSES.pop(name, None)


def get(name: str) -> BonusSpec:
    """The spec registered as ``name``; ValueError listing the registered names otherwise."""
    if name not in _BONUSES:
        raise ValueError(f"reward={name!r} is invalid; allowed: {list(names())}")
    return _BONUSES[name]


def names() -> tuple[str, ...]:
    """Registered bonus names, in registration order."""
    return tuple(_BONUSES)


# ------------------------------------------------------------------------------ built-ins


def _register_builtins() -> None:
    from mimex_jax.rewards.base import none
    from mimex_jax.rewards.icm import ICMConfig, icm
    from mimex_jax.rewards.mimex import MIMExConfig, mimex, size_for_ratios
    from mimex_jax.rewards.rnd import RNDConfig, rnd
    from mimex_jax.rewards.running_mean import RunningMeanConfig, running_mean

    def sequence_args(ctx: BonusContext) -> dict[str, Any]:
        return {"seq_len": ctx.seq_len, "feature_dim": ctx.feature_dim}

    def set_mask_ratio(state: Any, hp: Any) -> Any:
        import jax.numpy as jnp
        return state._replace(mask_ratio=jnp.asarray(hp.mask_ratio, jnp.float32))

    register(BonusSpec("none", None, lambda ctx, cfg: none()))
    register(BonusSpec("mimex", MIMExConfig, lambda ctx, cfg: mimex(cfg),
                       derived=("seq_len", "feature_dim"), config_args=sequence_args,
                       apply_hparams=set_mask_ratio, size_for_sweep=size_for_ratios))
    register(BonusSpec("rnd", RNDConfig, lambda ctx, cfg: rnd(cfg), derived=("obs_dim",),
                       config_args=lambda ctx: {"obs_dim": ctx.feature_dim}))
    register(BonusSpec("icm", ICMConfig, lambda ctx, cfg: icm(cfg),
                       derived=("obs_dim", "action_dim", "discrete"),
                       config_args=lambda ctx: {"obs_dim": ctx.feature_dim,
                                                "action_dim": ctx.action_dim,
                                                "discrete": ctx.discrete}))
    register(BonusSpec("running_mean", RunningMeanConfig, lambda ctx, cfg: running_mean(cfg),
                       derived=("seq_len", "feature_dim"), config_args=sequence_args))


_register_builtins()
