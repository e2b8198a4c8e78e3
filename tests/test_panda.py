"""Sparse-success Panda manipulation tasks (mimex_jax.envs.manipulation).

The fast tests build the tasks and check the success condition on constructed states without
compiling the physics (MJX's Panda step compiles for minutes on a 2-core CPU); stepping under
jit + vmap, state and pixels, is behind ``slow``. Everything here needs MuJoCo Playground and
Menagerie's ``franka_emika_panda`` model (skipped, with the reason, when either is missing).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("mujoco_playground")

from mimex_jax import envs  # noqa: E402
from mimex_jax.envs import manipulation  # noqa: E402

_MISSING = manipulation.menagerie_missing("PandaPickCube")
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"Menagerie model missing: {_MISSING}")

TASKS = ("PandaPickCubeSparse", "PandaOpenCabinetSparse")
THR = manipulation.DEFAULT_SUCCESS_THRESHOLD


@pytest.fixture(scope="module")
def made() -> dict:
    return {t: envs.make_base(f"playground:{t}") for t in TASKS}


@pytest.fixture(scope="module")
def first(made) -> dict:
    """One Playground reset state per task, as this adapter sees it before ``_finish`` (the
    adapter's own reset also computes poses, which compiles for a minute here)."""
    return {t: e._to_ours(jax.jit(e.unwrapped.reset)(jax.random.key(1)))
            for t, e in made.items()}


def test_ids_and_specs(made):
    ids = envs.list_envs("playground")
    for t in (*TASKS, "PandaRobotiqPushCubeSparse", "PandaPickCube", "PandaOpenCabinet"):
        assert f"playground:{t}" in ids
    for t, e in made.items():
        spec = e.spec
        assert spec.env_id == f"playground:{t}" and spec.has_success
        assert spec.episode_length == 150 and spec.action_size == 8
        assert spec.backend == "mjx-jax" and e.success_threshold == THR
        dense = e.unwrapped
        assert spec.observation_size == dense.observation_size


def test_added_camera_leaves_the_physics_unchanged(made):
    from mujoco_playground import manipulation as pg

    ours = made["PandaPickCubeSparse"].unwrapped.mj_model
    theirs = pg.load("PandaPickCube", config_overrides={"impl": "jax"}).mj_model
    assert theirs.ncam == 0 and ours.ncam == 1 and ours.camera(0).name == "side"
    compared = 0
    for field in dir(theirs):
        a = getattr(theirs, field, None)
        skip = field.startswith(("_", "cam_", "name", "text", "paths"))
        if skip or not isinstance(a, np.ndarray):
            continue
        np.testing.assert_array_equal(getattr(ours, field), a, err_msg=field)
        compared += 1
    assert compared > 100
    for field in ("timestep", "iterations", "ls_iterations", "integrator", "disableflags",
                  "ccd_iterations"):
        assert getattr(ours.opt, field) == getattr(theirs.opt, field), field


def _placed(env, state, offset: float):
    """Data and info with the object ``offset`` metres from the target (along y), the
    object upright, and the gripper marked as having reached it."""
    data, info = state.pipeline_state, dict(state.info)
    obj = env.unwrapped._obj_body
    target = info["target_pos"]
    data = data.replace(xpos=data.xpos.at[obj].set(target + jnp.array([0.0, offset, 0.0])),
                        xmat=data.xmat.at[obj].set(jnp.eye(3)))
    info["reached_box"] = jnp.ones(())
    return data, info


@pytest.mark.parametrize("task", TASKS)
def test_success_is_the_goal_distance_that_the_dense_reward_reads(made, first, task):
    env, state = made[task], first[task]
    dense = env.unwrapped
    raw_fn = dense._get_reward if task == "PandaPickCubeSparse" else dense._get_rewards
    offsets = jnp.array([0.0, 0.02, THR - 1e-3, THR + 1e-3, 0.2])

    def probe(offset):
        data, info = _placed(env, state, offset)
        box_target = raw_fn(data, dict(info))["box_target"]
        # The transition's reward is the indicator; Playground's reward is kept beside it.
        stepped = state.replace(pipeline_state=data, info=info, reward=jnp.float32(3.5))
        out = env._finish(stepped, first=False)
        return (env.goal_distance(data, info), env.success(data, info, state.metrics),
                box_target, out.reward, out.metrics)

    d, success, box_target, reward, metrics = jax.jit(jax.vmap(probe))(offsets)
    np.testing.assert_allclose(d, offsets, atol=1e-6)
    np.testing.assert_array_equal(success, (offsets < THR).astype(np.float32))
    # The reward's box_target term at distance d (upright cube: no orientation error).
    scale = 0.9 if task == "PandaPickCubeSparse" else 1.0
    np.testing.assert_allclose(box_target, 1 - np.tanh(5 * scale * np.asarray(d)), atol=1e-5)
    np.testing.assert_array_equal(reward, success)
    np.testing.assert_array_equal(metrics["success"], success)
    np.testing.assert_array_equal(metrics["dense_reward"], np.full(5, 3.5, np.float32))
    np.testing.assert_allclose(metrics["goal_distance"], d)


def test_threshold_keyword_and_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"success_threshold=-0.1 is invalid.*> 0"):
        envs.make_base("playground:PandaPickCubeSparse", success_threshold=-0.1)
    with pytest.raises(ValueError, match=r"success_threshold=0.1 is invalid.*own success"):
        envs.make_base("playground:PandaRobotiqPushCubeSparse", success_threshold=0.1)
    with pytest.raises(ValueError, match="unknown keyword"):
        envs.make_base("playground:PandaPickCubeSparse", radius=0.1)
    # No Menagerie where it is looked for: a clear ImportError instead of a network clone.
    from mujoco_playground._src import mjx_env

    monkeypatch.setattr(mjx_env, "MENAGERIE_PATH", mjx_env.MENAGERIE_PATH)  # restored after
    monkeypatch.setenv(manipulation.MENAGERIE_ENV_VAR, str(tmp_path))
    with pytest.raises(ImportError, match=r"franka_emika_panda.*MIMEX_MENAGERIE_PATH"):
        envs.make_base("playground:PandaOpenCabinetSparse")


