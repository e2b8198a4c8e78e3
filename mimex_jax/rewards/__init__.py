"""Intrinsic rewards: one interface (``init``, ``reward``, ``update``), many bonuses.

Constructors: :func:`mimex`, :func:`rnd`, :func:`icm`, :func:`running_mean`,
:func:`none`; :func:`normalize_rewards` wraps any of them.
"""

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
from mimex_jax.rewards.rnd import RNDConfig, RNDState, rnd, rnd_reward
from mimex_jax.rewards.running_mean import RunningMeanConfig, running_mean

__all__ = [
    "ICMConfig", "ICMState", "IntrinsicReward", "MIMExConfig", "MIMExState",
    "MaskedSequenceModel", "Metrics", "RNDConfig", "RNDState", "RewardBatch",
    "RunningMeanConfig", "icm", "icm_reward", "init_mimex_params", "mimex", "mimex_apply",
    "mimex_loss", "none", "normalize_rewards", "rnd", "rnd_reward", "running_mean",
]
