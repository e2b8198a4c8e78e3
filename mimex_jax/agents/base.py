"""The agent interface and the agent registry.

An :class:`Agent` is three pure functions over pytrees, in the style of
:class:`~mimex_jax.rewards.IntrinsicReward`::

    state = agent.init(key, obs)                          # params, targets, optimiser states
    action = agent.act(params, obs, key, step, deterministic)
    state, metrics = agent.update(state, batch, key, step, lr)

What ``batch`` holds is the agent's business: PPO takes the rollout, DrQ-v2 a batch sampled
from its replay buffer. The trainer of each agent (``make_train`` for PPO,
:func:`mimex_jax.agents.drqv2.train.build` for DrQ-v2) fuses ``act``, the environment, the
intrinsic reward and ``update`` into ONE compiled ``update_step`` and returns the same
``Built(init, update_step, train, env, stages)``, so the loop, checkpoints, sweeps, mesh
and CLI serve every agent without knowing which one runs.

The registry maps ``train.agent`` to an :class:`AgentDef`: how to validate the static
config, how many environment steps one iteration takes, how to build the fused trainer and
how to act greedily for evaluation. Entries are imported lazily (``"module:attribute"``)
so that this module imports nothing from the trainer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Agent", "AgentDef", "agent_names", "get_agent", "register_agent"]


class Agent(NamedTuple):
    """``init(key, obs) -> state``; ``act(params, obs, key, step, deterministic) -> action``;
    ``update(state, batch, key, step, lr) -> (state, metrics)``."""

    init: Callable[..., Any]
    act: Callable[..., Any]
    update: Callable[..., tuple[Any, dict]]


class AgentDef(NamedTuple):
    """What the trainer, loop and evaluation need to know about one agent.

    Attributes:
      validate: ``validate(cfg)`` raises ``ValueError`` naming the field for an invalid
        static config of this agent (run in ``TrainConfig.__post_init__``).
      steps_per_iteration: ``steps_per_iteration(cfg)``: environment steps (over all envs)
        one ``update_step`` takes.
      build: ``build(cfg) -> Built`` (the fused trainer).
      make_policy: ``make_policy(cfg, env) -> policy(state_params, obs_stats, obs, key,
        deterministic) -> action`` for evaluation (``state.params`` and ``state.obs_stats``
        of the agent's train state).
    """

    validate: Callable[[Any], None]
    steps_per_iteration: Callable[[Any], int]
    build: Callable[[Any], Any]
    make_policy: Callable[[Any, Any], Callable[..., Any]]


_REGISTRY: dict[str, str | AgentDef] = {
    "ppo": "mimex_jax.trainer:PPO_AGENT",
    "drqv2": "mimex_jax.agents.drqv2.train:DRQV2_AGENT",
}


def register_agent(name: str, agent: str | AgentDef) -> None:
    """Add (or replace) an agent: an :class:`AgentDef` or a lazy ``"module:attribute"``."""
    _REGISTRY[name] = agent


def agent_names() -> tuple[str, ...]:
    """The names ``train.agent`` accepts."""
    return tuple(_REGISTRY)


def get_agent(name: str) -> AgentDef:
    """The :class:`AgentDef` registered as ``name`` (imported on first use)."""
    if name not in _REGISTRY:
        raise ValueError(f"agent={name!r} is invalid; allowed: {list(_REGISTRY)}")
    entry = _REGISTRY[name]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
        _REGISTRY[name] = entry
    return entry
