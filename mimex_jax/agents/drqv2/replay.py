"""A replay buffer in device memory, part of the train state: n-step transitions and the
T-step observation sequences MIMEx scores, rebuilt at sample time from frames stored once,
never crossing an episode boundary.

Layout. Each env owns a ring of ``C`` slots; a slot is one *time step* of that env, as the
original's episode files (``replay_buffer.py``) hold them: the newest **frame** of the
observation, the action and reward that led to it, the env's discount (0 after a true
terminal, 1 otherwise) and ``first`` (the observation starts an episode; its
action/reward are zeros, the original's "dummy first transition"). A frame is the last
``1 / frame_stack`` of the observation's channel axis (``[H, W, 3]`` of an ``[H, W, 3k]``
frame-stacked image, oldest frame first as :class:`~mimex_jax.envs.pixels.PixelObservation`
stacks them; the whole vector of a state observation, ``frame_stack = 1``), in the
observation's dtype (``uint8`` for images). Each frame is stored once: a stacked
observation is not stored, it is rebuilt by gathering the ``frame_stack`` frames ending at
its slot, where frames before the episode's ``first`` slot repeat the first frame (as
frame stacking does at reset). 84x84x3 ``uint8`` frames with 3 stacked cost 21 KiB per
slot instead of 62 KiB (``python benchmarks/drqv2.py --only memory``).

A transition starting at slot ``j`` is ``(obs[j], action[j+1], sum of rewards[j+1..j+k],
discount, obs[j+k])`` with ``k = n`` or fewer when the episode ends before (see
:func:`sample`). The terminal observation of an episode and the next episode's first one
are two slots.

Writes. Per env step every env writes the step's slot at its pointer and, speculatively,
the reset frame as a ``first`` slot at the pointer + 1; the pointer advances by 2 where the
episode ended, else by 1 (the speculative slot is then overwritten by the next step). At
most ``C - 1`` slots count as written, so the slot at the pointer (the write frontier)
never does.

Sampling. Uniform over all valid transition starts of all envs (``jax.random.choice`` over
a validity mask of ``[N, C]``, O(N * C * L) per batch for a window of ``L`` slots around
each start, see :func:`window_length`). A start ``j`` is valid when it is written, at least
one step follows it in its episode, its n-step window is complete (``n`` written steps, or
fewer ending where the next episode's ``first`` slot is written) and its frame history is
complete (its ``frame_stack - 1`` predecessors are written, or its episode's ``first`` slot
is among them; once the ring has overwritten an episode's start, its oldest surviving
``frame_stack - 1`` steps cannot be rebuilt and are not sampled). The original never
samples the last ``n - 1`` steps of an episode (its index runs to ``len - n``); here they
are sampled with a shorter return that ends at the episode's last observation (``discount
= gamma^k * prod(env discounts)``, so a time limit bootstraps and a true terminal does
not). With ``n = 1`` both agree.

Sequences (the original's ``seq_type``; the original's ``idx`` is ``j + 1``): ``pad2`` =
the T observations ending at ``j``; ``pad`` = the T ending at ``j + 1``; both left-padded
with zero observations where they would reach into the previous episode (or into steps
whose frames the ring has overwritten). ``full2`` / ``full`` = the same windows, except
that a window reaching before the episode's start is moved forward to the episode's first
T observations (no padding); a start is then valid only once those T observations are
written in the same episode (the original samples only finished episodes and fails on
episodes shorter than T; here such starts are never drawn).

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

SEQ_TYPES = ("pad2", "pad", "full", "full2")


class Replay(NamedTuple):
    """Per-env rings ``[N, C, ...]`` plus write pointers and sizes ``[N]``; ``frame``:
    the newest frame of each slot's observation."""

    frame: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    first: jax.Array
    ptr: jax.Array
    size: jax.Array


