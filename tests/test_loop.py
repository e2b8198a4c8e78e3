"""The chunked host loop: same result as one ``train`` call, exact continuation, callbacks."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from mimex_jax import loop
from mimex_jax.sweep import grid
from mimex_jax.trainer import HParams, TrainConfig, make_train

CFG = TrainConfig(
    env_id="gymnax:MountainCar-v0", num_envs=4, rollout_len=8, epochs=1, minibatches=2,
    total_steps=4 * 8 * 5, episode_length=10, reward="mimex",
    actor_hidden=(16,), critic_hidden=(16,),
    mimex=(("embed_dim", 16), ("depth", 1), ("num_heads", 2), ("decoder_embed_dim", 8)),
)


@pytest.fixture(scope="module")
def runner() -> loop.Runner:
    return loop.make_runner(CFG)


def _leaves_equal(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _without_key_bias(path, x: np.ndarray) -> np.ndarray:
    """Drop the key third of an attention ``qkv`` bias: softmax is unchanged by a shift
    common to a query's logits, so that bias has gradient 0 in exact arithmetic and its
    computed gradient is rounding noise, which Adam scales to full-size steps. It changes
    no output, and is the one place where a last-bit difference grows."""
    if "qkv" in jax.tree_util.keystr(path) and "bias" in jax.tree_util.keystr(path):
        third = x.shape[-1] // 3
        return np.concatenate([x[..., :third], x[..., 2 * third:]], axis=-1)
    return x


def _leaves_close(a, b) -> None:
    """Equal up to float rounding: each leaf within 1e-5 of its own largest magnitude."""
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b),
                            strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        if not np.issubdtype(y.dtype, np.floating):
            np.testing.assert_array_equal(x, y)
            continue
        x, y = _without_key_bias(path, x), _without_key_bias(path, y)
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5 * float(np.abs(y).max()) + 1e-12,
                                   err_msg=jax.tree_util.keystr(path))


def test_chunks_equal_one_train_call_and_resume_is_exact(runner: loop.Runner) -> None:
    # The chunk programs (2 and 1 iterations) are other XLA programs than the one-call
    # ``train`` (5), and XLA may round them differently in the last bits (it does under the
    # suite's compile-speed flags, see conftest.py): the same run to float tolerance, while
    # counters, RNG keys and integer state must match exactly. A lost or repeated piece of
    # state (a reset window, a reused key) would differ by far more.
    hp = HParams()
    _, _, train, _ = make_train(CFG)
    ref_state, ref_metrics = jax.jit(train)(jax.random.key(3), hp)
    seen = []
    state, metrics = loop.run(runner, hp, jax.random.key(3), chunk=2,
                              callbacks=[lambda r: seen.append((r.first_iteration, r.iterations,
                                                                r.env_steps))])
    # 5 iterations in chunks of 2: 2 + 2 + 1 (a second, shorter program).
    assert seen == [(0, 2, 64), (2, 4, 128), (4, 5, 160)]
    _leaves_close(state, ref_state)
    for k, v in ref_metrics.items():
        v = np.asarray(v)
        # atol 1e-6: explained variance is 1 - (a ratio near 1), float32 resolution 1e-7.
        np.testing.assert_allclose(metrics[k], v, rtol=1e-5,
                                   atol=max(1e-6, 1e-5 * np.abs(v).max()), err_msg=k)
    # Stop after 2, continue to 5: bit for bit the same as straight through in chunks
    # (the same programs run on the same inputs).
    part, m1 = loop.run(runner, hp, jax.random.key(3), chunk=2, iterations=2)
    assert loop.iteration_of(part) == 2
    part, m2 = loop.run(runner, hp, state=part, chunk=2)
    _leaves_equal(part, state)
    for k, v in metrics.items():
        np.testing.assert_array_equal(np.concatenate([m1[k], m2[k]]), v, err_msg=k)


def test_sweep_runner_metrics_are_members_by_iterations() -> None:
    cfg = dataclasses.replace(CFG, reward="rnd", total_steps=4 * 8 * 2)
    hps, _ = grid(k_expl=[0.0, 0.5])
    r = loop.make_runner(cfg, sweep=True)
    keys = jax.numpy.stack([jax.random.key(0), jax.random.key(1)])
    state, metrics = loop.run(r, hps, keys, chunk=1)
    assert metrics["episode_return"].shape == (2, 2)
    assert loop.iteration_of(state) == 2
    single = loop.make_runner(cfg)
    _, m1 = loop.run(single, HParams(k_expl=0.5), jax.random.key(1), chunk=2)
    np.testing.assert_allclose(metrics["reward_int"][1], m1["reward_int"], rtol=1e-5,
                               atol=1e-6)


def test_run_validates_its_arguments(runner: loop.Runner) -> None:
    with pytest.raises(ValueError, match="chunk=0 is invalid"):
        loop.run(runner, HParams(), jax.random.key(0), chunk=0)
    with pytest.raises(ValueError, match="needs a PRNG key or a state"):
        loop.run(runner, HParams())
    with pytest.raises(ValueError, match=r"hparams.lr=-1.0 is invalid"):
        loop.run(runner, HParams(lr=-1.0), jax.random.key(0))


def test_evaluate_reports_one_finished_episode_per_env(runner: loop.Runner) -> None:
    from mimex_jax.evaluate import make_evaluate

    state = runner.init(jax.random.key(0), HParams())
    evaluate = jax.jit(make_evaluate(CFG, episodes=6), static_argnums=3)
    out = evaluate(state.params, state.obs_stats, jax.random.key(1), True)
    assert out["return"].shape == (6,)
    np.testing.assert_array_equal(out["finished"], 1.0)
    # MountainCar: -1 per step and the time limit (10 steps) ends every episode here.
    np.testing.assert_array_equal(out["length"], 10.0)
    np.testing.assert_array_equal(out["return"], -10.0)
    again = evaluate(state.params, state.obs_stats, jax.random.key(1), True)
    np.testing.assert_array_equal(out["return"], again["return"])
    with pytest.raises(ValueError, match="episodes=0 is invalid"):
        make_evaluate(CFG, episodes=0)


def test_sweep_init_equals_member_by_member_init() -> None:
    """The sweep runner's vmapped init gives every member the state of its own init."""
    init = jax.jit(make_train(CFG)[0])
    hps, _ = grid(k_expl=[0.0, 0.5], mask_ratio=[0.7, 0.7])
    keys = jax.numpy.stack([jax.random.key(i) for i in range(4)])
    stacked = loop.make_runner(CFG, sweep=True).init(keys, hps)
    one_by_one = [init(keys[i], jax.tree.map(lambda x, i=i: x[i], hps)) for i in range(4)]
    # Equal up to float rounding: the batched Gram-Schmidt matvecs of the orthogonal
    # initialiser may sum in another order than the unbatched ones.
    for x, y in zip(jax.tree.leaves(stacked), jax.tree.leaves(
            jax.tree.map(lambda *xs: jax.numpy.stack(xs), *one_by_one)), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
