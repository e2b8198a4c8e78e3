"""A replay buffer in device memory, part of the train state: n-step transitions and the
T-step observation sequences MIMEx scores, never crossing an episode boundary.

Layout. Each env owns a ring of ``C`` slots; a slot is one *time step* of that env, as the
original's episode files (``replay_buffer.py``) hold them: the observation, the action
and reward that led to it, the env's discount (0 after a true terminal, 1 otherwise) and
``first`` (the observation starts an episode; its action/reward are zeros, the original's
"dummy first transition"). A transition starting at slot ``j`` is ``(obs[j],
action[j+1], sum of rewards[j+1..j+k], discount, obs[j+k])`` with ``k = n`` or fewer when
the episode ends before (see :func:`sample`). Every observation is stored once (the
terminal observation of an episode and the next episode's first one are two slots), in
its own dtype: ``uint8`` for images. Frame-stacked image observations are stored as the
env returns them (stacked): ``k`` stacked frames cost ``k`` times the memory of storing
single frames (84x84x9 uint8 = 62 KiB per slot; 1M slots = 59 GiB, single frames would
be 20 GiB); storing single frames plus indices is not done here.

Writes. Per env step every env writes the step's slot at its pointer and, speculatively,
the reset observation as a ``first`` slot at the pointer + 1; the pointer advances by 2
where the episode ended, else by 1 (the speculative slot is then overwritten by the next
step). At most ``C - 1`` slots count as written, so the slot at the pointer (the write
frontier) never does.

Sampling. Uniform over all valid transition starts of all envs (``jax.random.choice``
over a validity mask of ``[N, C]``, O(N * C * n) per batch). A start ``j`` is valid when
it is written, at least one step follows it in its episode, and its n-step window is
complete: ``n`` written steps, or fewer ending where the next episode's ``first`` slot
is written. The original never samples the last ``n - 1`` steps of an episode (its
index runs to ``len - n``); here they are sampled with a shorter return that ends at the
episode's last observation (``discount = gamma^k * prod(env discounts)``, so a time limit
bootstraps and a true terminal does not). With ``n = 1`` both agree.

Sequences. For a sampled start ``j`` the T slots ending at ``j`` (``pad2``) or at
``j + 1`` (``pad``), left-padded with zero observations where they would reach into the
previous episode (the original's ``seq_type``). When the ring has overwritten an
episode's start, its oldest surviving steps are padded as if the episode began there.

Why not flashbax: its trajectory buffer samples fixed-length windows uniformly over
start positions with no notion of episode boundaries, so windows that cross an episode
(or start at a terminal observation) would still be drawn and could only be masked, not
rejected, leaving batches with fewer real samples; the validity-weighted sampling above
needs the whole-buffer mask anyway. (flashbax is not installed in this environment and
was not tried on jax 0.10.)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Replay(NamedTuple):
    """Per-env rings ``[N, C, ...]`` plus write pointers and sizes ``[N]``."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    first: jax.Array
    ptr: jax.Array
    size: jax.Array


class Sample(NamedTuple):
    """A batch of n-step transitions (``seq`` is ``[B, T, *obs]``, or None)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array
    seq: jax.Array | None
    steps: jax.Array


def init(obs: jax.Array, action_dim: int, capacity: int) -> Replay:
    """An empty buffer of ``capacity`` slots per env, holding the first observations
    ``obs`` (``[N, *obs_shape]``, from ``env.reset``) as each env's first slot."""
    n = obs.shape[0]
    if capacity < 3:
        raise ValueError(f"capacity={capacity} is invalid; allowed: >= 3 slots per env")
    buf = Replay(
        obs=jnp.zeros((n, capacity) + obs.shape[1:], obs.dtype),
        action=jnp.zeros((n, capacity, action_dim), jnp.float32),
        reward=jnp.zeros((n, capacity), jnp.float32),
        discount=jnp.ones((n, capacity), jnp.float32),
        first=jnp.zeros((n, capacity), bool),
        ptr=jnp.zeros((n,), jnp.int32),
        size=jnp.zeros((n,), jnp.int32),
    )
    rows = jnp.arange(n)
    return buf._replace(obs=buf.obs.at[rows, 0].set(obs), first=buf.first.at[rows, 0].set(True),
                        ptr=jnp.ones((n,), jnp.int32), size=jnp.ones((n,), jnp.int32))


def add(buf: Replay, action: jax.Array, reward: jax.Array, discount: jax.Array,
        next_obs: jax.Array, done: jax.Array, reset_obs: jax.Array) -> Replay:
    """One env step of all ``N`` envs.

    Args:
      action: ``[N, A]`` the actions taken; reward: ``[N]``; discount: ``[N]`` 0 where the
        step reached a true terminal, else 1.
      next_obs: ``[N, *obs]`` the observation each step produced (the terminal one where
        the episode ended); done: ``[N]`` the episode ended (terminal or time limit).
      reset_obs: ``[N, *obs]`` the next episode's first observation where ``done``.
    """
    n, cap = buf.reward.shape
    rows = jnp.arange(n)
    p, q = buf.ptr, (buf.ptr + 1) % cap
    ended = done > 0.5
    obs = buf.obs.at[rows, p].set(next_obs.astype(buf.obs.dtype))
    obs = obs.at[rows, q].set(reset_obs.astype(buf.obs.dtype))
    return Replay(
        obs=obs,
        action=buf.action.at[rows, p].set(action).at[rows, q].set(0.0),
        reward=buf.reward.at[rows, p].set(reward).at[rows, q].set(0.0),
        discount=buf.discount.at[rows, p].set(discount).at[rows, q].set(1.0),
        first=buf.first.at[rows, p].set(False).at[rows, q].set(True),
        ptr=(p + 1 + ended) % cap,
        size=jnp.minimum(buf.size + 1 + ended, cap - 1),
    )


