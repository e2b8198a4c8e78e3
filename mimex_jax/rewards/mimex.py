"""MIMEx: the intrinsic reward is the reconstruction loss of a masked sequence model.

Architecture (exactly the original's):

* token masking (``mask_all=False``, the original ``BERT`` class): Linear(D -> embed)
  + sinusoidal positions; the kept tokens are gathered; an optional cls token (no
  position) is prepended; ``depth`` pre-LN blocks; LayerNorm. Decoder: Linear(embed ->
  dec); masked slots become one learned mask token; sinusoidal positions (dec width) on
  the non-cls tokens; ``decoder_depth`` blocks; LayerNorm; Linear(dec -> D); the cls
  output is dropped.
* element masking (``mask_all=True``, the original ``MAE`` class): masked entries of
  the ``T x D`` input set to 0; Linear(D -> dec) + positions (+ cls); ``decoder_depth``
  blocks; LayerNorm; Linear(dec -> D). No separate encoder.

Loss per sequence: squared error averaged over D, then over the masked tokens (token
masking) or over the masked elements (element masking). ``norm_loss`` normalises each
target token by its own mean and unbiased variance first. With ``n_mask > 1`` the loss
is averaged over independent mask draws.

Fast path: the encoder runs on a static number ``K`` of gathered token slots (the
most tokens any mask can keep), not on all ``T``; slots beyond a sequence's actual kept
count are excluded from attention by a key-padding mask. At T=5 and ratio 0.7 that is
2 encoder tokens (cls + 1) instead of 6. ``K = T`` is the general path; both give the
same numbers for every mask that keeps at most ``K`` tokens. The loss (reward and training
loss, :func:`mimex_loss`) also runs the decoder only for the masked positions (see
:class:`MaskedSequenceModel`); :func:`mimex_apply` returns predictions at every position.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mimex_jax import masks as masks_lib
from mimex_jax.distributed import data_axis_size
from mimex_jax.nn.dense import Dense
from mimex_jax.nn.transformer import Block, layer_norm, sinusoidal_table
from mimex_jax.rewards.base import (
    IntrinsicReward,
    Metrics,
    PRNGKey,
    RewardBatch,
    all_finite,
    check_finite,
    guard_update,
    integral_fields,
    is_concrete,
    require,
    require_array,
    static_config,
    with_leading_axes,
)

NORM_LOSS_EPS = 1e-6


@static_config
@dataclasses.dataclass(frozen=True)
class MIMExConfig:
    """Static configuration of the MIMEx reward model (shapes and structure).

    Defaults are the paper's: T=5, mask_ratio 0.7, embed 128, depth 4, 4 heads,
    decoder 64 wide / 2 heads / depth 1, cls token on, Adam lr 1e-4.

    ``mask_ratio`` and ``lr`` here are the *initial* values; both also live in the
    reward state (``MIMExState.mask_ratio``, the Adam hyperparameters) so a sweep can
    vmap over them. ``mask`` names the mask distribution (:mod:`mimex_jax.masks`;
    default ``uniform_token``, or ``element`` with ``mask_all``). ``encoder_slots`` is
    the static number of encoder token slots; None derives it from the mask
    distribution at ``mask_ratio`` -- set it (or lower ``mask_ratio`` to the smallest
    ratio of a sweep) when sweeping ratios below ``mask_ratio``.

    ``microbatch`` splits a large batch into chunks whose gradients are accumulated in
    a ``lax.scan`` (the result is the same single Adam step on the mean loss): on CPU,
    where fresh large intermediates cost more than the arithmetic, chunks of 2048
    sequences run about twice as fast. None = automatic (2048 on CPU, whole batch on
    GPU/TPU); 0 = never split.

    Two layout switches change no numbers (up to float rounding), only how XLA computes
    them: ``shared_cls`` feeds the cls token to the first encoder block as one row shared
    by all sequences (its LayerNorm and q/k/v computed once; False: a copy per sequence,
    as the original); the decoder places kept tokens term by term while T x K is at most
    ``unrolled_placement``, by one einsum above it.
    """

    seq_len: int
    feature_dim: int
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    decoder_embed_dim: int = 64
    decoder_num_heads: int = 2
    decoder_depth: int = 1
    mask_ratio: float = 0.7
    use_cls: bool = True
    norm_loss: bool = False
    mask_all: bool = False
    n_mask: int = 1
    lr: float = 1e-4
    mlp_ratio: float = 4.0
    mask: str | None = None
    encoder_slots: int | None = None
    microbatch: int | None = None
    shared_cls: bool = True
    unrolled_placement: int = 64

    def __post_init__(self) -> None:
        integral_fields(self, ("seq_len", "feature_dim", "embed_dim", "depth", "num_heads",
                               "decoder_embed_dim", "decoder_num_heads", "decoder_depth",
                               "n_mask"))
        require("mask_ratio", self.mask_ratio,
                isinstance(self.mask_ratio, (int, float)) and 0.0 < self.mask_ratio < 1.0,
                "a number in the open interval (0, 1)")
        require("lr", self.lr, isinstance(self.lr, (int, float)) and math.isfinite(self.lr)
                and self.lr > 0, "a finite number > 0")
        require("mlp_ratio", self.mlp_ratio,
                isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0, "a number > 0")
        for width, heads in (("embed_dim", "num_heads"),
                             ("decoder_embed_dim", "decoder_num_heads")):
            w, h = getattr(self, width), getattr(self, heads)
            require(heads, h, w % h == 0, f"a divisor of {width}={w}")
        for width in ("embed_dim", "decoder_embed_dim"):
            w = getattr(self, width)
            require(width, w, w % 2 == 0, "an even number (sinusoidal positions pair sin/cos)")
        require("norm_loss", self.norm_loss, not self.norm_loss or self.feature_dim >= 2,
                "False when feature_dim < 2 (the unbiased variance of one value is undefined)")
        dist = self.mask_distribution  # validates the name
        require("mask", self.mask, dist.elementwise == self.mask_all,
                "an element mask with mask_all=True, a token mask with mask_all=False")
        if self.microbatch is not None:
            integral_fields(self, ("microbatch",), minimum=0)
        if self.encoder_slots is not None:
            integral_fields(self, ("encoder_slots",), minimum=0)
            require("encoder_slots", self.encoder_slots, self.encoder_slots <= self.seq_len,
                    f"None or an integer in [0, seq_len={self.seq_len}]")
        integral_fields(self, ("unrolled_placement",), minimum=0)
        if self.mask_all:
            kept = masks_lib.kept_count(self.seq_len * self.feature_dim, self.mask_ratio)
            require("mask_ratio", self.mask_ratio, kept < self.seq_len * self.feature_dim,
                    "a ratio that masks at least one element")

    @property
    def mask_distribution(self) -> masks_lib.MaskDistribution:
        return masks_lib.get(self.mask or ("element" if self.mask_all else "uniform_token"))

    @property
    def num_slots(self) -> int:
        """Static encoder slot count K used by :func:`mimex` (see class docstring)."""
        if self.encoder_slots is not None:
            return self.encoder_slots
        return self.mask_distribution.max_kept(self.seq_len, self.mask_ratio)


def _place(onehot: jax.Array, kept: jax.Array, unrolled_limit: int = 64) -> jax.Array:
    """``tokens[b, p] = sum_j onehot[b, p, j] * kept[b, j]``: put slot j's token at its position.

    A one-hot select rather than a gather, so the backward pass is no scatter-add. For the
    few (position, slot) pairs of MIMEx's short sequences it is written out term by term:
    forward and backward are then elementwise sums, where the equivalent broadcast-and-
    reduce costs a slow small reduction per call on CPU.
    """
    t, k = onehot.shape[1], onehot.shape[2]
    if t * k > unrolled_limit:
        return jnp.einsum("btk,bkc->btc", onehot, kept)
    rows = []
    for p in range(t):
        row = onehot[:, p, 0, None] * kept[:, 0]
        for j in range(1, k):
            row = row + onehot[:, p, j, None] * kept[:, j]
        rows.append(row)
    return jnp.stack(rows, axis=1)


class MaskedSequenceModel(nn.Module):
    """The original's ``BERT`` (token masking) / ``MAE`` (``mask_all``) as one Flax module.

    ``__call__(seq [B,T,D], mask) -> pred [B,T,D]``; mask is ``[B,T]`` (True = masked)
    or ``[B,T,D]`` with ``mask_all``. ``num_slots`` is the static encoder slot count K.

    ``masked_only=True`` (token masking; what the loss and the reward use) computes the
    predictions of the masked positions only; rows of kept positions then hold
    predictions the loss never reads. The decoder's tokens are laid out as: a mask
    token at every position (rows shared by all sequences, projected once), then the
    cls and kept tokens as keys and values only. Mask tokens at kept positions are
    excluded as keys, so every masked position attends to exactly the tokens it
    attends to in the original; the cls and kept tokens' own outputs, which the loss
    does not use, are not computed.
    """

    cfg: MIMExConfig
    num_slots: int
    masked_only: bool = False

    def _blocks(self, prefix: str, n: int, dim: int, heads: int) -> list[Block]:
        return [Block(dim, heads, self.cfg.mlp_ratio, name=f"{prefix}_{i}") for i in range(n)]

    def _token(self, name: str, dim: int) -> jax.Array:
        return self.param(name, nn.initializers.normal(0.02), (1, 1, dim))

    def _dense(self, features: int, name: str) -> Dense:
        return Dense(features, name=name)

    @nn.compact
    def __call__(self, seq: jax.Array, mask: jax.Array) -> jax.Array:
        cfg = self.cfg
        batch, t, d = seq.shape
        dec = cfg.decoder_embed_dim
        dec_pe = jnp.asarray(sinusoidal_table(t, dec))

        if cfg.mask_all:
            x = self._dense(dec, "encoder_embed")(seq * (~mask).astype(seq.dtype)) + dec_pe
            if cfg.use_cls:
                cls = jnp.broadcast_to(self._token("cls_token", dec), (batch, 1, dec))
                x = jnp.concatenate([cls, x], axis=1)
            for blk in self._blocks("decoder_blocks", cfg.decoder_depth, dec,
                                    cfg.decoder_num_heads):
                x = blk(x)
            x = x[:, 1:] if cfg.use_cls else x  # the cls output is not predicted
        else:
            e = cfg.embed_dim
            k = self.num_slots
            # Kept tokens first, in position order; slot j is real iff j < #kept.
            order = jnp.argsort(mask, axis=-1, stable=True)
            slots = order[:, :k]
            kept_valid = ~jnp.take_along_axis(mask, slots, axis=-1)
            # Gather the raw inputs first: the per-token Linear then runs on K tokens
            # instead of T, and no gradient has to flow back through the gather.
            kept_seq = jnp.take_along_axis(seq, slots[..., None], axis=1)
            pe = jnp.asarray(sinusoidal_table(t, e))[slots]
            x = self._dense(e, "encoder_embed")(kept_seq) + pe
            blocks = self._blocks("blocks", cfg.depth, e, cfg.num_heads)
            if cfg.use_cls:
                # The cls token is the same for every sequence: in the first block its
                # normalised value and q/k/v are computed once (``shared`` rows).
                valid = jnp.concatenate([jnp.ones((batch, 1), bool), kept_valid], axis=1)
                cls = self._token("cls_token", e)
                if cfg.shared_cls:
                    x = blocks[0](x, valid, shared=cls[0])
                    blocks = blocks[1:]
                else:
                    x = jnp.concatenate([jnp.broadcast_to(cls, (batch, 1, e)), x], axis=1)
            else:
                valid = kept_valid
            for blk in blocks:
                x = blk(x, valid)
            x = layer_norm("norm")(x)
            x = self._dense(dec, "decoder_embed")(x)
            mask_token = self._token("mask_token", dec).astype(x.dtype)
            blocks = self._blocks("decoder_blocks", cfg.decoder_depth, dec,
                                  cfg.decoder_num_heads)
            if self.masked_only:
                x = self._decode_masked(blocks, x, mask_token[0, 0] + dec_pe, dec_pe[slots],
                                        mask, valid)
            else:
                x = self._decode_all(blocks, x, mask_token, dec_pe, order, mask)
        x = layer_norm("decoder_norm")(x)
        return self._dense(d, "decoder_pred")(x)

    def _decode_masked(self, blocks: list[Block], x: jax.Array, mask_rows: jax.Array,
                       kept_pe: jax.Array, mask: jax.Array, valid: jax.Array) -> jax.Array:
        """Decoder outputs ``[B,T,dec]`` whose rows at the masked positions are exact."""
        t = mask_rows.shape[0]
        x = jnp.concatenate([x[:, :1], x[:, 1:] + kept_pe], axis=1) if self.cfg.use_cls \
            else x + kept_pe
        # Keys: the mask token at each position (valid where masked), then cls and kept.
        key_valid = jnp.concatenate([mask, valid], axis=1)
        last = len(blocks) - 1
        x = blocks[0](x, key_valid, shared=mask_rows, queries=t if last == 0 else None)
        for i, blk in enumerate(blocks[1:], start=1):
            x = blk(x, key_valid, queries=t if i == last else None)
        return x

    def _decode_all(self, blocks: list[Block], x: jax.Array, mask_token: jax.Array,
                    dec_pe: jax.Array, order: jax.Array, mask: jax.Array) -> jax.Array:
        """The original's decoder: kept tokens back at their positions, mask tokens elsewhere."""
        cfg = self.cfg
        batch, t = mask.shape
        k = self.num_slots
        kept_tokens = x[:, 1:] if cfg.use_cls else x
        if k > 0:
            # Position p's slot index is its rank in `order` (< #kept when p is kept).
            slot_of_pos = jnp.argsort(order, axis=-1)
            onehot = (slot_of_pos[..., None] == jnp.arange(k)).astype(kept_tokens.dtype)
            tokens = _place(onehot, kept_tokens, cfg.unrolled_placement)
            tokens = jnp.where(mask[..., None], mask_token, tokens)
        else:
            tokens = jnp.broadcast_to(mask_token, (batch, t, x.shape[-1]))
        tokens = tokens + dec_pe
        x = jnp.concatenate([x[:, :1], tokens], axis=1) if cfg.use_cls else tokens
        for blk in blocks:
            x = blk(x)
        # Drop the cls output before the (per-token) head: identical, and cheaper.
        return x[:, 1:] if cfg.use_cls else x


