"""MIMEx reward: fast path, jit/grad/vmap, sweeps over mask ratios, validation."""

from __future__ import annotations

import dataclasses
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimex_jax import masks
from mimex_jax.rewards import (
    MIMExConfig,
    RewardBatch,
    init_mimex_params,
    mimex,
    mimex_apply,
    mimex_loss,
    normalize_rewards,
)

SMALL = dict(seq_len=5, feature_dim=6, embed_dim=16, depth=1, num_heads=2,
             decoder_embed_dim=8, decoder_num_heads=2)


@pytest.fixture(scope="module")
def seq() -> jax.Array:
    return jax.random.normal(jax.random.key(1), (12, 5, 6))


@pytest.mark.parametrize("use_cls", [True, False])
@pytest.mark.parametrize("dist", ["uniform_token", "bernoulli_token", "last_token", "full"])
def test_gathered_slots_equal_full_sequence(seq, use_cls: bool, dist: str) -> None:
    cfg = MIMExConfig(**SMALL, use_cls=use_cls, mask=dist)
    params = init_mimex_params(jax.random.key(0), cfg)
    mask = masks.get(dist)(jax.random.key(2), seq.shape[:2], 0.7)
    k = cfg.mask_distribution.max_kept(5, 0.7)
    fast_loss, fast_pred = mimex_apply(params, cfg, seq, mask, num_slots=k)
    full_loss, full_pred = mimex_apply(params, cfg, seq, mask, num_slots=5)
    np.testing.assert_allclose(fast_loss, full_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast_pred, full_pred, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(fast_loss))


@pytest.mark.parametrize("use_cls,decoder_depth,dist,slots", [
    (True, 1, "uniform_token", None), (False, 1, "uniform_token", None),
    (True, 2, "bernoulli_token", None), (False, 2, "last_token", 5),
    (True, 1, "full", None), (True, 3, "uniform_token", 5),
])
def test_masked_only_loss_equals_full_model(seq, use_cls: bool, decoder_depth: int, dist: str,
                                            slots: int | None) -> None:
    """The loss path (decoder run for the masked positions only) gives the full model's
    loss and gradient, with padded encoder slots and deeper decoders too."""
    cfg = MIMExConfig(**SMALL, use_cls=use_cls, decoder_depth=decoder_depth, mask=dist)
    params = init_mimex_params(jax.random.key(0), cfg)
    mask = masks.get(dist)(jax.random.key(2), seq.shape[:2], 0.7)
    k = slots if slots is not None else cfg.mask_distribution.max_kept(5, 0.7)

    # Loss values and gradients from one program per path (the per-sequence loss as aux).
    def full(p):
        loss = mimex_apply(p, cfg, seq, mask, num_slots=k)[0]
        return jnp.mean(loss ** 2), loss

    def fast(p):
        loss = mimex_loss(p, cfg, seq, mask, num_slots=k)
        return jnp.mean(loss ** 2), loss

    (_, l_full), g_full = jax.jit(jax.value_and_grad(full, has_aux=True))(params)
    (_, l_fast), g_fast = jax.jit(jax.value_and_grad(fast, has_aux=True))(params)
    np.testing.assert_allclose(l_fast, l_full, rtol=1e-5, atol=1e-6)
    for path, a in jax.tree_util.tree_leaves_with_path(g_fast):
        b = g_full
        for key in path:
            b = b[key.key]
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6, err_msg=str(path))
    if dist != "full":  # (with nothing kept, the encoder gets no gradient at all)
        assert all(float(jnp.abs(a).max()) > 0 for a in jax.tree.leaves(g_fast))


def test_shared_cls_row_equals_copied_cls(seq) -> None:
    cfg = MIMExConfig(**{**SMALL, "depth": 2})
    params = init_mimex_params(jax.random.key(0), cfg)
    mask = masks.uniform_token(jax.random.key(2), (12, 5), 0.7)
    module = sys.modules["mimex_jax.rewards.mimex"]
    shared = module.MaskedSequenceModel(cfg, 1).apply({"params": params}, seq, mask)
    copied_cfg = dataclasses.replace(cfg, shared_cls=False)
    copied = module.MaskedSequenceModel(copied_cfg, 1).apply({"params": params}, seq, mask)
    # float32 sums in another order (one XLA thread vs several) differ by ~1e-6 on O(1)
    # outputs after two blocks; a wrong cls row differs by O(0.1).
    np.testing.assert_allclose(shared, copied, rtol=1e-5, atol=1e-5)