def _written(buf: Replay) -> jax.Array:
    """``[N, C]``: the slot holds data of the current ring (not the frontier)."""
    cap = buf.reward.shape[1]
    age = (buf.ptr[:, None] - 1 - jnp.arange(cap)[None]) % cap
    return age < buf.size[:, None]


def _forward(first: jax.Array, written: jax.Array, nstep: int) -> tuple[jax.Array, jax.Array]:
    """``alive [..., n]`` (step i+1 after the start is in its episode and written) and
    ``ended [...]`` (the episode ends inside the window: a written ``first`` reached).
    ``first``/``written``: ``[..., n + 1]`` for the start and the ``n`` slots after it."""
    alive, ended = [], jnp.zeros(first.shape[:-1], bool)
    a = jnp.ones(first.shape[:-1], bool)
    for i in range(1, nstep + 1):
        ended = ended | (a & written[..., i] & first[..., i])
        a = a & written[..., i] & ~first[..., i]
        alive.append(a)
    return jnp.stack(alive, -1), ended


def valid_starts(buf: Replay, nstep: int) -> jax.Array:
    """``[N, C]`` bool: slots a transition can start from (see the module doc)."""
    written = _written(buf)
    shift = lambda x: jnp.stack([jnp.roll(x, -i, axis=1) for i in range(nstep + 1)], -1)  # noqa: E731
    alive, ended = _forward(shift(buf.first), shift(written), nstep)
    return written & alive[..., 0] & (alive[..., -1] | ended)


def sample(buf: Replay, key: jax.Array, batch_size: int, nstep: int, gamma: jax.Array,
           seq_len: int = 0, seq_end: int = 0) -> Sample:
    """``batch_size`` n-step transitions, uniform over valid starts (with replacement).

    ``reward = sum_{i<k} gamma^i prod_{m<i} d_m r_{i+1}``, ``discount = gamma^k prod_{i<=k}
    d_i`` over the ``k <= n`` steps left in the episode (``d``: env discounts), as the
    original's loop. With ``seq_len > 0`` also the ``seq_len`` observations ending at
    ``start + seq_end`` (0: ``pad2``, 1: ``pad``), zeros before the episode's start.
    """
    n_env, cap = buf.reward.shape
    valid = valid_starts(buf, nstep).reshape(-1)
    total = jnp.sum(valid)
    p = jnp.where(total > 0, valid / jnp.maximum(total, 1), 1.0 / valid.size)
    flat = jax.random.choice(key, valid.size, (batch_size,), p=p)
    e, j = flat // cap, flat % cap
    written = _written(buf)
    fwd = (j[:, None] + jnp.arange(nstep + 1)[None]) % cap            # [B, n+1]
    alive, _ = _forward(buf.first[e[:, None], fwd], written[e[:, None], fwd], nstep)
    alive = alive.astype(jnp.float32)                                 # [B, n]
    k = jnp.sum(alive, -1).astype(jnp.int32)
    r = buf.reward[e[:, None], fwd[:, 1:]]
    d = buf.discount[e[:, None], fwd[:, 1:]]
    step_disc = jnp.where(alive > 0, d * gamma, 1.0)
    before = jnp.cumprod(jnp.concatenate([jnp.ones((batch_size, 1)), step_disc[:, :-1]], -1),
                         -1)
    reward = jnp.sum(alive * before * r, -1)
    discount = jnp.prod(step_disc, -1)
    seq = None
    if seq_len > 0:
        end = (j + seq_end) % cap
        back = (end[:, None] - jnp.arange(seq_len)[None]) % cap        # [B, T] newest first
        w_b = written[e[:, None], back]
        f_b = buf.first[e[:, None], back]
        # position m is kept iff m and every newer position are written and no first
        # slot lies in (m, end]: the chain stops at the episode start and at the frontier
        ok = jnp.concatenate([w_b[:, :1], w_b[:, 1:] & ~f_b[:, :-1]], -1)
        keep = (jnp.cumprod(ok.astype(jnp.int32), -1) > 0)[:, ::-1]    # oldest first
        obs_seq = buf.obs[e[:, None], back[:, ::-1]]
        shape = keep.shape + (1,) * (obs_seq.ndim - 2)
        seq = jnp.where(keep.reshape(shape), obs_seq, jnp.zeros((), obs_seq.dtype))
    return Sample(obs=buf.obs[e, j], action=buf.action[e, fwd[:, 1]], reward=reward,
                  discount=discount, next_obs=buf.obs[e, (j + k) % cap], seq=seq, steps=k)