# ----------------------------------------------------------------------------- loss


def _target(cfg: MIMExConfig, seq: jax.Array) -> jax.Array:
    if not cfg.norm_loss:
        return seq
    mean = jnp.mean(seq, axis=-1, keepdims=True)
    var = jnp.var(seq, axis=-1, keepdims=True, ddof=1)
    return (seq - mean) / jnp.sqrt(var + NORM_LOSS_EPS)


def _per_sequence_loss(cfg: MIMExConfig, seq: jax.Array, pred: jax.Array,
                       mask: jax.Array) -> jax.Array:
    err = jnp.square(pred - _target(cfg, seq))
    m = mask.astype(err.dtype)
    if cfg.mask_all:
        return jnp.sum(err * m, axis=(-2, -1)) / jnp.sum(m, axis=(-2, -1))
    return jnp.sum(jnp.mean(err, axis=-1) * m, axis=-1) / jnp.sum(m, axis=-1)


def _check_inputs(cfg: MIMExConfig, seq: jax.Array, mask: jax.Array | None = None) -> None:
    """Shape checks always (shapes are static); value checks when inputs are concrete."""
    seq_shape = tuple(seq.shape)
    if len(seq_shape) != 3:
        raise ValueError(f"seq: shape {seq_shape} is invalid; allowed: [B, T, D]")
    if seq_shape[1] != cfg.seq_len:
        raise ValueError(
            f"seq: T={seq_shape[1]} differs from the config; allowed: seq_len={cfg.seq_len}")
    if seq_shape[2] != cfg.feature_dim:
        raise ValueError(
            f"seq: D={seq_shape[2]} differs from the config; allowed: "
            f"feature_dim={cfg.feature_dim}")
    check_finite("seq", seq)
    if mask is None:
        return
    per_draw = seq_shape if cfg.mask_all else seq_shape[:2]
    if mask.dtype != jnp.bool_ or tuple(mask.shape[-len(per_draw):]) != per_draw or \
            mask.ndim not in (len(per_draw), len(per_draw) + 1):
        raise ValueError(
            f"mask: {mask.dtype}{list(mask.shape)} is invalid; allowed: bool {list(per_draw)} "
            f"or bool [n_mask, *{list(per_draw)}] (True = masked)")
    if is_concrete(mask):
        m = np.asarray(mask)
        axes = (-2, -1) if cfg.mask_all else (-1,)
        empty = ~np.any(m, axis=axes)
        if np.any(empty):
            raise ValueError(
                f"mask: {int(empty.sum())} sequence(s) have no masked entry; allowed: masks "
                "with at least one True per sequence (the loss averages over masked entries)")


