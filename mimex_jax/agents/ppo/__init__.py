"""PPO: actor-critic networks, GAE and the clipped-surrogate loss as pure functions."""

from mimex_jax.agents.ppo.losses import PPOLossConfig, gae, ppo_loss
from mimex_jax.agents.ppo.networks import (
    ActorCritic,
    Distribution,
    PixelActorCritic,
    make_distribution,
)

__all__ = ["ActorCritic", "Distribution", "PPOLossConfig", "PixelActorCritic", "gae",
           "make_distribution", "ppo_loss"]