class Sample(NamedTuple):
    """A batch of n-step transitions (``seq`` is ``[B, T, *obs]``, or None); ``env`` and
    ``slot``: where each transition starts in the buffer."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array
    seq: jax.Array | None
    steps: jax.Array
    env: jax.Array
    slot: jax.Array


def frame_shape(obs_shape: tuple[int, ...], frame_stack: int) -> tuple[int, ...]:
    """The shape of one frame of ``frame_stack``-stacked observations of ``obs_shape``."""
    if frame_stack < 1 or obs_shape[-1] % frame_stack:
        raise ValueError(f"frame_stack={frame_stack!r} is invalid for observations of shape "
                         f"{obs_shape}; allowed: an integer >= 1 dividing {obs_shape[-1]}")
    return tuple(obs_shape[:-1]) + (obs_shape[-1] // frame_stack,)


def init(obs: jax.Array, action_dim: int, capacity: int, frame_stack: int = 1) -> Replay:
    """An empty buffer of ``capacity`` slots per env, holding the first observations
    ``obs`` (``[N, *obs_shape]``, from ``env.reset``) as each env's first slot."""
    n = obs.shape[0]
    if capacity < 3:
        raise ValueError(f"capacity={capacity} is invalid; allowed: >= 3 slots per env")
    fshape = frame_shape(tuple(obs.shape[1:]), frame_stack)
    buf = Replay(
        frame=jnp.zeros((n, capacity) + fshape, obs.dtype),
        action=jnp.zeros((n, capacity, action_dim), jnp.float32),
        reward=jnp.zeros((n, capacity), jnp.float32),
        discount=jnp.ones((n, capacity), jnp.float32),
        first=jnp.zeros((n, capacity), bool),
        ptr=jnp.zeros((n,), jnp.int32),
        size=jnp.zeros((n,), jnp.int32),
    )
    rows = jnp.arange(n)
    return buf._replace(frame=buf.frame.at[rows, 0].set(_newest(buf, obs)),
                        first=buf.first.at[rows, 0].set(True),
                        ptr=jnp.ones((n,), jnp.int32), size=jnp.ones((n,), jnp.int32))


def _newest(buf: Replay, obs: jax.Array) -> jax.Array:
    """The newest frame of stacked observations (the last channels)."""
    return obs[..., -buf.frame.shape[-1]:].astype(buf.frame.dtype)


def add(buf: Replay, action: jax.Array, reward: jax.Array, discount: jax.Array,
        next_obs: jax.Array, done: jax.Array, reset_obs: jax.Array) -> Replay:
    """One env step of all ``N`` envs (only the newest frame of each observation is kept).

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
    frame = buf.frame.at[rows, p].set(_newest(buf, next_obs))
    frame = frame.at[rows, q].set(_newest(buf, reset_obs))
    return Replay(
        frame=frame,
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


# ------------------------------------------------------------------------------------------
# Windows: the slots around a start j (offsets lo..hi) that decide its validity and hold
# its observations. The same function judges every slot of the buffer (for the sampling
# mask) and the sampled starts (to build the batch), so the two cannot disagree.


def _bounds(nstep: int, seq_len: int, seq_type: str, frame_stack: int) -> tuple[int, int]:
    if seq_type not in SEQ_TYPES:
        raise ValueError(f"seq_type={seq_type!r} is invalid; allowed: {list(SEQ_TYPES)}")
    hist = frame_stack - 1
    lo, hi = -hist, nstep
    if seq_len > 0:
        end = 1 if seq_type in ("pad", "full") else 0
        lo = min(lo, end - (seq_len - 1) - hist)
        hi = max(hi, end + (seq_len - 1 if seq_type.startswith("full") else 0))
    return lo, hi


def window_length(nstep: int, seq_len: int, seq_type: str, frame_stack: int) -> int:
    """Slots around a start that sampling looks at; the capacity per env must be at
    least this (checked by :func:`sample`)."""
    lo, hi = _bounds(nstep, seq_len, seq_type, frame_stack)
    return hi - lo + 1


def _first_back(first: jax.Array, written: jax.Array, r: jax.Array, span: int) -> jax.Array:
    """Steps back (``< span``) from window indices ``r [M]`` to the nearest written
    ``first`` slot without passing an unwritten one; ``span`` where there is none."""
    dist = jnp.full(r.shape, span)
    blocked = jnp.zeros(r.shape, bool)
    for d in range(span):
        w = _at(written, r - d)
        dist = jnp.where(~blocked & (dist == span) & w & _at(first, r - d), d, dist)
        blocked = blocked | ~w
    return dist


def _at(x: jax.Array, r: jax.Array | int) -> jax.Array:
    """``x[:, r]`` for a static index, or per-row indices ``r [M, ...]`` of ``x [M, L]``."""
    if isinstance(r, int):
        return x[:, r]
    return jnp.take_along_axis(x, r.reshape(r.shape[0], -1), -1).reshape(r.shape)


def _history_ok(first: jax.Array, written: jax.Array, r: jax.Array | int, k: int):
    """The ``k - 1`` predecessors of window index ``r`` are written or lie before its
    episode's written ``first`` slot (its frame stack can be rebuilt)."""
    ok = _at(written, r)
    stop = _at(first, r) & ok
    for d in range(1, k):
        ok = ok & (stop | _at(written, r - d))
        stop = stop | (_at(first, r - d) & _at(written, r - d))
    return ok


