"""Neural-network building blocks shared by the reward models and the agent."""

from mimex_jax.nn.transformer import Attention, Block, Mlp, sinusoidal_table

__all__ = ["Attention", "Block", "Mlp", "sinusoidal_table"]
