"""The ``craftax:`` suite behind the env interface.

Compiling Craftax's step costs ~35 s on a 2-core CPU, so the default tests check the wrapped
env by tracing (``jax.eval_shape``: shapes, dtypes, a pytree that ``lax.scan`` can carry) and
the tests that step it are marked slow.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("craftax", reason="the craftax: suite needs craftax "
                                      "(pip install mimex-jax[envs])")

from _runs import assert_same_state  # noqa: E402

from mimex_jax import envs  # noqa: E402

CLASSIC = "craftax:Craftax-Classic-Symbolic-v1"
N = 3


def test_spec_ids_and_keywords():
    assert envs.list_envs("craftax") == [CLASSIC, "craftax:Craftax-Symbolic-v1"]
    spec = envs.make_base(CLASSIC).spec
    assert spec.action_kind == "discrete" and spec.num_actions == 17
    assert spec.observation_size == 1345
    assert spec.has_success is False  # no goal: success is n/a, never 0
    assert spec.episode_length == 10000
    assert envs.make_base(CLASSIC, max_timesteps=7).spec.episode_length == 7
    with pytest.raises(ValueError, match="allowed"):
        envs.make_base(CLASSIC, size=3)
    with pytest.raises(ValueError, match="Craftax-Classic-Symbolic-v1"):
        envs.make_base("craftax:Craftax-Classic-Pixels-v1")


def test_wrapped_reset_step_shapes_dtypes():
    env = envs.make(CLASSIC, num_envs=N, episode_length=5)
    s = jax.eval_shape(env.reset, jax.random.key(0))
    s2 = jax.eval_shape(env.step, s, jax.ShapeDtypeStruct((N,), jnp.int32))
    for st in (s, s2):
        assert st.obs.shape == (N, 1345) and st.obs.dtype == jnp.float32
        assert st.reward.shape == st.done.shape == (N,)
        assert st.reward.dtype == st.done.dtype == jnp.float32
        assert st.metrics["episode_achievements"].shape == (N,)
    assert jax.tree.structure(s) == jax.tree.structure(s2)
    assert [x.dtype for x in jax.tree.leaves(s)] == [x.dtype for x in jax.tree.leaves(s2)]


def test_cli_table_shows_na_success():
    from mimex_jax.cli import _table

    row = ("mimex", {"env_steps": 8, "eval": {"members": [{"return": 1.0, "success": 0.0}]},
                     "last_chunk_all_members": {"episode_return": 1.0,
                                                "episode_success": 0.0}})
    line = _table([row], has_success=False).splitlines()[-1]
    assert line.count("n/a") == 2 and "0.000" not in line
    assert "n/a" not in _table([row], has_success=True)


@pytest.mark.slow
def test_time_limit_auto_reset_achievements_and_vmap():
    """Steps 2-step episodes: truncation, achievement %, auto-reset; vmap == per-key calls."""
    env = envs.make(CLASSIC, num_envs=N, episode_length=2)
    base = envs.make_base(CLASSIC, max_timesteps=2)
    keys = jax.random.split(jax.random.key(1), N)
    acts = jnp.array([0, 5, 1], jnp.int32)  # noop, do, left

    def run(key, keys, acts):
        s = env.reset(key)
        s1 = env.step(s, acts)
        s2 = env.step(s1, acts)
        one = lambda k, a: base.step(base.reset(k), a)  # noqa: E731
        return s1, s2, jax.vmap(one)(keys, acts), jax.lax.map(lambda ka: one(*ka), (keys, acts))

    s1, s2, batched, separate = jax.jit(run)(jax.random.key(0), keys, acts)
    np.testing.assert_array_equal(s1.done, 0.0)
    np.testing.assert_array_equal(s1.metrics["episode_achievements"], 0.0)
    np.testing.assert_array_equal(s2.done, 1.0)
    np.testing.assert_array_equal(s2.info["truncation"], 1.0)
    ach = np.asarray(s2.metrics["episode_achievements"])
    assert np.all((ach >= 0) & (ach <= 100))
    np.testing.assert_array_equal(s2.metrics["episode_length"], 2.0)
    np.testing.assert_array_equal(s2.pipeline_state.timestep, 0)  # a fresh episode
    assert_same_state(separate, batched)