def _analyze(first: jax.Array, written: jax.Array, nstep: int, seq_len: int, seq_type: str,
             frame_stack: int) -> dict:
    """Validity and layout of starts from their windows ``first``/``written`` ``[..., L]``
    (window index ``r = offset - lo``). Returns ``valid``, ``alive [..., n]`` (step i+1 is
    in the episode), ``seq_r [..., T]`` (window indices of the sequence, oldest first) and
    ``keep [..., T]`` (a real observation, not padding)."""
    lead = first.shape[:-1]
    first, written = first.reshape(-1, first.shape[-1]), written.reshape(-1, first.shape[-1])
    lo, _ = _bounds(nstep, seq_len, seq_type, frame_stack)
    rj = -lo
    m = first.shape[0]
    alive, ended = [], jnp.zeros((m,), bool)
    a = jnp.ones((m,), bool)
    for i in range(1, nstep + 1):
        ended = ended | (a & written[:, rj + i] & first[:, rj + i])
        a = a & written[:, rj + i] & ~first[:, rj + i]
        alive.append(a)
    alive = jnp.stack(alive, -1)
    valid = (written[:, rj] & alive[:, 0] & (alive[:, -1] | ended)
             & _history_ok(first, written, rj, frame_stack))
    out = {"valid": valid.reshape(lead), "alive": alive.reshape(lead + (nstep,)),
           "seq_r": None, "keep": None}
    if seq_len == 0:
        return out
    end = jnp.full((m,), rj + (1 if seq_type in ("pad", "full") else 0), jnp.int32)
    if seq_type.startswith("full"):  # move the window to the episode's first T steps
        back = _first_back(first, written, end, seq_len - 1)
        end = end + jnp.where(back < seq_len - 1, seq_len - 1 - back, 0)
    seq_r = end[:, None] - jnp.arange(seq_len - 1, -1, -1)[None]       # [M, T] oldest first
    f_s, w_s = _at(first, seq_r), _at(written, seq_r)
    h_s = _history_ok(first, written, seq_r, frame_stack)
    # position t is kept iff it and every newer position are written with a complete frame
    # history and no first slot lies in (t, end]: the chain stops at the episode start
    ok = jnp.concatenate([w_s[:, :-1] & h_s[:, :-1] & ~f_s[:, 1:], w_s[:, -1:] & h_s[:, -1:]],
                         -1)
    keep = jnp.flip(jnp.cumprod(jnp.flip(ok, -1).astype(jnp.int32), -1), -1) > 0
    if seq_type.startswith("full"):
        out["valid"] = (valid & jnp.all(keep, -1)).reshape(lead)
    out["seq_r"] = seq_r.reshape(lead + (seq_len,))
    out["keep"] = keep.reshape(lead + (seq_len,))
    return out


def valid_starts(buf: Replay, nstep: int, seq_len: int = 0, seq_type: str = "pad2",
                 frame_stack: int = 1) -> jax.Array:
    """``[N, C]`` bool: slots a transition can start from (see the module doc)."""
    lo, hi = _bounds(nstep, seq_len, seq_type, frame_stack)
    written = _written(buf)
    win = lambda x: jnp.stack([jnp.roll(x, -o, axis=1) for o in range(lo, hi + 1)], -1)  # noqa: E731
    return _analyze(win(buf.first), win(written), nstep, seq_len, seq_type,
                    frame_stack)["valid"]


