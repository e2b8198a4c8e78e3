"""Tests of mimex_jax.envs: suites, wrappers (stats, auto-reset, time limit, clipping), errors.

Each env case is compiled once (jit of a vmapped reset + lax.scan of steps) and shared by all
tests through the module-scoped ``rollouts`` fixture. Sizes are tiny; long checks are ``slow``.
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimex_jax import envs

T = 6  # steps per rollout
N = 4  # envs per rollout

# case -> (env id, make keywords)
CASES = {
    "mountaincar": ("gymnax:MountainCar-v0", {"episode_length": 3}),
    "mountaincar_cont": ("gymnax:MountainCarContinuous-v0", {}),
    "deepsea": ("gymnax:DeepSea-bsuite", {"size": 4, "randomize_actions": False}),
    "reacher_sparse": ("brax:reacher_sparse", {"episode_length": 3, "radius": 0.2}),
    "cartpole_pg": ("playground:CartpoleSwingupSparse", {"episode_length": 3}),
}

HAS_PLAYGROUND = importlib.util.find_spec("mujoco_playground") is not None
NO_PLAYGROUND = "MuJoCo Playground (pip package 'playground') is not installed"


def _actions(env, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if env.action_kind == "discrete":
        # env i always takes action i % num_actions (DeepSea: env 1 always goes right)
        return np.broadcast_to(np.arange(N) % env.num_actions, (T, N)).astype(np.int32)
    return (scale * rng.uniform(-1, 1, (T, N, env.action_size))).astype(np.float32)


def _rollout_fn(env):
    @jax.jit
    def run(key, actions):
        s0 = env.reset(key)

        def body(s, a):
            s = env.step(s, a)
            return s, s

        _, traj = jax.lax.scan(body, s0, actions)
        return s0, traj

    return run


class _Rollouts:
    """Lazily makes, compiles and runs each case once per module."""

    def __init__(self):
        self._cache = {}

    def __call__(self, case: str):
        if case not in self._cache:
            env_id, kwargs = CASES[case]
            if env_id.startswith("playground:") and not HAS_PLAYGROUND:
                pytest.skip(NO_PLAYGROUND)
            env = envs.make(env_id, num_envs=N, **kwargs)
            run = _rollout_fn(env)
            actions = _actions(env)
            s0, traj = run(jax.random.PRNGKey(0), actions)
            self._cache[case] = (env, run, actions, s0, traj)
        return self._cache[case]


@pytest.fixture(scope="module")
def rollouts():
    return _Rollouts()


def _terminal(traj):
    """The observation each step produced (before any auto-reset)."""
    return np.asarray(traj.info["terminal_obs"])


# ------------------------------------------------------------------------------------------
# Every suite: shapes, dtypes, finiteness under jit + vmap.


@pytest.mark.parametrize("case", list(CASES))
def test_suite_steps_under_jit_and_vmap(rollouts, case):
    env, _, _, s0, traj = rollouts(case)
    d = env.observation_size
    assert s0.obs.shape == (N, d) and s0.obs.dtype == jnp.float32
    assert traj.obs.shape == (T, N, d) and traj.obs.dtype == jnp.float32
    for x in (traj.reward, traj.done, traj.info["truncation"]):
        assert x.shape == (T, N) and x.dtype == jnp.float32
    for k in ("episode_done", "episode_return", "episode_length", "episode_success"):
        assert traj.metrics[k].shape == (T, N)
    assert np.isfinite(np.asarray(traj.obs)).all()
    assert np.isfinite(np.asarray(traj.reward)).all()
    assert set(np.unique(np.asarray(traj.done))) <= {0.0, 1.0}
    # the state keeps its exact structure and dtypes from reset through step
    assert jax.tree.structure(s0) == jax.tree.structure(traj)
    s0_avals = [(x.shape[1:], x.dtype) for x in jax.tree.leaves(s0)]
    st_avals = [(x.shape[2:], x.dtype) for x in jax.tree.leaves(traj)]
    assert s0_avals == st_avals
    # spec facts
    assert env.num_envs == N
    if env.action_kind == "discrete":
        assert env.num_actions == env.action_size and env.action_bounds is None
        assert env.action_shape == () and env.action_dtype == np.int32
    else:
        low, high = env.action_bounds
        assert low.shape == high.shape == (env.action_size,) and (low < high).all()
        assert env.action_shape == (env.action_size,) and env.num_actions is None


# ------------------------------------------------------------------------------------------
# Auto-reset, episode statistics, time limits.


def test_autoreset_gymnax_resets_and_records_stats(rollouts):
    env, _, _, _, traj = rollouts("mountaincar")
    done = np.asarray(traj.done)
    np.testing.assert_array_equal(done[:, 0], [0, 0, 1, 0, 0, 1])  # episode_length=3
    obs, term = np.asarray(traj.obs), _terminal(traj)
    # after done the obs is a fresh reset: position ~ U[-0.6, -0.4], velocity 0, time 0
    assert ((obs[2, :, 0] >= -0.6) & (obs[2, :, 0] <= -0.4)).all()
    np.testing.assert_array_equal(obs[2, :, 1], 0.0)
    np.testing.assert_array_equal(np.asarray(traj.pipeline_state.time)[2], 0)
    assert (term[2, :, 1] != 0.0).all()  # the terminal obs is kept for bootstrapping
    np.testing.assert_array_equal(term[1], obs[1])
    # time-limit ends are truncations; stats of the finished episode are in metrics
    np.testing.assert_array_equal(np.asarray(traj.info["truncation"]), done)
    m = {k: np.asarray(v) for k, v in traj.metrics.items()}
    np.testing.assert_array_equal(m["episode_done"], done)
    np.testing.assert_array_equal(m["episode_length"], 3.0 * done)
    np.testing.assert_allclose(m["episode_return"], -3.0 * done)
    np.testing.assert_array_equal(np.asarray(traj.info["episode_length"])[:3, 0], [1, 2, 0])


def test_autoreset_resets_only_the_envs_that_are_done(rollouts):
    env = rollouts("mountaincar")[0]  # gymnax time limit 3, batched
    key = jax.random.key(3)  # new-style typed keys work as well as raw uint32 keys
    s = jax.jit(env.reset)(key)
    time0 = s.pipeline_state.time.at[0].set(2)  # env 0 is one step from its time limit
    s = s.replace(pipeline_state=s.pipeline_state.replace(time=time0))
    s1 = jax.jit(env.step)(s, jnp.ones((N,), jnp.int32))
    np.testing.assert_array_equal(np.asarray(s1.done), [1, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray(s1.pipeline_state.time), [0, 1, 1, 1])
    obs, term = np.asarray(s1.obs), np.asarray(s1.info["terminal_obs"])
    assert obs[0, 1] == 0.0 and term[0, 1] != 0.0  # env 0: fresh episode
    np.testing.assert_array_equal(obs[1:], term[1:])  # others: unchanged transition
    np.testing.assert_array_equal(np.asarray(s1.metrics["episode_done"]), [1, 0, 0, 0])


def test_autoreset_brax_draws_fresh_initial_states(rollouts):
    env, _, _, s0, traj = rollouts("reacher_sparse")
    done = np.asarray(traj.done)
    np.testing.assert_array_equal(done, np.tile([[0], [0], [1], [0], [0], [1]], (1, N)))
    steps = np.asarray(traj.info["steps"])
    np.testing.assert_array_equal(steps[:, 0], [1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(np.asarray(traj.info["truncation"]), done)
    obs, term = np.asarray(traj.obs), _terminal(traj)
    assert not np.allclose(obs[2], term[2])
    # a new random target (obs[4:6]) rather than a replay of the first initial state
    assert not np.allclose(obs[2, :, 4:6], np.asarray(s0.obs)[:, 4:6])
    assert not np.allclose(obs[2, :, 4:6], obs[5, :, 4:6])
    reward = np.asarray(traj.reward)
    m = {k: np.asarray(v) for k, v in traj.metrics.items()}
    np.testing.assert_allclose(m["episode_return"][2], reward[:3].sum(0), rtol=1e-6)
    np.testing.assert_allclose(m["episode_return"][5], reward[3:].sum(0), rtol=1e-6)
    np.testing.assert_array_equal(m["episode_length"][2], 3.0)
    np.testing.assert_array_equal(
        m["episode_success"][2], np.asarray(traj.metrics["success"])[:3].max(0)
    )


def test_deepsea_success_and_termination(rollouts):
    env, _, _, _, traj = rollouts("deepsea")
    done = np.asarray(traj.done)
    np.testing.assert_array_equal(done[:, 0], [0, 0, 0, 1, 0, 0])  # size 4 -> 4 steps
    np.testing.assert_array_equal(np.asarray(traj.info["truncation"]), 0.0)  # terminal
    m = {k: np.asarray(v) for k, v in traj.metrics.items()}
    # randomize_actions=False: action 1 is always "right"; env 1 and 3 reach the treasure
    np.testing.assert_array_equal(m["episode_success"][3], [0, 1, 0, 1])
    np.testing.assert_allclose(m["episode_return"][3], [0.0, 0.99, 0.0, 0.99], atol=1e-6)
    # the terminal DeepSea observation (below the grid) is all zeros; the reset one is not
    np.testing.assert_array_equal(_terminal(traj)[3], 0.0)
    np.testing.assert_array_equal(np.asarray(traj.obs)[3].sum(-1), 1.0)


def test_deepsea_size_keyword_changes_obs_size():
    assert envs.make("gymnax:DeepSea-bsuite", size=5).observation_size == 25
    assert envs.make("gymnax:DeepSea-bsuite", size=7, num_envs=2).observation_size == 49


def test_unbatched_env_under_jit():
    env = envs.make("gymnax:MountainCar-v0", episode_length=2)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    s = reset(jax.random.PRNGKey(1))
    assert s.obs.shape == (2,) and s.done.shape == ()
    dones = []
    for _ in range(4):
        s = step(s, jnp.int32(2))
        dones.append(float(s.done))
    assert dones == [0.0, 1.0, 0.0, 1.0]
    assert int(s.info["episode_length"]) == 0 and float(s.metrics["episode_length"]) == 2.0


def test_clip_action_clips_continuous_actions(rollouts):
    env, run, actions, _, traj = rollouts("mountaincar_cont")
    big = 5.0 * np.sign(actions)  # far out of [-1, 1]; clipped it is +-1
    _, t_big = run(jax.random.PRNGKey(0), big)
    _, t_one = run(jax.random.PRNGKey(0), np.sign(actions))
    np.testing.assert_allclose(np.asarray(t_big.obs), np.asarray(t_one.obs))


# ------------------------------------------------------------------------------------------
# Sparse Brax tasks.


def test_reacher_sparse_reward_is_one_iff_success(rollouts):
    env, _, _, _, traj = rollouts("reacher_sparse")
    reward, success = np.asarray(traj.reward), np.asarray(traj.metrics["success"])
    np.testing.assert_array_equal(reward, success)
    dist = np.linalg.norm(_terminal(traj)[..., -3:-1], axis=-1)  # fingertip - target, x-y
    np.testing.assert_array_equal(success, (dist <= 0.2).astype(np.float32))
    np.testing.assert_allclose(np.asarray(traj.metrics["goal_distance"]), dist, rtol=1e-5)
    assert 0 < success.sum() < success.size  # both outcomes occur in this rollout


def test_sparse_defaults_documented():
    env = envs.make("brax:reacher_sparse")
    assert env.unwrapped is not None and env.has_success
    assert env.episode_length == 50
    base = envs.make_base("brax:pusher_sparse")
    assert base.radius == 0.05 and base.spec.episode_length == 100
    assert envs.make_base("brax:reacher_sparse").radius == 0.005


# ------------------------------------------------------------------------------------------
# Errors list the options.


def test_unknown_suite_lists_suites():
    with pytest.raises(ValueError, match="brax.*playground.*gymnax"):
        envs.make("nosuch:thing")
    with pytest.raises(ValueError, match="suite:name"):
        envs.make("reacher_sparse")


def test_unknown_brax_id_lists_envs():
    with pytest.raises(ValueError, match=r"reacher_sparse.*") as e:
        envs.make("brax:nosuch")
    assert "'ant'" in str(e.value) and "'pusher_sparse'" in str(e.value)


def test_unknown_gymnax_id_lists_envs():
    with pytest.raises(ValueError, match="DeepSea-bsuite"):
        envs.make("gymnax:NoSuch-v0")


def test_unknown_keywords_list_allowed():
    with pytest.raises(ValueError, match="radius") as e:
        envs.make("brax:reacher_sparse", radiuss=0.1)
    assert "backend" in str(e.value)
    with pytest.raises(ValueError, match="backend"):
        envs.make("brax:ant", not_a_kwarg=1)
    with pytest.raises(ValueError, match="size") as e:
        envs.make("gymnax:DeepSea-bsuite", sise=3)
    assert "max_steps_in_episode" in str(e.value)
    with pytest.raises(ValueError, match="generalized"):
        envs.make("brax:reacher", backend="nope")


@pytest.mark.skipif(not HAS_PLAYGROUND, reason=NO_PLAYGROUND)
def test_playground_errors_list_options():
    with pytest.raises(ValueError, match="CartpoleSwingupSparse"):
        envs.make("playground:NoSuchTask")
    with pytest.raises(ValueError, match="impl"):
        envs.make("playground:CartpoleSwingupSparse", nope=1)


def test_list_envs():
    brax_ids = envs.list_envs("brax")
    assert {"brax:reacher_sparse", "brax:pusher_sparse", "brax:ant"} <= set(brax_ids)
    assert "gymnax:DeepSea-bsuite" in envs.list_envs("gymnax")
    with pytest.raises(ValueError, match="brax"):
        envs.list_envs("nope")


# ------------------------------------------------------------------------------------------
# Slow: every Brax env, the named Playground tasks, pusher_sparse, random success rates.


def _short_rollout(env_id, steps=2, num_envs=2, **kwargs):
    env = envs.make(env_id, num_envs=num_envs, **kwargs)

    @jax.jit
    def run(key):
        s = env.reset(key)
        a = jnp.zeros((num_envs, *env.action_shape), env.action_dtype)
        return jax.lax.scan(lambda s, _: (env.step(s, a), None), s, None, length=steps)[0]

    s = run(jax.random.PRNGKey(0))
    assert s.obs.shape == (num_envs, env.observation_size)
    assert np.isfinite(np.asarray(s.obs)).all() and np.isfinite(np.asarray(s.reward)).all()
    return env, s


def _clip_has_a_min():
    import inspect

    return "a_min" in inspect.signature(jnp.clip).parameters


@pytest.mark.skipif(_clip_has_a_min(), reason="this JAX still has jnp.clip(a_min=)")
def test_brax_swimmer_explains_incompatibility():
    with pytest.raises(NotImplementedError, match="a_min"):
        envs.make("brax:swimmer")


@pytest.mark.slow
@pytest.mark.parametrize("env_id", envs.list_envs("brax"))
def test_every_brax_env_steps(env_id):
    if env_id == "brax:swimmer" and not _clip_has_a_min():
        pytest.skip("brax/fluid.py calls jnp.clip(a_min=...), removed in this JAX")
    _short_rollout(env_id)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_PLAYGROUND, reason=NO_PLAYGROUND)
@pytest.mark.parametrize(
    "name", ["CartpoleSwingupSparse", "AcrobotSwingupSparse", "BallInCup", "FingerTurnHard"]
)
def test_playground_tasks_step(name):
    env, s = _short_rollout(f"playground:{name}")
    assert env.has_success and env.backend == "mjx-jax"


@pytest.mark.slow
def test_pusher_sparse_reward_is_one_iff_success():
    env = envs.make("brax:pusher_sparse", num_envs=4, radius=0.25)
    run = _rollout_fn(env)
    _, traj = run(jax.random.PRNGKey(0), _actions(env))
    success = np.asarray(traj.metrics["success"])
    np.testing.assert_array_equal(np.asarray(traj.reward), success)
    term = _terminal(traj)
    dist = np.linalg.norm(term[..., -6:-4] - term[..., -3:-1], axis=-1)
    np.testing.assert_array_equal(success, (dist <= 0.25).astype(np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["reacher_sparse", "pusher_sparse"])
def test_random_policy_success_rate_below_5_percent(task):
    from mimex_jax.envs.sparse import _measure

    out = _measure(task, None, episodes=256, num_envs=128, seed=0, episode_length=None)
    assert out["success_rate"] < 0.05


def test_optional_warp_notice_is_dropped_other_output_kept(capsys) -> None:
    """MJX's "Failed to import warp" lines (printed at import when Warp is absent) do not
    reach users; anything else printed during the guarded import does."""
    from mimex_jax.envs.base import _without_optional_warp_notice

    with _without_optional_warp_notice():
        print("Failed to import warp: No module named 'warp'")
        print("Failed to import mujoco_warp: No module named 'warp'")
        print("something else")
    assert capsys.readouterr().out == "something else\n"


def test_random_policy_returns_keep_time_limit_and_action_repeat():
    """MountainCar pays -1 per env step and a random policy never reaches the flag in 200
    steps, so every episode returns exactly -200: with action repeat 2 (100 agent steps,
    rewards summed over the repeat) as without it. A lost repeat would give -100."""
    from mimex_jax.evaluate import random_policy_returns
    from mimex_jax.trainer import TrainConfig

    cfg = TrainConfig(env_id="gymnax:MountainCar-v0", num_envs=2)
    once = random_policy_returns(cfg, 8, jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(once), np.full(8, -200.0))
    env = envs.make("gymnax:MountainCar-v0", num_envs=2, action_repeat=2)
    assert env.spec.episode_length == 100
    state = env.step(env.reset(jax.random.key(1)), jnp.zeros((2,), jnp.int32))
    np.testing.assert_array_equal(np.asarray(state.reward), [-2.0, -2.0])


def test_make_rejects_bad_action_repeat():
    with pytest.raises(ValueError, match="action_repeat=0 is invalid"):
        envs.make("gymnax:MountainCar-v0", action_repeat=0)