def test_kept_tokens_influence_prediction_masked_do_not(seq) -> None:
    # Changing a masked token's content must not change the prediction (it is hidden);
    # changing a kept token's content must.
    cfg = MIMExConfig(**SMALL)
    params = init_mimex_params(jax.random.key(0), cfg)
    mask = jnp.array([[True, False, True, True, True]] * seq.shape[0])
    _, pred = mimex_apply(params, cfg, seq, mask)
    _, pred_hidden = mimex_apply(params, cfg, seq.at[:, 0].add(5.0), mask)
    _, pred_kept = mimex_apply(params, cfg, seq.at[:, 1].add(5.0), mask)
    np.testing.assert_allclose(pred, pred_hidden, atol=1e-6)
    assert np.abs(pred - pred_kept).max() > 1e-3


def test_n_mask_averages_over_draws(seq) -> None:
    cfg = MIMExConfig(**SMALL, n_mask=3)
    params = init_mimex_params(jax.random.key(0), cfg)
    m = jnp.stack([masks.uniform_token(k, (12, 5), 0.7) for k in jax.random.split(
        jax.random.key(5), 3)])
    loss, pred = mimex_apply(params, cfg, seq, m)
    single = [mimex_loss(params, cfg, seq, m[i]) for i in range(3)]
    assert pred.shape == (3, 12, 5, 6)
    np.testing.assert_allclose(loss, np.mean(single, axis=0), rtol=1e-6)


def test_grad_and_jit(seq) -> None:
    cfg = MIMExConfig(**SMALL)
    params = init_mimex_params(jax.random.key(0), cfg)
    mask = masks.uniform_token(jax.random.key(2), (12, 5), 0.7)
    f = lambda p: jnp.mean(mimex_loss(p, cfg, seq, mask, num_slots=1))
    g = jax.jit(jax.grad(f))(params)
    norms = jax.tree.map(lambda x: float(jnp.linalg.norm(x)), g)
    assert all(np.isfinite(v) for v in jax.tree.leaves(norms))
    # Every parameter receives gradient, cls and mask tokens included.
    assert all(v > 0 for v in jax.tree.leaves(norms)), norms
    # Finite-difference check of the gradient along a random direction.
    d = jax.tree.map(lambda x: jax.random.normal(jax.random.key(9), x.shape), params)
    eps = 1e-4
    with jax.enable_x64(True):
        f64 = lambda p: jnp.mean(mimex_loss(p, cfg, jnp.asarray(seq, jnp.float64), mask))
        shift = lambda s: jax.tree.map(
            lambda p, v: jnp.asarray(p, jnp.float64) + s * eps * jnp.asarray(v, jnp.float64),
            params, d)
        fd = (f64(shift(1.0)) - f64(shift(-1.0))) / (2 * eps)
    analytic = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(d),
                                                    strict=True))
    np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-3)


def test_update_returns_pre_update_loss_and_reduces_loss(seq) -> None:
    cfg = MIMExConfig(**SMALL, lr=1e-3)
    fn = mimex(cfg)
    batch = RewardBatch(seq=seq)
    state = fn.init(jax.random.key(0), batch)
    key = jax.random.key(3)
    r_before = fn.reward(state, batch, key)
    update = jax.jit(fn.update)
    new_state, r, metrics = update(state, batch, key)
    np.testing.assert_allclose(r, r_before, rtol=1e-6)
    assert r.shape == (12,)
    np.testing.assert_allclose(metrics["loss"], np.mean(r), rtol=1e-6)
    for _ in range(30):
        new_state, _, _ = update(new_state, batch, key)
    assert float(jnp.mean(fn.reward(new_state, batch, key))) < 0.8 * float(jnp.mean(r))


