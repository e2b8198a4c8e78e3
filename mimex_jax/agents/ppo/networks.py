"""Actor-critic networks for PPO, following the original MIMEx/MVP agent.

Separate actor and critic MLPs (default 256-128-64, SELU), orthogonal weights with gain
sqrt(2) on hidden layers, 0.01 on the policy head and 1.0 on the value head, zero biases.
Continuous actions: a Gaussian with state-independent learned log-std. Discrete actions:
a categorical over logits. An optional second value head serves a separate intrinsic
value function.

(The original builds its Gaussian with ``scale_tril=diag(std**2)``, i.e. an effective
standard deviation of ``std**2``; here ``exp(log_std)`` is the standard deviation.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mimex_jax.envs.pixels import FROZEN_ENCODERS
from mimex_jax.nn.encoders import make_encoder
from mimex_jax.nn.init import orthogonal

_ACTIVATIONS = {"selu": nn.selu, "elu": nn.elu, "tanh": nn.tanh, "relu": nn.relu,
                "silu": nn.silu}


def activation(name: str):
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation={name!r} is invalid; allowed: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


class Distribution(NamedTuple):
    """Policy distribution parameters: ``(mean, log_std)`` or ``(logits, None)``."""

    loc: jax.Array
    log_std: jax.Array | None

    @property
    def discrete(self) -> bool:
        return self.log_std is None

    def sample(self, key: jax.Array) -> jax.Array:
        if self.discrete:
            return jax.random.categorical(key, self.loc, axis=-1)
        noise = jax.random.normal(key, self.loc.shape, self.loc.dtype)
        return self.loc + jnp.exp(self.log_std) * noise

    def mode(self) -> jax.Array:
        return jnp.argmax(self.loc, axis=-1) if self.discrete else self.loc

    def log_prob(self, action: jax.Array) -> jax.Array:
        if self.discrete:
            logp = jax.nn.log_softmax(self.loc, axis=-1)
            return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), -1)[..., 0]
        z = (action - self.loc) * jnp.exp(-self.log_std)
        per_dim = -0.5 * jnp.square(z) - self.log_std - 0.5 * math.log(2 * math.pi)
        return jnp.sum(per_dim, axis=-1)

    def entropy(self) -> jax.Array:
        if self.discrete:
            logp = jax.nn.log_softmax(self.loc, axis=-1)
            return -jnp.sum(jnp.exp(logp) * logp, axis=-1)
        per_dim = self.log_std + 0.5 * (1.0 + math.log(2 * math.pi))
        return jnp.broadcast_to(jnp.sum(per_dim, axis=-1), self.loc.shape[:-1])


def make_distribution(out: jax.Array, log_std: jax.Array | None) -> Distribution:
    return Distribution(out, None if log_std is None else jnp.broadcast_to(log_std, out.shape))


class _MLP(nn.Module):
    hidden: Sequence[int]
    out: int
    act: str
    out_gain: float

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        f = activation(self.act)
        for i, h in enumerate(self.hidden):
            x = f(nn.Dense(h, kernel_init=orthogonal(math.sqrt(2.0)),
                           name=f"hidden_{i}")(x))
        y = nn.Dense(self.out, kernel_init=orthogonal(self.out_gain),
                     name="head")(x)
        return y, x


class ActorCritic(nn.Module):
    """``__call__(obs) -> (Distribution params, value [B], intrinsic value [B] or None,
    actor torso features [B, hidden[-1]])``."""

    action_dim: int
    discrete: bool = False
    actor_hidden: Sequence[int] = (256, 128, 64)
    critic_hidden: Sequence[int] = (256, 128, 64)
    act: str = "selu"
    init_log_std: float = 0.0
    intrinsic_value_head: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array, critic_obs: jax.Array | None = None):
        """``critic_obs`` (default ``obs``): a separate input for the critic."""
        out, torso = _MLP(self.actor_hidden, self.action_dim, self.act, 0.01, name="actor")(obs)
        n_values = 2 if self.intrinsic_value_head else 1
        v, _ = _MLP(self.critic_hidden, n_values, self.act, 1.0, name="critic")(
            obs if critic_obs is None else critic_obs)
        log_std = None
        if not self.discrete:
            log_std = self.param("log_std", nn.initializers.constant(self.init_log_std),
                                 (self.action_dim,))
        v_int = v[..., 1] if self.intrinsic_value_head else None
        return make_distribution(out, log_std), v[..., 0], v_int, torso


class PixelActorCritic(nn.Module):
    """:class:`ActorCritic` over images: encoder -> trunk -> actor and critic MLPs.

    ``obs`` is ``uint8 [B, H, W, C]`` or ``{"pixels": ..., "proprio": [B, P]}``. The encoder
    (``"conv"``: DrQ-v2's, learned through the PPO loss; ``"random_conv"``, ``"vit"``: frozen)
    is followed by DrQ-v2's trunk (Dense ``feature_dim``, LayerNorm, tanh); proprioception is
    concatenated after the trunk. With ``shared_encoder`` (default) actor and critic share
    encoder and trunk; without it the critic has its own trunk and, for a learned encoder,
    its own encoder (``critic_encoder``, ``critic_trunk``: Brax's vision-PPO layout), so the
    value loss does not shape the actor's features. The fourth output is the actor's
    last hidden layer (``torso_output="actor"``) or the actor's trunk features (``"encoder"``).
    ``obs`` may also be ``{"features": ..., ["proprio": ...]}``: the encoder's output,
    computed before (a frozen encoder's features stored in the rollout); the encoder is then
    skipped.
    """

    action_dim: int
    discrete: bool = False
    actor_hidden: Sequence[int] = (256, 128, 64)
    critic_hidden: Sequence[int] = (256, 128, 64)
    act: str = "selu"
    init_log_std: float = 0.0
    intrinsic_value_head: bool = False
    encoder: str = "conv"
    encoder_kwargs: tuple[tuple[str, Any], ...] = ()
    feature_dim: int = 50
    torso_output: str = "actor"
    shared_encoder: bool = True

    def _trunk(self, h: jax.Array, proprio: jax.Array | None, name: str) -> tuple:
        h = nn.Dense(self.feature_dim, kernel_init=orthogonal(1.0), name=name)(h)
        feat = nn.tanh(nn.LayerNorm(name=f"{name}_norm")(h))
        return feat, feat if proprio is None else jnp.concatenate([feat, proprio], axis=-1)

    @nn.compact
    def __call__(self, obs):
        proprio = obs.get("proprio") if isinstance(obs, dict) else None
        if isinstance(obs, dict) and "features" in obs:
            h = h_critic = obs["features"]
        else:
            pixels = obs["pixels"] if isinstance(obs, dict) else obs
            h = h_critic = make_encoder(self.encoder, name="encoder",
                                        **dict(self.encoder_kwargs))(pixels)
            if not self.shared_encoder and self.encoder not in FROZEN_ENCODERS:
                h_critic = make_encoder(self.encoder, name="critic_encoder",
                                        **dict(self.encoder_kwargs))(pixels)
        feat, x = self._trunk(h, proprio, "trunk")
        x_critic = None if self.shared_encoder else self._trunk(h_critic, proprio,
                                                                "critic_trunk")[1]
        dist, v, v_int, torso = ActorCritic(
            self.action_dim, self.discrete, self.actor_hidden, self.critic_hidden, self.act,
            self.init_log_std, self.intrinsic_value_head, name="heads")(x, x_critic)
        return dist, v, v_int, feat if self.torso_output == "encoder" else torso
