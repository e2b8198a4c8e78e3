"""Neural-network building blocks shared by the reward models and the agent."""

from mimex_jax.nn.dense import Dense, linear
from mimex_jax.nn.transformer import Attention, Block, Mlp, gelu, sinusoidal_table

__all__ = ["Attention", "Block", "Dense", "Mlp", "gelu", "linear", "sinusoidal_table"]