def test_update_is_deterministic(seq) -> None:
    fn = mimex(MIMExConfig(**SMALL))
    batch = RewardBatch(seq=seq)
    runs = []
    for _ in range(2):
        s = fn.init(jax.random.key(0), batch)
        s, r, _ = jax.jit(fn.update)(s, batch, jax.random.key(1))
        runs.append((r, s.params))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    jax.tree.map(np.testing.assert_array_equal, runs[0][1], runs[1][1])


def test_vmap_over_mask_ratios_and_seeds_matches_single_runs(seq) -> None:
    """One vmapped call over 4 mask ratios x 4 seeds equals 16 separate static runs."""
    ratios = [0.3, 0.5, 0.7, 0.9]
    # The static config's ratio is the sweep's smallest, so K covers every member.
    sweep_cfg = MIMExConfig(**SMALL, mask_ratio=min(ratios))
    fn = mimex(sweep_cfg)
    batch = RewardBatch(seq=seq)

    def member(ratio, seed):
        init_key, mask_key = jax.random.split(jax.random.key(seed))
        state = fn.init(init_key, batch)._replace(mask_ratio=ratio)
        state, r, metrics = fn.update(state, batch, mask_key)
        return r, fn.reward(state, batch, mask_key), metrics["slot_overflow"]

    r_grid = jnp.repeat(jnp.array(ratios), 4)
    s_grid = jnp.tile(jnp.arange(4), 4)
    r_all, after_all, overflow = jax.jit(jax.vmap(member))(r_grid, s_grid)
    assert r_all.shape == (16, 12)
    assert float(overflow.max()) == 0.0
    # The smallest ratio (same static slots as the sweep) and the largest (fewest slots)
    # against separate programs; every ratio runs in the vmapped call above.
    for j, ratio in ((0, ratios[0]), (3, ratios[3])):
        # A separate program per ratio, with the ratio static (fewest encoder slots).
        single = mimex(dataclasses.replace(sweep_cfg, mask_ratio=ratio))
        for seed in range(4):
            i = 4 * j + seed
            init_key, mask_key = jax.random.split(jax.random.key(seed))
            st, r, _ = single.update(single.init(init_key, batch), batch, mask_key)
            np.testing.assert_allclose(r_all[i], r, rtol=1e-5, atol=1e-6)
            # Post-update loss on the same masks (parameters are not compared entry by
            # entry: the attention key bias has an exactly-zero gradient in exact
            # arithmetic, and Adam's first step turns its float noise into +-lr steps).
            np.testing.assert_allclose(after_all[i], single.reward(st, batch, mask_key),
                                       rtol=1e-4, atol=1e-6)
    # Different ratios really give different rewards.
    assert not np.allclose(r_all[0], r_all[12])


def test_learning_rate_is_sweepable(seq) -> None:
    fn = mimex(MIMExConfig(**SMALL))
    batch = RewardBatch(seq=seq)
    state = fn.init(jax.random.key(0), batch)

    def after(lr):
        s = state._replace(opt_state=state.opt_state._replace(
            hyperparams={**state.opt_state.hyperparams, "learning_rate": lr}))
        s, _, _ = fn.update(s, batch, jax.random.key(1))
        return jnp.mean(fn.reward(s, batch, jax.random.key(1)))

    vals = jax.vmap(after)(jnp.array([0.0, 1e-2]))
    base = jnp.mean(fn.reward(state, batch, jax.random.key(1)))
    np.testing.assert_allclose(vals[0], base, rtol=1e-6)
    assert vals[1] < vals[0]


def test_mask_all_variant_update(seq) -> None:
    fn = mimex(MIMExConfig(**SMALL, mask_all=True, n_mask=2))
    batch = RewardBatch(seq=seq)
    state = fn.init(jax.random.key(0), batch)
    _, r, metrics = jax.jit(fn.update)(state, batch, jax.random.key(1))
    assert r.shape == (12,) and np.all(np.isfinite(r))
    assert "decoder_blocks_0" in state.params and "blocks_0" not in state.params


