"""Novelty diagnostic: does a bonus rank rarely seen inputs above often seen ones?

    mimex-jax bench novelty                     # core bonuses + 6 MIMEx variants (BENCHMARKS.md)
    mimex-jax bench novelty --variants rest     # the other 11 MIMEx variants
    mimex-jax bench novelty --quick             # oracle, RND, ICM, MIMEx; 64 steps
    mimex-jax bench novelty --variants rnd mimex --steps 256 --seeds 5

Wall times on the shared 2-core VM are in BENCHMARKS.md; compiling one MIMEx program
takes 1-3 minutes there, so the cost grows with the number of variants more than with
``--steps``.

Each bonus trains on a controlled stream of inputs in which some cells of a small world
are visited often and some rarely. At several points of training it scores probe inputs
of three groups, and we report

- ``auc_rare``: ROC-AUC of its reward, rarely seen inputs against often seen ones
  (1 = every rare input scores above every frequent one, 0.5 = no separation);
- ``ratio_rare``: mean reward of the rare inputs / mean reward of the frequent ones;
- ``auc_unseen``, ``ratio_unseen``: the same for never seen inputs.

**The world.** 64 cells on an 8 x 8 grid (cell ``c`` at row ``c // 8``, column
``c % 8``). Five actions move between cells: ``+1``, ``-1``, ``+8`` (the *jump*),
``+32`` (the *novel jump*) and *stay*; the action determines the transition (cell
indices mod 64). Every input is a window of the last ``T`` observations of a walk,
newest last, with the actions taken between them.

**Two kinds of rarity.**

- ``state`` (a rare *observation*): the newest cell is drawn from a Zipf law over cells
  0-55 (``p(c)`` proportional to ``1 / (c + 1)``, so cell 0 is seen 56 times as often as
  cell 55); cells 56-63 are never visited. Before it the walk moved ``+1`` per step (it
  stays at cell 0 at the wall), so the window holds the ``T - 1`` preceding cells.
  Groups by the newest cell: frequent = cells 0-7, rare = cells 40-55, unseen = 56-63.
- ``transition`` (a rare *transition between common observations*): every cell is
  visited equally (a walk on the ring from a uniform start); each step moves ``+1`` or
  ``-1`` (probability 0.48 each) or jumps ``+8`` (0.04). Probe windows take common steps
  and differ in their newest step: frequent = ``+/-1``, rare = the jump ``+8``, unseen =
  the novel jump ``+32``, never taken in training. Only the sequence shows the rarity:
  every single observation is as common as any other.

**Three kinds of observation**, each 64-dimensional: ``onehot`` (the cell's one-hot
vector, as DeepSea); ``continuous`` (a Gaussian cluster per cell: a centre drawn from
N(0, I) per seed plus N(0, 0.1^2) noise per observation); ``image`` (a 16 x 16 frame of a
Gaussian blob, sigma 1 px, centred on the cell's grid position with +/-0.5 px jitter,
flattened and passed through a fixed random projection per seed to 64 values of
about unit variance).

**Bonuses** (:data:`VARIANTS`): MIMEx with the paper's defaults (T = 5, uniform token
masks at 0.7, encoder 128 / depth 4, decoder 64 / depth 1, Adam lr 1e-4) and one
change at a time from them; RND on the newest observation; ICM on the newest transition
(``obs`` = the previous observation, ``next_obs`` = the newest, ``action`` = the discrete
action between them: ICM needs the action channel, and here the action determines the
transition); the running-mean baseline; and a count oracle (``1 / sqrt(1 + n)`` with
``n`` the number of times the newest (cell, action) pair was seen so far; it reads the
true cell ids, so it is the best a bonus can do, not a competitor).

**How it runs.** One program per bonus: a ``lax.scan`` over evaluation segments, each a
``fori_loop`` of training steps (draw a batch from the stream, ``update`` the bonus
``updates`` times on it), then ``reward`` on the probes. The program is vmapped over
members = dynamic settings (reward-model lr, mask ratio) x 3 observation kinds x 2 rarity
kinds x seeds. Reward states are initialised once per seed and shared by that seed's
members (which differ only in dynamic settings). Rewards are scored exactly as the agent
would receive them: one ``reward`` call, one mask draw for MIMEx.

Aggregates: mean and [min, max] over seeds. Runs are deterministic.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import mimex_jax
from mimex_jax import xla
from mimex_jax.rewards import (
    ICMConfig,
    IntrinsicReward,
    MIMExConfig,
    RewardBatch,
    RNDConfig,
    RunningMeanConfig,
    icm,
    mimex,
    none,
    rnd,
    running_mean,
)
from mimex_jax.rewards.base import Metrics, PRNGKey

# --------------------------------------------------------------------------- the world

GRID = 8
CELLS = GRID * GRID
OBS_DIM = 64
SEEN = 56                    # state rarity: cells >= SEEN are never visited
GROUPS = ("frequent", "rare", "unseen")
STATE_GROUPS = {"frequent": (0, 8), "rare": (40, 56), "unseen": (56, 64)}  # at margin 0
OFFSETS = (1, -1, GRID, 4 * GRID, 0)  # actions: +1, -1, jump, novel jump, stay
PLUS, MINUS, JUMP, NOVEL_JUMP, STAY = range(5)
NUM_ACTIONS = len(OFFSETS)
OBS_KINDS = ("onehot", "continuous", "image")
RARITIES = ("state", "transition")


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """The data streams' free parameters (the world's layout is fixed, see the module doc)."""

    zipf: float = 1.0           # state rarity: p(cell c) proportional to (c + 1)^-zipf
    jump_prob: float = 0.04     # transition rarity: probability of the jump per step
    noise: float = 0.1          # continuous: std of the per-observation noise
    image_side: int = 16        # image: frame side in pixels (a multiple of 8)
    blob_sigma: float = 1.0     # image: blob std in pixels at side 16 (scales with side)
    jitter: float = 0.5         # image: blob centre jitter, +/- pixels at side 16
    # state rarity: the Zipf law starts at cell `margin` (cells below it are seen only as
    # context). At 0 the windows of the most frequent cells are cut at the wall (the walk
    # stays at cell 0), so one kept token does not determine them; margin >= T - 1 avoids it.
    margin: int = 0

    def __post_init__(self) -> None:
        checks = (("zipf", self.zipf >= 0, "a number >= 0"),
                  ("jump_prob", 0 < self.jump_prob < 1, "a number in (0, 1)"),
                  ("noise", self.noise >= 0, "a number >= 0"),
                  ("image_side", isinstance(self.image_side, int) and self.image_side >= GRID
                   and self.image_side % GRID == 0, f"a multiple of {GRID}"),
                  ("blob_sigma", self.blob_sigma > 0, "a number > 0"),
                  ("jitter", self.jitter >= 0, "a number >= 0"),
                  ("margin", isinstance(self.margin, int) and 0 <= self.margin <= 32,
                   "an integer in [0, 32]"))
        for field, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{field}={getattr(self, field)!r} is invalid; allowed: "
                                 f"{allowed}")


class Windows(NamedTuple):
    """``B`` windows of ``T`` steps: cells ``[B, T]``, actions ``[B, T - 1]`` (action ``t``
    leads from cell ``t`` to cell ``t + 1``) and observations ``[B, T, OBS_DIM]``."""

    cells: jax.Array
    actions: jax.Array
    obs: jax.Array


class StreamParams(NamedTuple):
    """Per-seed constants of the observation maps."""

    centres: jax.Array      # [CELLS, OBS_DIM] continuous cluster centres
    projection: jax.Array   # [side * side, OBS_DIM] image random projection


def stream_params(key: PRNGKey, cfg: StreamConfig) -> StreamParams:
    """Cluster centres and the image projection for one seed."""
    k_c, k_p = jax.random.split(key)
    sigma = cfg.blob_sigma * cfg.image_side / 16
    # A blob's squared norm is about pi sigma^2: scale so projected values have unit variance.
    scale = 1.0 / (np.sqrt(np.pi) * sigma)
    return StreamParams(
        jax.random.normal(k_c, (CELLS, OBS_DIM)),
        scale * jax.random.normal(k_p, (cfg.image_side ** 2, OBS_DIM)))


def state_groups(cfg: StreamConfig) -> dict[str, tuple[int, int]]:
    """Cell ranges ``[lo, hi)`` of the probe groups of the state stream."""
    lo = cfg.margin
    return {**STATE_GROUPS, "frequent": (lo, lo + 8)}


def zipf_logits(cfg: StreamConfig) -> jax.Array:
    """Log probabilities of the newest cell of the state stream: Zipf over cells
    ``margin .. SEEN - 1`` (cells >= SEEN: never)."""
    c = np.arange(CELLS)
    ok = (c >= cfg.margin) & (c < SEEN)
    logits = np.where(ok, -cfg.zipf * np.log(np.maximum(c - cfg.margin, 0) + 1.0), -np.inf)
    return jnp.asarray(logits - np.log(np.sum(np.exp(logits))), jnp.float32)


def _walk_back(newest: jax.Array, seq_len: int) -> tuple[jax.Array, jax.Array]:
    """Windows ending at ``newest`` after ``+1`` moves (staying at cell 0 at the wall)."""
    back = jnp.arange(seq_len - 1, -1, -1)
    cells = jnp.maximum(newest[:, None] - back, 0)
    actions = jnp.where(cells[:, 1:] > cells[:, :-1], PLUS, STAY)
    return cells, actions


def _walk_ring(start: jax.Array, actions: jax.Array) -> jax.Array:
    offsets = jnp.asarray(OFFSETS)[actions]
    steps = jnp.concatenate([jnp.zeros_like(start)[:, None], jnp.cumsum(offsets, axis=1)], 1)
    return (start[:, None] + steps) % CELLS


def state_windows(key: PRNGKey, cfg: StreamConfig, batch: int, seq_len: int,
                  cells: tuple[int, int] | None = None) -> tuple[jax.Array, jax.Array]:
    """Cells and actions of state-rarity windows: the newest cell from the Zipf law, or
    uniform over ``cells = (lo, hi)`` for a probe group."""
    if cells is None:
        newest = jax.random.categorical(key, zipf_logits(cfg), shape=(batch,))
    else:
        newest = jax.random.randint(key, (batch,), *cells)
    return _walk_back(newest, seq_len)


def transition_windows(key: PRNGKey, cfg: StreamConfig, batch: int, seq_len: int,
                       last: int | None = None) -> tuple[jax.Array, jax.Array]:
    """Cells and actions of transition-rarity windows. Training (``last=None``): every
    step is +1 / -1 / jump with probabilities (1-p)/2, (1-p)/2, p. Probe: +1 / -1 steps
    drawn uniformly, except the newest one is ``last`` when that is not ``PLUS``."""
    k_start, k_act, k_last = jax.random.split(key, 3)
    start = jax.random.randint(k_start, (batch,), 0, CELLS)
    n = seq_len - 1
    if last is None:
        p = cfg.jump_prob
        probs = jnp.asarray([(1 - p) / 2, (1 - p) / 2, p, 0.0, 0.0])
        actions = jax.random.categorical(k_act, jnp.log(probs), shape=(batch, n))
    else:
        actions = jax.random.randint(k_act, (batch, n), PLUS, MINUS + 1)
        if n > 0 and last != PLUS:
            actions = actions.at[:, -1].set(last)
    return _walk_ring(start, actions), actions


def render(key: PRNGKey, cfg: StreamConfig, params: StreamParams, cells: jax.Array,
           obs_kind: jax.Array) -> jax.Array:
    """Observations ``[..., OBS_DIM]`` of ``cells`` for ``obs_kind`` (an index into
    :data:`OBS_KINDS`, may be traced: all three are computed and one is selected)."""
    k_noise, k_jit = jax.random.split(key)
    onehot = jax.nn.one_hot(cells, CELLS, dtype=jnp.float32)
    cont = params.centres[cells] + cfg.noise * jax.random.normal(
        k_noise, cells.shape + (OBS_DIM,))
    jit = cfg.jitter * cfg.image_side / 16 * jax.random.uniform(
        k_jit, cells.shape + (2,), minval=-1.0, maxval=1.0)
    frames = image_frames(cfg, cells, jit).reshape(cells.shape + (cfg.image_side ** 2,))
    image = frames @ params.projection
    return jnp.stack([onehot, cont, image])[obs_kind]


def image_frames(cfg: StreamConfig, cells: jax.Array, shift: jax.Array | None = None
                 ) -> jax.Array:
    """``[..., side, side]`` frames of a Gaussian blob at the grid positions of ``cells``,
    its centre moved by ``shift`` ``[..., 2]`` pixels (rows, columns) when given."""
    side = cfg.image_side
    cy = (cells // GRID + 0.5) * side / GRID
    cx = (cells % GRID + 0.5) * side / GRID
    if shift is not None:
        cy, cx = cy + shift[..., 0], cx + shift[..., 1]
    grid = jnp.arange(side) + 0.5
    sigma = cfg.blob_sigma * side / 16
    gy = jnp.exp(-jnp.square(grid - cy[..., None]) / (2 * sigma ** 2))
    gx = jnp.exp(-jnp.square(grid - cx[..., None]) / (2 * sigma ** 2))
    return gy[..., :, None] * gx[..., None, :]


def _windows(key: PRNGKey, cfg: StreamConfig, params: StreamParams, obs_kind: jax.Array,
             rarity: jax.Array, state: tuple[jax.Array, jax.Array],
             trans: tuple[jax.Array, jax.Array]) -> Windows:
    """Select the rarity kind (traced index) and render."""
    is_state = rarity == RARITIES.index("state")
    cells = jnp.where(is_state, state[0], trans[0])
    actions = jnp.where(is_state, state[1], trans[1])
    return Windows(cells, actions, render(key, cfg, params, cells, obs_kind))


def train_windows(key: PRNGKey, cfg: StreamConfig, params: StreamParams, obs_kind: jax.Array,
                  rarity: jax.Array, batch: int, seq_len: int) -> Windows:
    """One training batch of the stream (obs kind and rarity kind given as indices)."""
    k_s, k_t, k_r = jax.random.split(key, 3)
    return _windows(k_r, cfg, params, obs_kind, rarity,
                    state_windows(k_s, cfg, batch, seq_len),
                    transition_windows(k_t, cfg, batch, seq_len))


def probe_windows(key: PRNGKey, cfg: StreamConfig, params: StreamParams, obs_kind: jax.Array,
                  rarity: jax.Array, per_group: int, seq_len: int) -> Windows:
    """``3 * per_group`` probe windows: frequent, rare, unseen (in :data:`GROUPS` order)."""
    lasts = {"frequent": PLUS, "rare": JUMP, "unseen": NOVEL_JUMP}
    parts = []
    for i, g in enumerate(GROUPS):
        k_s, k_t, k_r = jax.random.split(jax.random.fold_in(key, i), 3)
        parts.append(_windows(k_r, cfg, params, obs_kind, rarity,
                              state_windows(k_s, cfg, per_group, seq_len,
                                            state_groups(cfg)[g]),
                              transition_windows(k_t, cfg, per_group, seq_len, lasts[g])))
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)


# --------------------------------------------------------------------------- scores


def roc_auc(pos: jax.Array, neg: jax.Array) -> jax.Array:
    """P(a positive scores above a negative), ties counted half (the Mann-Whitney AUC)."""
    diff = pos[:, None] - neg[None, :]
    return jnp.mean((diff > 0).astype(jnp.float32) + 0.5 * (diff == 0).astype(jnp.float32))


def group_scores(r: jax.Array, per_group: int) -> dict[str, jax.Array]:
    """AUCs, mean-reward ratios and group means of probe rewards in :data:`GROUPS` order."""
    freq, rare, unseen = (r[i * per_group:(i + 1) * per_group] for i in range(3))
    means = [jnp.mean(x) for x in (freq, rare, unseen)]
    # Ratios of means are undefined (NaN) when the frequent inputs' mean reward is 0.
    safe = jnp.where(means[0] != 0, means[0], jnp.nan)
    return {"auc_rare": roc_auc(rare, freq), "auc_unseen": roc_auc(unseen, freq),
            "ratio_rare": means[1] / safe, "ratio_unseen": means[2] / safe,
            "mean_frequent": means[0], "mean_rare": means[1], "mean_unseen": means[2]}


METRICS = ("auc_rare", "auc_unseen", "ratio_rare", "ratio_unseen", "mean_frequent",
           "mean_rare", "mean_unseen")


# --------------------------------------------------------------------------- bonuses


class CountState(NamedTuple):
    counts: jax.Array   # [CELLS * NUM_ACTIONS] visits of each (cell, action) pair


def count_oracle() -> IntrinsicReward:
    """``1 / sqrt(1 + n)`` with ``n`` the visits so far of the newest (previous cell,
    action) pair, whose id ``cell * NUM_ACTIONS + action`` comes in ``RewardBatch.action``
    (``[B]`` int). It reads the true cell ids: an upper bound, not a competitor."""

    def init(key: PRNGKey, batch: RewardBatch | None = None) -> CountState:
        del key, batch
        return CountState(jnp.zeros((CELLS * NUM_ACTIONS,), jnp.float32))

    def reward(state: CountState, batch: RewardBatch, key: PRNGKey) -> jax.Array:
        del key
        return jax.lax.rsqrt(1.0 + state.counts[batch.action])

    def update(state: CountState, batch: RewardBatch, key: PRNGKey
               ) -> tuple[CountState, jax.Array, Metrics]:
        r = reward(state, batch, key)
        counts = state.counts.at[batch.action].add(1.0)
        return CountState(counts), r, {"loss": jnp.mean(r)}

    return IntrinsicReward(init, reward, update)


@dataclasses.dataclass(frozen=True)
class Variant:
    """A bonus and its static settings.

    ``kind``: ``mimex``, ``rnd``, ``icm``, ``running_mean``, ``oracle`` or ``constant``.
    ``mimex``: :class:`MIMExConfig` fields changed from the paper defaults.
    ``dynamic``: members that share this program, ``(label, lr, mask_ratio)`` (None keeps
    the config's value); vmapped with the seeds. ``updates``: Adam steps per batch.
    ``core``: the bonus runs on every observation kind; the MIMEx sweep runs on the
    ``--sweep-obs`` kinds only (CPU budget).
    """

    name: str
    kind: str
    note: str
    seq_len: int = 5
    mimex: tuple[tuple[str, Any], ...] = ()
    updates: int = 1
    dynamic: tuple[tuple[str, float | None, float | None], ...] = ()
    factor: str = ""
    core: bool = False          # runs on every observation kind (else on --sweep-obs)

    @property
    def members(self) -> tuple[tuple[str, float | None, float | None], ...]:
        return self.dynamic or ((self.name, None, None),)


PAPER = "MIMEx paper defaults: T=5, uniform token masks 0.7, encoder 128/4/4, decoder 64/1/2, " \
        "cls, lr 1e-4"


def _mimex(name: str, factor: str, note: str, seq_len: int = 5, updates: int = 1,
           **over: Any) -> Variant:
    return Variant(name, "mimex", note, seq_len=seq_len, mimex=tuple(sorted(over.items())),
                   updates=updates, factor=factor)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("oracle", "oracle", core=True, seq_len=2,
            note="count oracle of the newest (cell, action) pair; reads the true cell ids "
                 "(upper bound)"),
    Variant("rnd", "rnd", core=True, seq_len=1,
            note="RND on the newest observation (original: 256-256-288, lr 1e-3)"),
    Variant("icm", "icm", core=True, seq_len=2,
            note="ICM forward error on the newest transition, discrete action channel "
                 "(original: 288 features, lr 1e-3)"),
    Variant("running_mean", "running_mean", core=True,
            note="squared distance of the T=5 window to the running mean window"),
    # The paper defaults and lr 1e-3 share one program (the lr is dynamic).
    Variant("mimex", "mimex", PAPER, factor="paper defaults", core=True,
            dynamic=(("mimex", None, None), ("mimex-lr=1e-3", 1e-3, None))),
    Variant("mimex-lr-ratio", "mimex", PAPER, factor="", dynamic=(
        ("mimex-lr=3e-4", 3e-4, None), ("mimex-mask_ratio=0.3", None, 0.3),
        ("mimex-mask_ratio=0.5", None, 0.5), ("mimex-mask_ratio=0.9", None, 0.9)),
            # 3 encoder slots: the most tokens a T=5 mask keeps at ratio 0.3
            mimex=(("encoder_slots", 3),)),
    _mimex("mimex-T=1", "T", "T=1 (at ratio 0.7 the one token is always masked)", seq_len=1),
    _mimex("mimex-T=2", "T", "T=2", seq_len=2),
    _mimex("mimex-T=3", "T", "T=3", seq_len=3),
    _mimex("mimex-T=10", "T", "T=10", seq_len=10),
    _mimex("mimex-embed=64", "width/depth", "encoder 64 wide", embed_dim=64),
    _mimex("mimex-embed=256", "width/depth", "encoder 256 wide", embed_dim=256),
    _mimex("mimex-depth=1", "width/depth", "encoder depth 1", depth=1),
    _mimex("mimex-depth=8", "width/depth", "encoder depth 8", depth=8),
    _mimex("mimex-updates=4", "updates per batch", "4 Adam steps per batch", updates=4),
    _mimex("mimex-norm_loss", "norm_loss", "norm_loss=True", norm_loss=True),
    _mimex("mimex-n_mask=5", "n_mask", "loss averaged over 5 masks", n_mask=5),
    _mimex("mimex-mask=last_token", "mask distribution", "only the newest token masked",
           mask="last_token"),
    _mimex("mimex-mask=bernoulli_token", "mask distribution",
           "each token masked with p=0.7", mask="bernoulli_token"),
    _mimex("mimex-mask=full", "mask distribution", "every token masked", mask="full"),
    _mimex("mimex-mask=suffix_2", "mask distribution", "the newest 2 tokens masked",
           mask="suffix_2"),
    _mimex("mimex-mask_all", "mask distribution", "element-wise masks (the original's MAE "
           "variant, mask_all=True)", mask_all=True),
    Variant("constant", "constant", seq_len=1,
            note="zero reward for every input (a sanity check: AUC 0.5)"),
)}
CORE = ("oracle", "rnd", "icm", "mimex")
SWEEP = tuple(k for k, v in VARIANTS.items() if v.kind == "mimex" and not v.core)
# What `bench novelty` runs by default (56 min on the 2-core VM at load average 7-17, most
# of it compiling; see BENCHMARKS.md). `--variants rest` runs the other sweep variants.
DEFAULT_SWEEP = ("mimex-lr-ratio", "mimex-T=1", "mimex-T=10", "mimex-n_mask=5",
                 "mimex-mask=last_token", "mimex-mask=full")
GROUPS_OF_VARIANTS = {
    "core": tuple(k for k, v in VARIANTS.items() if v.core),
    "default": tuple(k for k, v in VARIANTS.items() if v.core) + DEFAULT_SWEEP,
    "sweep": SWEEP,
    "rest": tuple(k for k in SWEEP if k not in DEFAULT_SWEEP),
    "all": tuple(k for k in VARIANTS if k != "constant"),
}


def expand_variants(names: Sequence[str]) -> list[str]:
    """Variant names with group names (``core``, ``default``, ``sweep``, ``rest``,
    ``all``) expanded, in order, without repeats."""
    out: list[str] = []
    for n in names:
        for v in GROUPS_OF_VARIANTS.get(n, (n,)):
            if v not in VARIANTS:
                raise ValueError(f"--variants {v!r} is invalid; allowed: {list(VARIANTS)} or "
                                 f"{list(GROUPS_OF_VARIANTS)}")
            if v not in out:
                out.append(v)
    return out


def make_bonus(variant: Variant) -> tuple[IntrinsicReward, Callable[[Windows], RewardBatch]]:
    """The bonus of ``variant`` and the map from stream windows to its :class:`RewardBatch`."""
    t = variant.seq_len
    if variant.kind == "mimex":
        cfg = MIMExConfig(seq_len=t, feature_dim=OBS_DIM, **dict(variant.mimex))
        return mimex(cfg), lambda w: RewardBatch(seq=w.obs[:, -t:])
    if variant.kind == "rnd":
        return rnd(RNDConfig(obs_dim=OBS_DIM)), lambda w: RewardBatch(obs=w.obs[:, -1])
    if variant.kind == "icm":
        cfg = ICMConfig(obs_dim=OBS_DIM, action_dim=NUM_ACTIONS, discrete=True)
        return icm(cfg), lambda w: RewardBatch(obs=w.obs[:, -2], next_obs=w.obs[:, -1],
                                               action=w.actions[:, -1])
    if variant.kind == "running_mean":
        cfg = RunningMeanConfig(seq_len=t, feature_dim=OBS_DIM)
        return running_mean(cfg), lambda w: RewardBatch(seq=w.obs[:, -t:])
    if variant.kind == "oracle":
        return count_oracle(), lambda w: RewardBatch(
            action=w.cells[:, -2] * NUM_ACTIONS + w.actions[:, -1])
    if variant.kind == "constant":
        return none(), lambda w: RewardBatch(obs=w.obs[:, -1])
    raise ValueError(f"kind={variant.kind!r} is invalid; allowed: mimex, rnd, icm, "
                     "running_mean, oracle, constant")


def with_hparams(state: Any, lr: float | None, mask_ratio: float | None) -> Any:
    """A MIMEx reward state with its Adam lr and/or mask ratio replaced."""
    if lr is not None:
        opt = state.opt_state
        hp = {**opt.hyperparams, "learning_rate": jnp.asarray(lr, jnp.float32)}
        state = state._replace(opt_state=opt._replace(hyperparams=hp))
    if mask_ratio is not None:
        state = state._replace(mask_ratio=jnp.asarray(mask_ratio, jnp.float32))
    return state


# --------------------------------------------------------------------------- programs


@dataclasses.dataclass(frozen=True)
class Plan:
    """What every program runs: batch size, evaluation steps and probe size."""

    batch: int
    eval_steps: tuple[int, ...]     # training steps at which the probes are scored (0 first)
    per_group: int

    def __post_init__(self) -> None:
        s = self.eval_steps
        if not s or s[0] != 0 or any(b <= a for a, b in zip(s, s[1:], strict=False)):
            raise ValueError(f"eval_steps={s!r} is invalid; allowed: 0 then increasing steps")
        for field in ("batch", "per_group"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field}={getattr(self, field)} is invalid; allowed: >= 1")


def make_program(variant: Variant, stream: StreamConfig, plan: Plan
                 ) -> Callable[..., dict[str, jax.Array]]:
    """``run(reward_states, obs_kind, rarity, keys) -> {metric: [members, evals]}``, jitted
    and vmapped over the leading member axis of every argument."""
    bonus, batch_of = make_bonus(variant)
    t = max(variant.seq_len, 2)           # windows carry at least one transition
    # Segment i trains from eval_steps[i-1] to eval_steps[i], then scores the probes; the
    # first segment is empty (the untrained bonus), so the program holds one scoring copy.
    starts = jnp.asarray((0, *plan.eval_steps[:-1]), jnp.int32)
    stops = jnp.asarray(plan.eval_steps, jnp.int32)

    def run_member(rstate: Any, obs_kind: jax.Array, rarity: jax.Array, key: PRNGKey
                   ) -> dict[str, jax.Array]:
        k_params, k_train, k_update, k_probe, k_eval = jax.random.split(key, 5)
        params = stream_params(k_params, stream)

        def train_step(step: jax.Array, rstate: Any) -> Any:
            w = train_windows(jax.random.fold_in(k_train, step), stream, params, obs_kind,
                              rarity, plan.batch, t)
            k = jax.random.fold_in(k_update, step)

            def one_update(u: jax.Array, rstate: Any) -> Any:
                return bonus.update(rstate, batch_of(w), jax.random.fold_in(k, u))[0]

            return jax.lax.fori_loop(0, variant.updates, one_update, rstate)

        def segment(rstate: Any, bounds: tuple[jax.Array, jax.Array]
                    ) -> tuple[Any, dict[str, jax.Array]]:
            rstate = jax.lax.fori_loop(bounds[0], bounds[1], train_step, rstate)
            w = probe_windows(k_probe, stream, params, obs_kind, rarity, plan.per_group, t)
            r = bonus.reward(rstate, batch_of(w), jax.random.fold_in(k_eval, bounds[1]))
            return rstate, group_scores(r, plan.per_group)

        return jax.lax.scan(segment, rstate, (starts, stops))[1]

    return xla.jit(jax.vmap(run_member))


def run_variant(variant: Variant, stream: StreamConfig, plan: Plan, seeds: Sequence[int],
                obs_kinds: Sequence[str] = OBS_KINDS, rarities: Sequence[str] = RARITIES
                ) -> dict[str, np.ndarray]:
    """Train and score every member of ``variant`` in one vmapped program.

    Returns ``{metric: [dynamic, obs_kinds, rarities, seeds, evals]}`` as numpy arrays.
    """
    bonus, batch_of = make_bonus(variant)
    t = max(variant.seq_len, 2)
    example = batch_of(Windows(jnp.zeros((2, t), jnp.int32), jnp.zeros((2, t - 1), jnp.int32),
                               jnp.zeros((2, t, OBS_DIM), jnp.float32)))
    init = xla.jit(bonus.init)
    # One initial state per seed; members of a seed differ only in dynamic settings.
    seed_states = {s: init(jax.random.key(s), example) for s in seeds}
    states, kinds, rars, keys = [], [], [], []
    for _, lr, ratio in variant.members:
        for o in obs_kinds:
            for r in rarities:
                for s in seeds:
                    states.append(with_hparams(seed_states[s], lr, ratio))
                    kinds.append(OBS_KINDS.index(o))
                    rars.append(RARITIES.index(r))
                    keys.append(jax.random.fold_in(jax.random.key(s), 1))
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    out = make_program(variant, stream, plan)(stacked, jnp.asarray(kinds, jnp.int32),
                                              jnp.asarray(rars, jnp.int32), jnp.stack(keys))
    shape = (len(variant.members), len(obs_kinds), len(rarities), len(seeds),
             len(plan.eval_steps))
    return {k: np.asarray(v, np.float64).reshape(shape) for k, v in out.items()}


# --------------------------------------------------------------------------- reports


def _stat(x: np.ndarray) -> dict[str, float | None]:
    """Mean, min and max over seeds (None when undefined)."""
    x = np.asarray(x, np.float64)
    if not np.all(np.isfinite(x)):
        return {"mean": None, "min": None, "max": None}
    return {"mean": float(x.mean()), "min": float(x.min()), "max": float(x.max())}


def entries_of(variant: Variant, arrays: dict[str, np.ndarray], obs_kinds: Sequence[str],
               rarities: Sequence[str], seconds: float) -> list[dict[str, Any]]:
    """One JSON entry per (member, obs kind, rarity): per-seed curves and final summaries."""
    out = []
    for m, (label, lr, ratio) in enumerate(variant.members):
        for i, o in enumerate(obs_kinds):
            for j, r in enumerate(rarities):
                per_seed = {k: arrays[k][m, i, j].tolist() for k in METRICS}
                final = {k: _stat(arrays[k][m, i, j, :, -1]) for k in METRICS}
                curve = {k: [_stat(arrays[k][m, i, j, :, e])
                             for e in range(arrays[k].shape[-1])]
                         for k in ("auc_rare", "auc_unseen")}
                out.append({"bonus": label, "program": variant.name, "kind": variant.kind,
                            "factor": _factor(variant, label, lr),
                            "note": variant.note, "lr": lr, "mask_ratio": ratio,
                            "obs": o, "rarity": r, "final": final, "curve": curve,
                            "per_seed": per_seed,
                            "seconds_for_program": round(seconds, 1)})
    return out


def _factor(variant: Variant, label: str, lr: float | None) -> str:
    if label == variant.name:
        return variant.factor
    return "reward-model lr" if lr is not None else "mask ratio"


def _cell(s: dict[str, float | None], digits: int = 2, signed: bool = False) -> str:
    if s["mean"] is None:
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{f.format(s['mean'])} [{f.format(s['min'])}, {f.format(s['max'])}]"


def _settings(results: list[dict]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for e in results:
        if (e["obs"], e["rarity"]) not in seen:
            seen.append((e["obs"], e["rarity"]))
    return seen


def table(results: list[dict], metric: str, digits: int = 2) -> str:
    """Markdown: one row per bonus, one column per (obs kind, rarity), final ``metric``."""
    settings = _settings(results)
    bonuses = list(dict.fromkeys(e["bonus"] for e in results))
    by = {(e["bonus"], e["obs"], e["rarity"]): e for e in results}
    head = "| bonus | " + " | ".join(f"{o} / {r}" for o, r in settings) + " |"
    lines = [head, "|---|" + "---|" * len(settings)]
    for b in bonuses:
        cells = [_cell(by[(b, o, r)]["final"][metric], digits) if (b, o, r) in by else "-"
                 for o, r in settings]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve_table(results: list[dict], eval_steps: Sequence[int], metric: str = "auc_rare"
                ) -> str:
    """Markdown: ``metric`` (mean over seeds) at every evaluation step, per bonus and setting."""
    lines = ["| bonus | setting | " + " | ".join(f"step {s}" for s in eval_steps) + " |",
             "|---|---|" + "---|" * len(eval_steps)]
    for e in results:
        vals = ["n/a" if c["mean"] is None else f"{c['mean']:.2f}" for c in e["curve"][metric]]
        lines.append(f"| {e['bonus']} | {e['obs']} / {e['rarity']} | " + " | ".join(vals)
                     + " |")
    return "\n".join(lines)


def delta_table(results: list[dict], base: str, metric: str = "auc_rare") -> str:
    """Markdown: per MIMEx variant and setting, the per-seed difference of the final
    ``metric`` to the ``base`` bonus on the same seed, mean [min, max]."""
    by = {(e["bonus"], e["obs"], e["rarity"]): e for e in results}
    settings = [s for s in _settings(results) if (base, *s) in by]
    lines = ["| variant | " + " | ".join(f"{o} / {r}" for o, r in settings) + " |",
             "|---|" + "---|" * len(settings)]
    for b in dict.fromkeys(e["bonus"] for e in results if e["kind"] == "mimex"):
        if b == base:
            continue
        cells = []
        for o, r in settings:
            if (b, o, r) not in by:
                cells.append("-")
                continue
            d = (np.asarray(by[(b, o, r)]["per_seed"][metric])[:, -1]
                 - np.asarray(by[(base, o, r)]["per_seed"][metric])[:, -1])
            cells.append(_cell(_stat(d), 2, signed=True))
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(results: list[dict], base: str = "mimex", obs: str = "onehot") -> str:
    """Markdown: every MIMEx setting on ``obs`` with its final AUC rare vs frequent, the
    per-seed difference to ``base`` and the reward ratio, per rarity kind."""
    by = {(e["bonus"], e["obs"], e["rarity"]): e for e in results}
    rarities = [r for r in RARITIES if (base, obs, r) in by]
    head = "| MIMEx setting | factor | " + " | ".join(
        f"{r}: AUC | {r}: AUC - paper | {r}: ratio" for r in rarities) + " |"
    lines = [head, "|---|---|" + "---|" * (3 * len(rarities))]
    for b in dict.fromkeys(e["bonus"] for e in results if e["kind"] == "mimex"):
        cells = []
        for r in rarities:
            e = by.get((b, obs, r))
            if e is None:
                cells += ["-"] * 3
                continue
            d = (np.asarray(e["per_seed"]["auc_rare"])[:, -1]
                 - np.asarray(by[(base, obs, r)]["per_seed"]["auc_rare"])[:, -1])
            cells += [_cell(e["final"]["auc_rare"]),
                      "-" if b == base else _cell(_stat(d), signed=True),
                      _cell(e["final"]["ratio_rare"])]
        factor = next(e["factor"] for e in results if e["bonus"] == b)
        lines.append(f"| {b} | {factor} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def merge(outs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One result from several runs with the same seeds and plan (results concatenated;
    command, commit and wall time listed per run)."""
    first = outs[0]
    for o in outs[1:]:
        if o["seeds"] != first["seeds"] or o["plan"] != first["plan"]:
            raise ValueError("--render: the results differ in seeds or plan; allowed: runs "
                             "with the same --seeds, --steps, --batch and --probes")
    if len(outs) == 1:
        return first
    return {**first, "command": " ; ".join(o["command"] for o in outs),
            "git_commit": ", ".join(dict.fromkeys(o["git_commit"] for o in outs)),
            "wall_seconds": sum(o["wall_seconds"] for o in outs),
            "results": [e for o in outs for e in o["results"]]}


def report(out: dict[str, Any]) -> str:
    """The markdown report of a result (tables of final AUCs and ratios, curves)."""
    res = out["results"]
    plan = out["plan"]
    parts = [
        "# Novelty diagnostic",
        "",
        f"Command: `{out['command']}` (commit {out['git_commit']}, {out['machine']['date']}, "
        f"{out['machine']['cpu_count']} CPUs, backend {out['machine']['backend']}, wall "
        f"{out['wall_seconds']:.0f} s).",
        "",
        f"Seeds {out['seeds']}; batch {plan['batch']} windows per step, probes "
        f"{plan['per_group']} per group, scored at steps {plan['eval_steps']}. Cells are "
        "mean [min, max] over seeds at the last step.",
        "",
        "## ROC-AUC, rare vs frequent (final)",
        "",
        table(res, "auc_rare"),
        "",
        "## Mean reward ratio rare / frequent (final)",
        "",
        table(res, "ratio_rare"),
        "",
        "## ROC-AUC, never seen vs frequent (final)",
        "",
        table(res, "auc_unseen"),
        "",
        "## MIMEx settings on one-hot observations (final)",
        "",
        sweep_table(res),
        "",
        "## MIMEx variants against the paper defaults (final AUC rare vs frequent)",
        "",
        "Per seed, the variant's AUC minus the paper defaults' AUC on the same stream "
        "(same seed, same data); mean [min, max] over seeds.",
        "",
        delta_table(res, "mimex"),
        "",
        "## ROC-AUC rare vs frequent as training proceeds (mean over seeds)",
        "",
        curve_table(res, plan["eval_steps"], "auc_rare"),
        "",
        "## Bonuses",
        "",
    ]
    notes = dict.fromkeys((e["bonus"], e["note"], e["lr"], e["mask_ratio"]) for e in res)
    for b, note, lr, ratio in notes:
        extra = [f"lr {lr:g}" if lr is not None else "",
                 f"mask ratio {ratio:g}" if ratio is not None else ""]
        extra = ", ".join(x for x in extra if x)
        parts.append(f"- `{b}`: {note}" + (f", except {extra}" if extra else ""))
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- main


def git_commit() -> str:
    """The package checkout's commit (:func:`mimex_jax.bench.machine.git_commit`) or unknown."""
    from mimex_jax.bench.machine import git_commit as commit

    return commit() or "unknown"


def default_out(quick: bool) -> Path:
    """``benchmarks/results/novelty[_quick].json`` in a checkout, else ``./``."""
    name = "novelty_quick.json" if quick else "novelty.json"
    base = Path.cwd() / "benchmarks" / "results"
    return base / name if base.parent.is_dir() else Path.cwd() / name


QUICK = {"steps": 64, "variants": CORE}
FULL = {"steps": 128}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Novelty diagnostic: how well does each bonus (MIMEx and its "
        "variants, RND, ICM) rank rarely seen inputs above often seen ones as it trains? "
        "ROC-AUC and reward ratio rare/frequent on controlled streams (one-hot, continuous, "
        "image; rare states and rare transitions); mean [min, max] over seeds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["default"], metavar="NAME",
                   help="bonuses to run: names (" + ", ".join(VARIANTS) + ") or groups ("
                   + ", ".join(f"{k}: {len(v)}" for k, v in GROUPS_OF_VARIANTS.items())
                   + "); --quick: " + " ".join(QUICK["variants"]))
    p.add_argument("--obs", nargs="+", default=list(OBS_KINDS), choices=list(OBS_KINDS),
                   help="observation kinds of the core bonuses (oracle, RND, ICM, running "
                        "mean, MIMEx paper defaults and lr 1e-3)")
    p.add_argument("--sweep-obs", nargs="+", default=["onehot"], choices=list(OBS_KINDS),
                   help="observation kinds of the other MIMEx variants (CPU budget)")
    p.add_argument("--rarity", nargs="+", default=list(RARITIES), choices=list(RARITIES))
    p.add_argument("--seeds", type=int, default=5, help="seeds (vmapped in each program)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"training steps per bonus (default {FULL['steps']}, --quick "
                        f"{QUICK['steps']}); probes are scored at 0 and 1/16, 1/8, 1/4, 1/2, "
                        "1 of it")
    p.add_argument("--batch", type=int, default=32, help="windows per training step")
    p.add_argument("--probes", type=int, default=128, help="probe windows per group")
    p.add_argument("--margin", type=int, default=0,
                   help="state stream: first cell of the Zipf law (cells below it are seen "
                        "only as context; >= T-1 keeps windows off the wall)")
    p.add_argument("--quick", action="store_true",
                   help=f"the core bonuses {list(CORE)} only, {QUICK['steps']} steps")
    p.add_argument("--out", type=Path, default=None,
                   help="result JSON (default benchmarks/results/novelty.json, --quick: "
                        "novelty_quick.json); the markdown report goes beside it (.md)")
    p.add_argument("--render", type=Path, nargs="+", default=None, metavar="JSON",
                   help="only write the markdown report of existing results (several are "
                        "merged; the report goes to --out's .md, else beside the first)")
    return p


def eval_steps_for(steps: int) -> tuple[int, ...]:
    """0 and 1/16, 1/8, 1/4, 1/2, 1 of ``steps`` (deduplicated, at least 1)."""
    return tuple(sorted({0, *(max(1, steps // d) for d in (16, 8, 4, 2, 1))}))


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the diagnostic; write the JSON and the markdown report."""
    args = build_parser(prog).parse_args(argv)
    if args.render is not None:
        out = merge([json.loads(p.read_text()) for p in args.render])
        md = (args.out or args.render[0]).with_suffix(".md")
        md.write_text(report(out))
        print(f"wrote {md}")
        return 0
    given = argv if argv is not None else sys.argv[1:]
    if args.quick and "--variants" not in given:
        args.variants = list(QUICK["variants"])
    variants = expand_variants(args.variants)
    steps = args.steps if args.steps is not None else (
        QUICK["steps"] if args.quick else FULL["steps"])
    for name, v in (("seeds", args.seeds), ("steps", steps)):
        if v < 1:
            raise ValueError(f"--{name}={v} is invalid; allowed: an integer >= 1")
    plan = Plan(batch=args.batch, eval_steps=eval_steps_for(steps), per_group=args.probes)
    stream = StreamConfig(margin=args.margin)
    seeds = list(range(args.seeds))
    out_path = args.out or default_out(args.quick)
    command = " ".join(["mimex-jax bench novelty" if prog else "python -m "
                        "mimex_jax.bench.novelty", *given]).strip()
    from mimex_jax.bench.machine import machine

    header = {"benchmark": "novelty", "command": command, "git_commit": git_commit(),
              "mimex_jax": mimex_jax.__version__, "seeds": seeds,
              "stream": dataclasses.asdict(stream), "plan": dataclasses.asdict(plan),
              "obs_kinds": args.obs, "sweep_obs_kinds": args.sweep_obs,
              "rarities": args.rarity, "variants": variants, "machine": machine()}
    results: list[dict[str, Any]] = []
    t_start, c_start = time.perf_counter(), time.process_time()
    for i, name in enumerate(variants):
        v = VARIANTS[name]
        obs = args.obs if v.core else args.sweep_obs
        n = len(v.members) * len(obs) * len(args.rarity) * len(seeds)
        print(f"[{i + 1}/{len(variants)}] {name}: {n} members in one vmapped program",
              flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        arrays = run_variant(v, stream, plan, seeds, obs, args.rarity)
        secs = time.perf_counter() - t0
        entries = entries_of(v, arrays, obs, args.rarity, secs)
        for e in entries:  # CPU time of this process, all threads: comparable under load
            e["cpu_seconds_for_program"] = round(time.process_time() - c0, 1)
        results.extend(entries)
        print(f"  {secs:.0f}s; final AUC rare/frequent: " + "; ".join(
            f"{e['bonus'] + ' ' if len(v.members) > 1 else ''}{e['obs']}/{e['rarity']} "
            f"{_cell(e['final']['auc_rare'])}" for e in entries), flush=True)
        out = {**header, "complete": i + 1 == len(variants),
               "wall_seconds": round(time.perf_counter() - t_start, 1),
               "cpu_seconds": round(time.process_time() - c_start, 1), "results": results}
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(out, indent=1).replace("NaN", "null"))
    out_path.with_suffix(".md").write_text(report(out))
    print(f"wrote {out_path} and {out_path.with_suffix('.md')} "
          f"(wall {out['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
