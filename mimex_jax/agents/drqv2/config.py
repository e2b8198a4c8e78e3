"""Static configuration of DrQ-v2 (``train.drqv2``), validated before anything compiles."""

from __future__ import annotations

import dataclasses
import re

from mimex_jax.agents.drqv2.replay import SEQ_TYPES
from mimex_jax.rewards.base import require

BONUS_FEATURES = ("encoder", "actor_trunk")
_LINEAR = re.compile(r"^\s*linear\(\s*([^,]+),\s*([^,]+),\s*([^,)]+)\)\s*$")


def parse_schedule(text: str) -> tuple[float, float, float]:
    """``"linear(init, final, duration)"`` or ``"<constant>"`` -> ``(init, final, duration)``.

    The original's ``utils.schedule``: ``mix = clip(step / duration, 0, 1)``, value
    ``(1 - mix) * init + mix * final``. A constant is ``(c, c, 1)``.
    """
    m = _LINEAR.match(text)
    try:
        if m:
            init, final, duration = (float(g) for g in m.groups())
        else:
            init = final = float(text)
            duration = 1.0
    except ValueError:
        raise ValueError(f"stddev_schedule={text!r} is invalid; allowed: a number or "
                         "'linear(init, final, duration)'") from None
    require("stddev_schedule", text, init >= 0 and final >= 0 and duration > 0,
            "stddevs >= 0 and a duration > 0")
    return init, final, duration


@dataclasses.dataclass(frozen=True)
class DrQV2Config:
    """DrQ-v2 settings. Defaults: the original's ``cfgs/agent/drqv2.yaml`` and the upstream
    DrQ-v2 ``nstep: 3`` / ``batch_size: 256`` (mimex-dmc's own ``cfgs/config.yaml`` sets
    ``nstep: 1``, ``batch_size: 1024``; ``configs/agents/drqv2.yaml`` uses those).

    Step counts (``num_expl_steps``, ``num_seed_steps``, the schedule's duration) count
    environment steps over ALL envs, i.e. transitions collected, so one env reproduces the
    original's ``global_step``. One iteration (``update_step``) steps every env
    ``update_every_steps`` times (``num_envs * update_every_steps`` transitions into the
    buffer), then makes ``updates_per_step`` agent updates; with one env that is the
    original's one update every ``update_every_steps`` steps.

    Attributes:
      batch_size: transitions per agent update.
      nstep: n of the n-step returns.
      update_every_steps: batched env steps between agent updates.
      updates_per_step: agent updates per iteration.
      num_expl_steps: uniform random actions while fewer env steps were collected.
      num_seed_steps: no agent update while fewer env steps were collected (the
        original's ``num_seed_frames / action_repeat`` = 4000 / 2).
      hidden_dim, feature_dim: actor/critic MLP width and trunk width.
      stddev_schedule: exploration noise of the actor, ``linear(init, final, duration)``.
      stddev_clip: clip of the target-policy and actor-loss noise.
      critic_target_tau: soft update rate of the target critic.
      buffer_size: replay capacity in transitions over all envs (``buffer_size //
        num_envs`` slots per env).
      aug_pad: random-shift padding in pixels (image observations only).
      state_hidden: hidden widths of an MLP encoder for state observations; ``()`` feeds
        the state to the actor/critic trunks directly (upstream DrQ-v2's state variant).
      seq_type: which T observations the bonus scores (the original's ``seq_type``):
        ``pad2`` = the T ending at the transition's ``obs``, ``pad`` = the T ending at the
        observation after it, both left-padded with zeros at the episode start; ``full2``
        / ``full`` = the same, but moved to the episode's first T observations instead of
        padding (:mod:`mimex_jax.agents.drqv2.replay`).
      ema_tau: the bonus's encoder (the original's ``use_ema_encoder`` / ``ema_tau``):
        ``1.0`` (default) encodes the bonus's observations with the current encoder; below
        1 with an exponential moving average of it, kept in the train state, initialised
        to the encoder and updated ``ema <- tau * encoder + (1 - tau) * ema`` right before
        each bonus update (as the original's ``get_seq_expl_r``).
      bonus_features: what the bonus sees of an observation (the original's
        ``use_actor_feat``): ``"encoder"`` (default) the encoder output, ``"actor_trunk"``
        the actor's trunk (Linear, LayerNorm, tanh) on it, ``feature_dim`` wide; both
        detached.
    """

    batch_size: int = 256
    nstep: int = 3
    update_every_steps: int = 2
    updates_per_step: int = 1
    num_expl_steps: int = 2000
    num_seed_steps: int = 2000
    hidden_dim: int = 1024
    feature_dim: int = 50
    stddev_schedule: str = "linear(1.0,0.1,500000)"
    stddev_clip: float = 0.3
    critic_target_tau: float = 0.01
    buffer_size: int = 1_000_000
    aug_pad: int = 4
    state_hidden: tuple[int, ...] = ()
    seq_type: str = "pad2"
    ema_tau: float = 1.0
    bonus_features: str = "encoder"

    def __post_init__(self) -> None:
        for f in ("batch_size", "nstep", "update_every_steps", "updates_per_step",
                  "hidden_dim", "feature_dim", "buffer_size"):
            v = getattr(self, f)
            require(f, v, isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                    "an integer >= 1")
        for f in ("num_expl_steps", "num_seed_steps", "aug_pad"):
            v = getattr(self, f)
            require(f, v, isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                    "an integer >= 0")
        require("stddev_clip", self.stddev_clip,
                isinstance(self.stddev_clip, (int, float)) and self.stddev_clip > 0, "> 0")
        require("critic_target_tau", self.critic_target_tau,
                isinstance(self.critic_target_tau, (int, float))
                and 0 < self.critic_target_tau <= 1, "in (0, 1]")
        require("seq_type", self.seq_type, self.seq_type in SEQ_TYPES, str(SEQ_TYPES))
        require("ema_tau", self.ema_tau, isinstance(self.ema_tau, (int, float))
                and not isinstance(self.ema_tau, bool) and 0 < self.ema_tau <= 1, "in (0, 1]")
        require("bonus_features", self.bonus_features,
                self.bonus_features in BONUS_FEATURES, str(BONUS_FEATURES))
        require("state_hidden", self.state_hidden, all(
            isinstance(w, int) and w >= 1 for w in self.state_hidden),
            "a list of integers >= 1 (empty: no state encoder)")
        require("stddev_schedule", self.stddev_schedule, isinstance(self.stddev_schedule, str),
                "a string")
        parse_schedule(self.stddev_schedule)

    def slots_per_env(self, num_envs: int) -> int:
        """Ring slots per env: ``buffer_size // num_envs``."""
        return self.buffer_size // num_envs