def test_normalized_rewards_have_unit_running_scale(seq) -> None:
    fn = normalize_rewards(mimex(MIMExConfig(**SMALL)))
    batch = RewardBatch(seq=seq * 10)
    state = fn.init(jax.random.key(0), batch)
    state, r, metrics = fn.update(state, batch, jax.random.key(1))
    raw = r * metrics["reward_running_std"]
    np.testing.assert_allclose(np.std(r), np.std(raw) / float(metrics["reward_running_std"]),
                               rtol=1e-4)
    assert 0.3 < float(np.std(r)) < 3.0


def test_centred_rewards_subtract_the_running_or_batch_mean(seq) -> None:
    """``center="running"``: plain normalisation shifted by the running mean over the running
    std, so a batch that is all there is has mean ~0; ``"batch"``: shifted by the batch's
    own mean, exactly zero-mean; scoring without an update uses the same shifts."""
    plain, running, batch_c = (normalize_rewards(mimex(MIMExConfig(**SMALL)), center=c)
                               for c in ("none", "running", "batch"))
    batch = RewardBatch(seq=seq * 10)
    key = jax.random.key(0)
    s_p, r_p, _ = plain.update(plain.init(key, batch), batch, jax.random.key(1))
    s_c, r_c, m = running.update(running.init(key, batch), batch, jax.random.key(1))
    s_b, r_b, _ = batch_c.update(batch_c.init(key, batch), batch, jax.random.key(1))
    shift = float(s_c.stats.mean) / float(m["reward_running_std"])
    assert float(np.mean(r_p)) > 1.0  # the plain bonus is a big positive constant
    np.testing.assert_allclose(np.asarray(r_c), np.asarray(r_p) - shift, rtol=1e-4, atol=1e-4)
    assert abs(float(np.mean(r_c))) < 0.05
    np.testing.assert_allclose(np.asarray(r_b), np.asarray(r_p) - np.mean(r_p), atol=1e-4)
    assert abs(float(np.mean(r_b))) < 1e-5
    scored = running.reward(s_c, batch, jax.random.key(1))
    np.testing.assert_allclose(np.mean(scored), np.mean(r_c), atol=0.3)
    assert abs(float(np.mean(batch_c.reward(s_b, batch, jax.random.key(1))))) < 1e-5
    with pytest.raises(ValueError, match="center='yes' is invalid"):
        normalize_rewards(mimex(MIMExConfig(**SMALL)), center="yes")


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("field,value,match", [
    ("mask_ratio", 0.0, "mask_ratio=0.0 is invalid; allowed: a number in the open interval"),
    ("mask_ratio", 1.0, "mask_ratio=1.0 is invalid"),
    ("mask_ratio", 1.5, "mask_ratio=1.5 is invalid"),
    ("seq_len", 0, "seq_len=0 is invalid; allowed: an integer >= 1"),
    ("num_heads", 3, "num_heads=3 is invalid; allowed: a divisor of embed_dim=16"),
    ("decoder_num_heads", 3, "decoder_num_heads=3 is invalid; allowed: a divisor of "
                             "decoder_embed_dim=8"),
    ("n_mask", 0, "n_mask=0 is invalid"),
    ("lr", -1.0, "lr=-1.0 is invalid"),
    ("mask", "nope", "mask='nope' is unknown"),
    ("encoder_slots", 9, "encoder_slots=9 is invalid"),
])
def test_config_validation(field: str, value, match: str) -> None:
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        MIMExConfig(**{**SMALL, field: value})


def test_element_mask_requires_mask_all() -> None:
    with pytest.raises(ValueError, match="mask="):
        MIMExConfig(**SMALL, mask="element")