def _check_steps(env, states, threshold: float) -> None:
    for s in states[1:]:
        r = np.asarray(s.reward)
        assert set(np.unique(r)) <= {0.0, 1.0}
        np.testing.assert_array_equal(r, np.asarray(s.metrics["success"]))
        np.testing.assert_array_equal(
            r, (np.asarray(s.metrics["goal_distance"]) < threshold).astype(np.float32))
        assert np.all(np.isfinite(np.asarray(s.metrics["dense_reward"])))


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_steps_under_jit_and_vmap(task):
    # A large threshold so that the 0/1 reward takes both values in a few random steps.
    thr = 0.45
    env = envs.make(f"playground:{task}", num_envs=3, success_threshold=thr)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    states = [reset(jax.random.key(0))]
    for i in range(3):
        a = jax.random.uniform(jax.random.key(10 + i), (3, 8), minval=-1.0, maxval=1.0)
        states.append(step(states[-1], a))
    _check_steps(env, states, thr)
    assert states[-1].obs.shape == (3, env.observation_size)
    # Reset states carry the poses of their qpos (Playground's own leave them at zero).
    s0, inner = states[0], env.unwrapped
    obj = np.asarray(s0.pipeline_state.xpos[:, inner._obj_body])
    assert np.all(obj[:, 2] > 0.01) and np.asarray(s0.pipeline_state.cam_xmat).any()
    np.testing.assert_allclose(
        s0.metrics["goal_distance"],
        np.linalg.norm(np.asarray(s0.info["target_pos"]) - obj, axis=-1), atol=1e-6)


@pytest.mark.slow
def test_pixel_frames_of_the_pick_task():
    pytest.importorskip("warp")
    from mimex_jax.envs.pixels import PixelConfig

    px = PixelConfig(camera="side", height=16, width=16, frame_stack=2, action_repeat=1)
    env = envs.make("playground:PandaPickCubeSparse", num_envs=2, pixels=px)
    s0 = jax.jit(env.reset)(jax.random.key(0))
    assert s0.obs.dtype == jnp.uint8 and s0.obs.shape == (2, 16, 16, 6)
    s1 = jax.jit(env.step)(s0, jnp.ones((2, 8)))
    assert s1.obs.dtype == jnp.uint8 and s1.obs.shape == (2, 16, 16, 6)
    np.testing.assert_array_equal(s1.obs[..., :3], s0.obs[..., 3:])  # the stack shifts
    assert int(np.asarray(s0.obs).std()) > 0  # a scene, not a blank image
    assert not np.array_equal(s1.obs[..., 3:], s0.obs[..., 3:])  # the arm moved
