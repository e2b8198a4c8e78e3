"""Checkpoints: bit-exact round trips and resume, retention, refusals, corrupt and
unwritable directories, sweep states."""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimex_jax import __version__
from mimex_jax.checkpoint import (
    Checkpointer,
    CheckpointError,
    _hparams_from_json,
    _hparams_json,
    config_from_metadata,
    read_metadata,
)
from mimex_jax.trainer import HParams, TrainConfig, make_train

TINY = TrainConfig(
    env_id="gymnax:MountainCar-v0", num_envs=4, rollout_len=8, epochs=2, minibatches=2,
    total_steps=4 * 8 * 3, episode_length=10, reward="mimex",
    actor_hidden=(16,), critic_hidden=(16,),
    mimex=(("embed_dim", 16), ("depth", 1), ("num_heads", 2), ("decoder_embed_dim", 8)),
)
HP = HParams(lr=3e-3, k_expl=0.1)


@dataclasses.dataclass(frozen=True)
class Run:
    init: object  # not jitted, for eval_shape
    init_jit: object
    update: object
    s0: object  # freshly initialised
    s1: object  # after one update: non-trivial optimiser state, counters, env state
    template: object


@pytest.fixture(scope="module")
def run() -> Run:
    init, update_step, _, _ = make_train(TINY)
    init_j, update_j = jax.jit(init), jax.jit(update_step)
    s0 = init_j(jax.random.key(0), HP)
    s1, _ = update_j(s0, HP)
    return Run(init, init_j, update_j, s0, s1, jax.eval_shape(init, jax.random.key(0), HP))


