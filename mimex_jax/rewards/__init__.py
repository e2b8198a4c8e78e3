"""Intrinsic rewards: one interface (``init``, ``reward``, ``update``), many bonuses.

Constructors: :func:`mimex`, :func:`rnd`, :func:`icm`, :func:`running_mean`,
:func:`none`; :func:`normalize_rewards` wraps any of them. :mod:`.registry` names them
for the trainer and configs; :func:`register` adds your own.
"""

from mimex_jax.rewards import registry  # noqa: E402,I001  (registers the built-ins)
from mimex_jax.rewards.base import (
    IntrinsicReward,
    Metrics,
    RewardBatch,
    none,
)
from mimex_jax.rewards.icm import ICMConfig, ICMState, icm, icm_reward
from mimex_jax.rewards.mimex import (
    MaskedSequenceModel,
    MIMExConfig,
    MIMExState,
    mimex,
    mimex_apply,
    mimex_loss,
)
from mimex_jax.rewards.mimex import init_params as init_mimex_params
from mimex_jax.rewards.normalize import normalize_rewards
from mimex_jax.rewards.registry import BonusContext, BonusSpec, register
from mimex_jax.rewards.rnd import RNDConfig, RNDState, rnd, rnd_reward
from mimex_jax.rewards.running_mean import RunningMeanConfig, running_mean

__all__ = [
    "BonusContext", "BonusSpec", "register", "registry",
    "ICMConfig", "ICMState", "IntrinsicReward", "MIMExConfig", "MIMExState",
    "MaskedSequenceModel", "Metrics", "RNDConfig", "RNDState", "RewardBatch",
    "RunningMeanConfig", "icm", "icm_reward", "init_mimex_params", "mimex", "mimex_apply",
    "mimex_loss", "none", "normalize_rewards", "rnd", "rnd_reward", "running_mean",
]