def _static_slots(cfg: MIMExConfig, mask: jax.Array, num_slots: int | None) -> int:
    if num_slots is not None:
        return num_slots
    if cfg.mask_all:
        return cfg.seq_len
    if is_concrete(mask):
        return int(np.max(np.sum(~np.asarray(mask), axis=-1)))
    return cfg.encoder_slots if cfg.encoder_slots is not None else cfg.seq_len


def mimex_apply(
    params: Any, cfg: MIMExConfig, seq: jax.Array, mask: jax.Array,
    *, num_slots: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Per-sequence loss ``[B]`` and predictions (at every position) for given masks.

    ``mask`` is ``[B,T]`` (``[B,T,D]`` with ``mask_all``), True = masked, or has a
    leading ``n_mask`` axis, in which case predictions are ``[n_mask,B,T,D]`` and the
    loss is averaged over the draws. ``num_slots`` is the static encoder slot count;
    by default it is the exact kept maximum of a concrete mask, else ``encoder_slots``
    from the config, else ``T`` (always correct, slower).
    """
    _check_inputs(cfg, seq, mask)
    return _apply_jit(params, cfg, seq, mask, _static_slots(cfg, mask, num_slots))


def _apply(params: Any, cfg: MIMExConfig, seq: jax.Array, mask: jax.Array,
           num_slots: int, masked_only: bool = False) -> tuple[jax.Array, jax.Array]:
    """Loss and predictions; ``masked_only`` predicts the masked positions only (the
    loss is the same; see :class:`MaskedSequenceModel`)."""
    model = MaskedSequenceModel(cfg, num_slots, masked_only=masked_only and not cfg.mask_all)
    per_draw_ndim = 3 if cfg.mask_all else 2

    def one(m: jax.Array) -> tuple[jax.Array, jax.Array]:
        pred = model.apply({"params": params}, seq, m)
        return _per_sequence_loss(cfg, seq, pred, m), pred

    if mask.ndim == per_draw_ndim:
        return one(mask)
    losses, preds = jax.lax.map(one, mask) if mask.shape[0] > 1 else jax.vmap(one)(mask)
    return jnp.mean(losses, axis=0), preds


def _loss(params: Any, cfg: MIMExConfig, seq: jax.Array, mask: jax.Array,
          num_slots: int) -> jax.Array:
    """Per-sequence loss ``[B]``: the reward and the training loss."""
    return _apply(params, cfg, seq, mask, num_slots, masked_only=True)[0]


# Compiled once per (config, slot count, shapes); inlined when called under a user's jit.
_apply_jit = jax.jit(_apply, static_argnums=(1, 4, 5))
_loss_jit = jax.jit(_loss, static_argnums=(1, 4))


def mimex_loss(
    params: Any, cfg: MIMExConfig, seq: jax.Array, mask: jax.Array,
    *, num_slots: int | None = None,
) -> jax.Array:
    """Per-sequence MIMEx loss ``[B]`` (the intrinsic reward); arguments as
    :func:`mimex_apply`. Computes the masked positions' predictions only."""
    _check_inputs(cfg, seq, mask)
    return _loss_jit(params, cfg, seq, mask, _static_slots(cfg, mask, num_slots))


@functools.partial(jax.jit, static_argnums=1)
def init_params(key: PRNGKey, cfg: MIMExConfig) -> Any:
    """Fresh parameters with the original's initialisation (xavier-uniform, zero bias,
    LayerNorm 1/0, cls and mask tokens N(0, 0.02))."""
    t, d = cfg.seq_len, cfg.feature_dim
    seq = jnp.zeros((1, t, d), jnp.float32)
    shape = (1, t, d) if cfg.mask_all else (1, t)
    mask = jnp.ones(shape, bool)
    return MaskedSequenceModel(cfg, cfg.num_slots).init(key, seq, mask)["params"]


# ------------------------------------------------------------------- sizing for sweeps


def slots_needed(cfg: MIMExConfig, ratios: Sequence[float]) -> int:
    """Most tokens any of ``ratios`` can keep under ``cfg``'s mask distribution.

    The trainer holds the ratio as float32 while the static bound is computed in float64;
    the two can disagree by one token (e.g. T=10, 0.9: float64 keeps 0, float32 keeps 1),
    so both are covered.
    """
    dist = cfg.mask_distribution
    return max(max(dist.max_kept(cfg.seq_len, float(r)),
                   dist.max_kept(cfg.seq_len, float(np.float32(r)))) for r in ratios)


def size_for_ratios(settings: Mapping[str, Any], seq_len: int, ratios: Sequence[float]
                    ) -> dict[str, Any]:
    """MIMEx settings whose encoder has a token slot for every mask ratio in ``ratios``.

    The one slot-sizing rule: the static ``mask_ratio`` (which fixes the encoder's slot
    count) is lowered to the smallest ratio, and ``encoder_slots`` is raised where float32
    rounding of a traced ratio keeps one token more (:func:`slots_needed`). Settings that
    already cover every ratio come back unchanged.
    """
    kw = dict(settings)
    lowest = min(float(r) for r in ratios)
    if lowest < kw.get("mask_ratio", MIMExConfig.mask_ratio):
        kw["mask_ratio"] = lowest
    cfg = MIMExConfig(seq_len=seq_len, feature_dim=2, **kw)  # the width does not matter here
    if not cfg.mask_all:
        need = slots_needed(cfg, ratios)
        if need > cfg.num_slots:
            kw["encoder_slots"] = need
    return kw


# ----------------------------------------------------------------------------- reward

CPU_MICROBATCH = 2048


def microbatch_size(cfg: MIMExConfig, batch: int) -> int:
    """Static chunk size for a batch: the largest divisor of ``batch`` <= the microbatch.

    Under a data-parallel mesh (:mod:`mimex_jax.distributed`) the batch is not split: its
    consecutive chunks would each live on one device and run one device at a time.
    """
    limit = cfg.microbatch
    if limit is None:
        limit = CPU_MICROBATCH if jax.default_backend() == "cpu" else 0
    if data_axis_size() > 1:
        limit = 0
    if limit == 0 or batch <= limit:
        return batch
    return max(d for d in range(1, limit + 1) if batch % d == 0)


def _chunks(x: jax.Array, chunk: int, axis: int) -> jax.Array:
    """Split ``axis`` of size ``n * chunk`` into a new leading axis ``n`` (chunks)."""
    x = jnp.moveaxis(x, axis, 0)
    x = x.reshape((x.shape[0] // chunk, chunk) + x.shape[1:])
    return jnp.moveaxis(x, 1, axis + 1)


class MIMExState(NamedTuple):
    """Reward-model state: params, Adam state (lr inside, sweepable) and the mask ratio."""

    params: Any
    opt_state: Any
    mask_ratio: jax.Array


def make_optimizer(lr: float) -> optax.GradientTransformation:
    """Adam (betas 0.9/0.999, eps 1e-8, no weight decay) with the lr held in its state."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr)


def mimex(cfg: MIMExConfig) -> IntrinsicReward:
    """The MIMEx intrinsic reward: ``update`` scores a batch of sequences, then takes one
    Adam step on the mean of those scores (as the original).

    ``RewardBatch.seq`` is ``[B, T, D]``. Masks come from ``cfg.mask_distribution`` at
    ``state.mask_ratio`` (n_mask draws per call). Metrics: ``loss``, ``reward_std``,
    ``nonfinite_input`` (1 if the batch held NaN/inf; the step was then skipped) and
    ``slot_overflow`` (1 if a mask kept more tokens than the static encoder slots,
    which happens only when a swept ratio is below ``cfg.mask_ratio``).
    """
    dist = cfg.mask_distribution
    num_slots = cfg.num_slots
    optimizer = make_optimizer(cfg.lr)

    def draw(state: MIMExState, seq: jax.Array, key: PRNGKey) -> jax.Array:
        shape = seq.shape if cfg.mask_all else seq.shape[:2]
        if cfg.n_mask == 1:
            return dist(key, shape, state.mask_ratio)
        return jnp.stack([dist(k, shape, state.mask_ratio)
                          for k in jax.random.split(key, cfg.n_mask)])

    def seq_of(batch: RewardBatch) -> jax.Array:
        seq = require_array(batch, "seq", "mimex")
        _check_inputs(cfg, seq)
        return seq

    def init(key: PRNGKey, batch: RewardBatch | None = None) -> MIMExState:
        if batch is not None and batch.seq is not None:
            _check_inputs(cfg, batch.seq)
        params = init_params(key, cfg)
        return MIMExState(params, optimizer.init(params), jnp.asarray(cfg.mask_ratio, jnp.float32))

    @jax.jit
    def _reward(state: MIMExState, seq: jax.Array, key: PRNGKey) -> jax.Array:
        mask = draw(state, seq, key)
        chunk = microbatch_size(cfg, seq.shape[0])
        if chunk == seq.shape[0]:
            return _loss(state.params, cfg, seq, mask, num_slots)
        xs = (_chunks(seq, chunk, 0), _chunks(mask, chunk, 1 if cfg.n_mask > 1 else 0))
        per = jax.lax.map(lambda x: _loss(state.params, cfg, x[0], x[1], num_slots), xs)
        return per.reshape(-1)

    @jax.jit
    def _update(state: MIMExState, seq: jax.Array, key: PRNGKey
                ) -> tuple[MIMExState, jax.Array, Metrics]:
        mask = draw(state, seq, key)
        total = seq.shape[0]
        chunk = microbatch_size(cfg, total)

        def sum_loss(params: Any, s: jax.Array, m: jax.Array) -> tuple[jax.Array, jax.Array]:
            per_seq = _loss(params, cfg, s, m, num_slots)
            return jnp.sum(per_seq) / total, per_seq

        grad_fn = jax.value_and_grad(sum_loss, has_aux=True)
        if chunk == total:
            (loss, per_seq), grads = grad_fn(state.params, seq, mask)
        else:
            # Same gradient of the mean loss, accumulated chunk by chunk.
            def body(acc: Any, x: tuple[jax.Array, jax.Array]) -> tuple[Any, jax.Array]:
                (_, per), g = grad_fn(state.params, x[0], x[1])
                return jax.tree.map(jnp.add, acc, g), per

            xs = (_chunks(seq, chunk, 0), _chunks(mask, chunk, 1 if cfg.n_mask > 1 else 0))
            zeros = jax.tree.map(jnp.zeros_like, state.params)
            grads, per_seq = jax.lax.scan(body, zeros, xs)
            per_seq = per_seq.reshape(-1)
            loss = jnp.mean(per_seq)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new = MIMExState(optax.apply_updates(state.params, updates), opt_state, state.mask_ratio)
        ok = all_finite(seq)
        kept = jnp.zeros((), jnp.int32) if cfg.mask_all else jnp.sum(~mask, axis=-1)
        metrics = {
            "loss": loss,
            "reward_std": jnp.std(per_seq),
            "nonfinite_input": (~ok).astype(jnp.float32),
            "slot_overflow": jnp.any(kept > num_slots).astype(jnp.float32),
        }
        return guard_update(ok, new, state), per_seq, metrics

    def reward(state: MIMExState, batch: RewardBatch, key: PRNGKey) -> jax.Array:
        return _reward(state, seq_of(batch), key)

    def update(state: MIMExState, batch: RewardBatch, key: PRNGKey
               ) -> tuple[MIMExState, jax.Array, Metrics]:
        return _update(state, seq_of(batch), key)

    return with_leading_axes(IntrinsicReward(init, reward, update))
