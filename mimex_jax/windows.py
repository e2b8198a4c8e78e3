"""Per-environment rolling windows of observation embeddings (the sequences MIMEx scores).

A window is ``[num_envs, T, D]``, newest embedding last. At every step the embedding of
the observation the step produced is pushed; the sequence that results is the one the
transition is scored on. After an episode ends the window restarts from zeros with only
the new episode's first observation in it, so no sequence ever mixes two episodes.

(The original Isaac Gym code clears its buffer after the step on which ``done`` is
reported, and Isaac Gym's reset itself arrives one step late, so the first sequence of
a new episode there can still end with the previous episode's final observation.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def push(window: jax.Array, emb: jax.Array) -> jax.Array:
    """Shift left by one and append ``emb`` ``[N, D]`` as the newest entry."""
    return jnp.concatenate([window[:, 1:], emb[:, None].astype(window.dtype)], axis=1)


def start(emb: jax.Array, seq_len: int) -> jax.Array:
    """A fresh window ``[N, T, D]``: zeros, then ``emb`` as the newest entry."""
    zeros = jnp.zeros((emb.shape[0], seq_len, emb.shape[-1]), emb.dtype)
    return push(zeros, emb)


def step(window: jax.Array, emb_next: jax.Array, emb_reset: jax.Array, done: jax.Array
         ) -> tuple[jax.Array, jax.Array]:
    """One environment step.

    Args:
      window: ``[N, T, D]`` before the step.
      emb_next: embedding of the observation the step produced (for a finished episode,
        its terminal observation).
      emb_reset: embedding of the observation the env holds after the step (the new
        episode's first observation where ``done``).
      done: ``[N]``.
    Returns:
      ``(seq, new_window)``: the sequence this transition is scored on, and the window
      carried to the next step.
    """
    seq = push(window, emb_next)
    fresh = start(emb_reset, window.shape[1])
    new_window = jnp.where(done[:, None, None] > 0.5, fresh, seq)
    return seq, new_window