def stacked(buf: Replay, env: jax.Array, slot: jax.Array, frame_stack: int) -> jax.Array:
    """The frame-stacked observations ``[..., *obs]`` at ``slot`` of ``env`` (same shapes),
    frames before the episode's ``first`` slot repeating the first frame. Meaningful where
    the slot's frame history is complete (every valid start and what it samples)."""
    cap = buf.reward.shape[1]
    k = frame_stack
    back = (slot[..., None] - jnp.arange(k - 1, -1, -1)) % cap          # [..., k] oldest first
    env_k = env[..., None]
    written = _written(buf)[env_k, back]
    first = buf.first[env_k, back] & written
    # steps back (< k) to the nearest first slot, k - 1 when none within the stack
    dist = jnp.full(slot.shape, k - 1)
    for d in range(k - 2, -1, -1):
        dist = jnp.where(first[..., k - 1 - d], d, dist)
    off = jnp.minimum(jnp.arange(k - 1, -1, -1), dist[..., None])       # [..., k]
    frames = buf.frame[env_k, (slot[..., None] - off) % cap]            # [..., k, *frame]
    fdim = buf.frame.ndim - 2
    frames = jnp.moveaxis(frames, -(fdim + 1), -2)
    return frames.reshape(frames.shape[:-2] + (frames.shape[-2] * frames.shape[-1],))


def sample(buf: Replay, key: jax.Array, batch_size: int, nstep: int, gamma: jax.Array,
           seq_len: int = 0, seq_type: str = "pad2", frame_stack: int = 1) -> Sample:
    """``batch_size`` n-step transitions, uniform over valid starts (with replacement).

    ``reward = sum_{i<k} gamma^i prod_{m<i} d_m r_{i+1}``, ``discount = gamma^k prod_{i<=k}
    d_i`` over the ``k <= n`` steps left in the episode (``d``: env discounts), as the
    original's loop. With ``seq_len > 0`` also ``seq``, the ``seq_len`` observations of
    ``seq_type`` (module doc), zeros where padded. Observations are rebuilt from
    ``frame_stack`` stored frames. With no valid start at all, starts are drawn uniformly
    (garbage; the trainer does not update before ``num_seed_steps``).
    """
    n_env, cap = buf.reward.shape
    lo, hi = _bounds(nstep, seq_len, seq_type, frame_stack)
    if cap < hi - lo + 1:
        raise ValueError(f"capacity={cap} slots per env is invalid; allowed: >= "
                         f"{hi - lo + 1} (the sampling window)")
    valid = valid_starts(buf, nstep, seq_len, seq_type, frame_stack).reshape(-1)
    total = jnp.sum(valid)
    p = jnp.where(total > 0, valid / jnp.maximum(total, 1), 1.0 / valid.size)
    flat = jax.random.choice(key, valid.size, (batch_size,), p=p)
    e, j = flat // cap, flat % cap
    offsets = jnp.arange(lo, hi + 1)
    slots = (j[:, None] + offsets[None]) % cap                          # [B, L]
    written = _written(buf)[e[:, None], slots]
    first = buf.first[e[:, None], slots]
    info = _analyze(first, written, nstep, seq_len, seq_type, frame_stack)
    alive = info["alive"].astype(jnp.float32)                           # [B, n]
    k = jnp.sum(alive, -1).astype(jnp.int32)
    fwd = (j[:, None] + jnp.arange(1, nstep + 1)[None]) % cap
    r = buf.reward[e[:, None], fwd]
    d = buf.discount[e[:, None], fwd]
    step_disc = jnp.where(alive > 0, d * gamma, 1.0)
    before = jnp.cumprod(jnp.concatenate([jnp.ones((batch_size, 1)), step_disc[:, :-1]], -1),
                         -1)
    reward = jnp.sum(alive * before * r, -1)
    discount = jnp.prod(step_disc, -1)
    seq = None
    if seq_len > 0:
        seq_slots = (j[:, None] + lo + info["seq_r"]) % cap             # [B, T]
        obs_seq = stacked(buf, jnp.broadcast_to(e[:, None], seq_slots.shape), seq_slots,
                          frame_stack)
        keep = info["keep"].reshape(info["keep"].shape + (1,) * (obs_seq.ndim - 2))
        seq = jnp.where(keep, obs_seq, jnp.zeros((), obs_seq.dtype))
    return Sample(obs=stacked(buf, e, j, frame_stack), action=buf.action[e, fwd[:, 0]],
                  reward=reward, discount=discount,
                  next_obs=stacked(buf, e, (j + k) % cap, frame_stack), seq=seq, steps=k,
                  env=e, slot=j)