def test_input_validation(seq) -> None:
    cfg = MIMExConfig(**SMALL)
    params = init_mimex_params(jax.random.key(0), cfg)
    mask = masks.uniform_token(jax.random.key(0), (12, 5), 0.7)
    with pytest.raises(ValueError, match="D=7 differs from the config; allowed: feature_dim=6"):
        mimex_loss(params, cfg, jnp.zeros((12, 5, 7)), mask)
    with pytest.raises(ValueError, match="T=4 differs"):
        mimex_loss(params, cfg, jnp.zeros((12, 4, 6)), mask[:, :4])
    with pytest.raises(ValueError, match="no masked entry"):
        mimex_loss(params, cfg, seq, mask.at[3].set(False))
    with pytest.raises(ValueError, match="mask: "):
        mimex_loss(params, cfg, seq, mask.astype(jnp.float32))
    with pytest.raises(ValueError, match="non-finite"):
        mimex_loss(params, cfg, seq.at[0, 0, 0].set(jnp.nan), mask)
    fn = mimex(cfg)
    state = fn.init(jax.random.key(0))
    with pytest.raises(ValueError, match="non-finite"):
        fn.update(state, RewardBatch(seq=seq.at[1, 2, 3].set(jnp.inf)), jax.random.key(0))
    with pytest.raises(ValueError, match="feature_dim=6"):
        jax.jit(fn.update)(state, RewardBatch(seq=jnp.zeros((2, 5, 3))), jax.random.key(0))
    with pytest.raises(ValueError, match="RewardBatch.seq is required"):
        fn.update(state, RewardBatch(), jax.random.key(0))


def test_nonfinite_input_under_jit_skips_update_and_reports(seq) -> None:
    fn = mimex(MIMExConfig(**SMALL))
    state = fn.init(jax.random.key(0))
    bad = RewardBatch(seq=seq.at[0, 0, 0].set(jnp.nan))
    new, _, metrics = jax.jit(fn.update)(state, bad, jax.random.key(1))
    assert float(metrics["nonfinite_input"]) == 1.0
    jax.tree.map(np.testing.assert_array_equal, new.params, state.params)
    _, _, ok_metrics = jax.jit(fn.update)(state, RewardBatch(seq=seq), jax.random.key(1))
    assert float(ok_metrics["nonfinite_input"]) == 0.0


@pytest.mark.parametrize("extra", [{"n_mask": 2}, {"mask_all": True}])
def test_microbatched_update_equals_whole_batch(seq, extra) -> None:
    """Gradient accumulation over chunks is the same single Adam step on the mean loss."""
    batch = RewardBatch(seq=jnp.concatenate([seq, seq[::-1]]))  # 24 sequences
    results = []
    for microbatch in (0, 7):  # whole batch; 7 -> 4 chunks of 6 (largest divisor of 24)
        fn = mimex(MIMExConfig(**SMALL, microbatch=microbatch, **extra))
        state = fn.init(jax.random.key(1))
        scored = fn.reward(state, batch, jax.random.key(2))
        state, r, metrics = fn.update(state, batch, jax.random.key(2))
        results.append((scored, r, fn.reward(state, batch, jax.random.key(3)), metrics["loss"]))
    for other in results[1:]:
        for a, b in zip(other, results[0], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("t,k", [(5, 1), (5, 5), (12, 8)])
def test_kept_token_placement_both_forms(t: int, k: int) -> None:
    """The unrolled placement and the einsum form put every slot's token at its position."""
    import sys

    mimex_module = sys.modules["mimex_jax.rewards.mimex"]
    key_perm, key_x = jax.random.split(jax.random.key(t * 100 + k))
    batch, width = 3, 4
    # Slot j of sequence b goes to position pos[b, j] (distinct positions); others get 0.
    pos = jnp.stack([jax.random.permutation(kk, t)[:k] for kk in jax.random.split(key_perm, batch)])
    onehot = (pos[:, None, :] == jnp.arange(t)[None, :, None]).astype(jnp.float32)  # [B,T,K]
    kept = jax.random.normal(key_x, (batch, k, width))
    expected = np.zeros((batch, t, width), np.float32)
    for b in range(batch):
        for j in range(k):
            expected[b, int(pos[b, j])] = kept[b, j]
    forms = {}
    for name, limit in (("unrolled", 10**6), ("einsum", 0)):
        out = mimex_module._place(onehot, kept, limit)
        grad = jax.grad(lambda v, lim=limit: jnp.sum(jnp.sin(mimex_module._place(onehot, v, lim)))
                        )(kept)
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
        forms[name] = grad
    np.testing.assert_allclose(forms["unrolled"], forms["einsum"], rtol=1e-6, atol=1e-7)
