"""DrQ-v2 (Yarats et al. 2021) with intrinsic rewards on replayed sequences, as the
original ``mimex-dmc``: networks, replay buffer, agent and the fused trainer."""

from mimex_jax.agents.drqv2.agent import AgentState, Batch, make_drqv2, soft_update
from mimex_jax.agents.drqv2.config import DrQV2Config, parse_schedule
from mimex_jax.agents.drqv2.replay import Replay, Sample

__all__ = ["AgentState", "Batch", "DrQV2Config", "Replay", "Sample", "make_drqv2",
           "parse_schedule", "soft_update"]
