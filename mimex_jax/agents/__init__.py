"""RL agents that consume intrinsic rewards (PPO)."""