def _raw(x):
    return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def assert_identical(a, b) -> None:
    """Same structure, dtypes and bits in every leaf (keys compared by their data)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(a)[0]]
    for path, x, y in zip(paths, jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype, path
        # Weak types too: a changed one would make jit recompile on the restored state.
        assert x.aval.weak_type == y.aval.weak_type, path
        np.testing.assert_array_equal(np.asarray(_raw(x)), np.asarray(_raw(y)), err_msg=path)


def test_round_trip_is_bit_identical_and_resume_is_exact(run: Run, tmp_path: Path) -> None:
    extra = {"labels": ["a"], "options": {"log_every": 5, "out": tmp_path / "x"}}
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, run.s1, TINY, HP, metrics={"episode_return": -3.5}, extra=extra)
        assert ckpt.all_steps() == [1] and ckpt.latest_step() == 1
        state, hp, meta = ckpt.restore(run.template, cfg=TINY)
        assert_identical(run.s1, ckpt.restore(run.s0)[0])  # a concrete state as template
    assert_identical(run.s1, state)
    assert int(state.iteration) == 1 and state.key.dtype == run.s1.key.dtype
    assert hp == HP
    assert meta["step"] == 1 and meta["version"] == __version__
    assert meta["metrics"] == {"episode_return": -3.5}
    assert meta["extra"] == {"labels": ["a"], "options": {"log_every": 5,
                                                         "out": str(tmp_path / "x")}}
    disk = read_metadata(tmp_path / "ckpt")
    assert disk["config"]["actor_hidden"] == [16] and config_from_metadata(disk) == TINY

    # Exact resume: one more update from the original and from the restored state agree.
    a, metrics_a = run.update(run.s1, HP)
    b, metrics_b = run.update(state, hp)
    assert_identical(a, b)
    assert metrics_a.keys() == metrics_b.keys()
    for k in metrics_a:
        np.testing.assert_array_equal(metrics_a[k], metrics_b[k], err_msg=k)


def test_keep_last_and_best(run: Run, tmp_path: Path) -> None:
    returns = [5.0, 9.0, 1.0, 2.0, 3.0]
    with Checkpointer(tmp_path / "last", keep_last=2) as ckpt:
        for step, r in enumerate(returns):
            ckpt.save(step, run.s0, TINY, HP, metrics={"episode_return": r})
        assert ckpt.all_steps() == [3, 4]
    best = tmp_path / "best"
    with Checkpointer(best, keep_last=2, best_metric="episode_return") as ckpt:
        for step, r in enumerate(returns):
            ckpt.save(step, run.s0, TINY, HP, metrics={"episode_return": r})
        assert ckpt.all_steps() == [1, 3, 4] and ckpt.best_step() == 1
        with pytest.raises(ValueError, match="metrics lack best_metric 'episode_return'"):
            ckpt.save(5, run.s0, TINY, HP, metrics={"loss": 1.0})
    # A reopened directory still knows the metrics; NaN never counts as best.
    with Checkpointer(best, keep_last=2, best_metric="episode_return") as ckpt:
        ckpt.save(5, run.s0, TINY, HP, metrics={"episode_return": float("nan")})
        ckpt.save(6, run.s0, TINY, HP, metrics={"episode_return": 10.0})
        assert ckpt.all_steps() == [5, 6] and ckpt.best_step() == 6
    with Checkpointer(tmp_path / "min", keep_last=1, best_metric="loss", best_mode="min") as c:
        for step, loss in enumerate([3.0, 0.5, 2.0]):
            c.save(step, run.s0, TINY, HP, metrics={"loss": loss})
        assert c.all_steps() == [1, 2]


def test_config_changing_shapes_is_refused(run: Run, tmp_path: Path) -> None:
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, run.s1, TINY, HP)
        with pytest.raises(ValueError, match="num_envs: saved 4, given 8"):
            ckpt.restore(run.template, cfg=dataclasses.replace(TINY, num_envs=8))
        changed = dataclasses.replace(TINY, seq_len=3, actor_hidden=(32,))
        with pytest.raises(ValueError, match="shapes or structure") as info:
            ckpt.restore(run.template, cfg=changed)
        assert "seq_len: saved 5, given 3" in str(info.value)
        assert "actor_hidden: saved [16], given [32]" in str(info.value)
        # Extending the run is allowed, with a warning about the schedules.
        with pytest.warns(UserWarning, match="total_steps: saved 96, given 192"):
            state, _, _ = ckpt.restore(run.template,
                                       cfg=dataclasses.replace(TINY, total_steps=192))
        assert_identical(run.s1, state)


def test_template_mismatch_is_refused(run: Run, tmp_path: Path) -> None:
    t = run.template
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, run.s1, TINY, HP)
        with pytest.raises(ValueError, match=r"at leaf \d+: saved \.window \(4, 5, 2\) float32, "
                                             r"template \.window \(4, 3, 2\) float32"):
            ckpt.restore(t._replace(window=jax.ShapeDtypeStruct((4, 3, 2), jnp.float32)))
        with pytest.raises(ValueError, match=r"\.iteration \(\) int32, template "
                                             r"\.iteration \(\) float32"):
            ckpt.restore(t._replace(iteration=jax.ShapeDtypeStruct((), jnp.float32)))
        with pytest.raises(ValueError, match=r"saved \.obs_stats\.mean"):
            ckpt.restore(t._replace(obs_stats=None))


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize("item", ["state", "meta"])
def test_truncated_checkpoint_is_reported_and_previous_restores(
        run: Run, tmp_path: Path, item: str) -> None:
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, run.s0, TINY, HP)
        ckpt.save(2, run.s1, TINY, HP)
    for f in (tmp_path / "2" / item).rglob("*"):
        if f.is_file():
            _truncate(f)
    with Checkpointer(tmp_path) as ckpt:
        with pytest.raises(CheckpointError, match="other available steps: \\[1\\]") as info:
            ckpt.restore(run.template)
        assert f"checkpoint step 2 at {tmp_path / '2'}" in str(info.value)
        state, _, meta = ckpt.restore(run.template, step=1)
        assert meta["step"] == 1
        assert_identical(run.s0, state)
    if item == "meta":
        with pytest.raises(CheckpointError, match="has unreadable metadata"):
            read_metadata(tmp_path)


def test_not_a_checkpoint_directory(run: Run, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=f"{empty} holds no checkpoint: expected step"):
        read_metadata(empty)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_metadata(tmp_path / "missing")
    junk = tmp_path / "junk"
    (junk / "7").mkdir(parents=True)
    (junk / "7" / "notes.txt").write_text("hello")
    (junk / "src").mkdir()
    with Checkpointer(junk, create=False) as ckpt:
        with pytest.raises(CheckpointError, match=f"step 7 at {junk / '7'} is not a mimex_jax "
                                                  "checkpoint"):
            ckpt.restore(run.template)
    with Checkpointer(junk) as ckpt, pytest.raises(CheckpointError, match="no checkpoint step 3"):
        ckpt.restore(run.template, step=3)
    with pytest.raises(CheckpointError, match="is not a directory"):
        Checkpointer(junk / "7" / "notes.txt")


def test_unwritable_location(run: Run, tmp_path: Path, monkeypatch) -> None:
    # Under a regular file nothing can be created, even by root.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match=f"cannot use {blocker / 'sub'} as a checkpoint"):
        Checkpointer(blocker / "sub")

    # A write that fails part-way (disk full) leaves the earlier step intact and usable.
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as handler

    if not hasattr(handler.JsonCheckpointHandler, "_save_fn"):
        pytest.skip("orbax's JSON writer moved; cannot simulate a failing write")
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, run.s0, TINY, HP)

        async def disk_full(self, item, directory):
            raise OSError(errno.ENOSPC, "No space left on device", str(directory))

        with monkeypatch.context() as m:
            m.setattr(handler.JsonCheckpointHandler, "_save_fn", disk_full)
            with pytest.raises(CheckpointError, match="could not write checkpoint step 2 .*"
                                                      "No space left on device"):
                ckpt.save(2, run.s1, TINY, HP)
        assert ckpt.all_steps() == [1]
        assert_identical(run.s0, ckpt.restore(run.template)[0])
        ckpt.save(2, run.s1, TINY, HP)  # the next attempt succeeds
        assert_identical(run.s1, ckpt.restore(run.template)[0])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores directory permissions, so chmod cannot make the "
                           "directory read-only (the disk-full case above covers failed writes)")
def test_read_only_directory(run: Run, tmp_path: Path) -> None:
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, run.s0, TINY, HP)
        os.chmod(tmp_path / "ckpt", 0o500)
        try:
            with pytest.raises(CheckpointError, match="could not write checkpoint step 2"):
                ckpt.save(2, run.s1, TINY, HP)
            assert ckpt.all_steps() == [1]
            assert_identical(run.s0, ckpt.restore(run.template)[0])
        finally:
            os.chmod(tmp_path / "ckpt", 0o700)


def test_save_refusals(run: Run, tmp_path: Path) -> None:
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(3, run.s0, TINY, HP)
        with pytest.raises(CheckpointError, match="step 3 is already saved"):
            ckpt.save(3, run.s0, TINY, HP)
        with pytest.raises(CheckpointError, match="step 3 is already saved"):
            ckpt.save(2, run.s0, TINY, HP)
        with pytest.raises(TypeError, match=r"extra\['f'\] = .* cannot be stored as JSON"):
            ckpt.save(4, run.s0, TINY, HP, extra={"f": object()})
        assert ckpt.all_steps() == [3]
        ckpt.delete(3)
        ckpt.save(2, run.s0, TINY, HP)
        assert ckpt.all_steps() == [2]


def test_sweep_state_round_trip(run: Run, tmp_path: Path) -> None:
    """Every member of a vmapped sweep is saved; a vmapped template restores it."""
    # Members from the jitted single-run init (same argument types: no recompile), stacked
    # like jax.vmap(init) stacks them; the template comes from the vmapped init itself.
    member_hps = [HP._replace(k_expl=k) for k in (0.0, 0.5)]
    members = [run.init_jit(jax.random.key(i), hp) for i, hp in enumerate(member_hps)]
    swept = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    hps = jax.tree.map(lambda *xs: jnp.asarray(xs, jnp.float32), *member_hps)
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    template = jax.eval_shape(jax.vmap(run.init), keys, hps)
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(0, swept, TINY, hps, extra={"labels": ["k_expl=0", "k_expl=0.5"]})
        state, hp, meta = ckpt.restore(template, cfg=TINY)
    assert_identical(swept, state)
    assert state.key.shape == (2,) and state.window.shape[0] == 2
    assert not np.array_equal(_raw(state.key[0]), _raw(state.key[1]))
    assert_identical(hps, hp)
    assert meta["extra"]["labels"] == ["k_expl=0", "k_expl=0.5"]


def test_zero_size_leaves_round_trip(tmp_path: Path) -> None:
    """MJX Data (Playground tasks, pixel runs) carries zero-size arrays; orbax refuses to
    write those, so the manifest alone restores them."""
    state = {"a": jnp.arange(3.0), "empty": jnp.zeros((2, 0), jnp.float32),
             "mocap": jnp.zeros((2, 0, 3), jnp.int32), "u8": jnp.ones((2, 4), jnp.uint8)}
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, state, TINY, HP)
        restored, _, _ = ckpt.restore(jax.eval_shape(lambda: state))
    assert_identical(state, restored)


def test_hparams_saved_before_a_field_existed_read_as_its_default() -> None:
    def older(hp: HParams) -> dict:
        return {k: v for k, v in _hparams_json(hp).items() if k != "reward_scale"}

    one = _hparams_from_json(older(HParams(lr=3e-4, reward_scale=0.1)))
    assert one.lr == 3e-4 and one.reward_scale == 1.0
    # a sweep's hparams are per member, so the defaulted field is too (vmap needs the axis)
    sweep = HParams(*(jnp.full((3,), v, jnp.float32) for v in HParams()))
    got = _hparams_from_json(older(sweep))
    assert got.reward_scale.shape == (3,) and got.reward_scale.dtype == jnp.float32
    np.testing.assert_array_equal(got.reward_scale, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(got.lr, sweep.lr)
