"""MuJoCo Playground's Franka Panda tasks and their sparse-success versions (PixMC-style).

Env ids (suite ``playground:``):

- ``PandaPickCube``, ``PandaOpenCabinet``, ``PandaRobotiqPushCube``: Playground's tasks as
  they ship (dense shaped rewards), through :class:`~mimex_jax.envs.playground_suite.
  PlaygroundEnv`.
- ``PandaPickCubeSparse``, ``PandaOpenCabinetSparse``, ``PandaRobotiqPushCubeSparse``: the
  same dynamics, observations, initial states and terminations; the reward is 1.0 on every
  step on which the task's success condition holds, else 0.0. ``metrics["success"]`` is that
  same indicator, ``metrics["dense_reward"]`` Playground's reward and (for the two tasks with a
  goal distance) ``metrics["goal_distance"]`` the distance the condition reads. These are the
  closest runnable relatives of MIMEx's Franka/Kuka Pick/Cabinet/Move *Sparse* PixMC tasks.

Success conditions:

- PickCube (Playground has no success notion): the cube's centre is within
  ``success_threshold`` (default 0.05 m, the threshold of Playground's own
  ``PandaPickCubeCartesian`` for the same cube) of the target point, the point the reward's
  ``box_target`` term pulls it to. Targets lie 0.2-0.4 m above the table, so success means the
  cube was picked up and carried there. The reward's small orientation term is not part of it
  (the target orientation is the cube's initial one).
- OpenCabinet (no success notion either): the handle's centre is within ``success_threshold``
  (default 0.05 m) of the target point of the reward's ``box_target`` term. The handle slides
  along x only and starts 0.1-0.3 m from the target, so success means the drawer was pulled
  open by at least that distance less the threshold.
- RobotiqPushCube: Playground's own ``metrics["success"]`` (cube within 3 cm and 10 degrees of
  the target pose, held for ``reward_config.success_step_count`` steps); Playground then moves
  the target (its curriculum), so an episode may succeed several times.

Episodes do not end on success (as the DM Control sparse tasks and ``brax:reacher_sparse``).
Reset states carry the poses (forward kinematics, cameras, lights) of their ``qpos``:
Playground's Panda resets leave them at zero, which would render black first frames. The
observation vector of a reset state is still Playground's (computed before the poses).

Assets: Playground loads the robots from a MuJoCo Menagerie checkout at
``mujoco_playground/external_deps/mujoco_menagerie`` and tries to ``git clone`` one when it is
missing. Here a missing checkout is an ``ImportError`` that names the directories needed
(``franka_emika_panda``; ``robotiq_2f85_v4`` too for the Robotiq task); the environment
variable ``MIMEX_MENAGERIE_PATH`` points Playground at a checkout elsewhere.

Cameras: ``PandaOpenCabinet`` defines ``side``. ``PandaPickCube``'s and
``PandaRobotiqPushCube``'s scenes define none; for pixel observations the cabinet scene's
``side`` camera (same robot base and floor; it sees the arm, the table area where cubes start
and the heights where targets lie) is added to their worldbody. (The ``front`` camera of
Playground's vision pick-cube scene was tried first: placed for that scene's cube at x = 1, it
shows neither the arm nor the targets of ``PandaPickCube``.) A camera has no mass or
contacts, so the physics is unchanged (the test suite checks the model arrays). The target
is Playground's translucent marker (alpha 0.2 for the cube task).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any

import jax
import jax.numpy as jnp

from mimex_jax.envs.base import State
from mimex_jax.envs.playground_suite import PlaygroundEnv

__all__ = ["MENAGERIE_ENV_VAR", "PANDA_TASKS", "SPARSE_PANDA_TASKS", "PandaSparseEnv",
           "menagerie_missing"]

MENAGERIE_ENV_VAR = "MIMEX_MENAGERIE_PATH"
# Playground task -> the Menagerie directories its scene loads.
PANDA_TASKS = {
    "PandaPickCube": ("franka_emika_panda",),
    "PandaOpenCabinet": ("franka_emika_panda",),
    "PandaRobotiqPushCube": ("franka_emika_panda", "robotiq_2f85_v4"),
}
SPARSE_PANDA_TASKS = {f"{name}Sparse": name for name in PANDA_TASKS}
DEFAULT_SUCCESS_THRESHOLD = 0.05
# The camera added to scenes that define none: (Playground subfolder, scene file, camera name).
_CAMERA_SCENE = ("franka_emika_panda", "mjx_cabinet.xml", "side")


def _mjx_env():
    from mujoco_playground._src import mjx_env

    return mjx_env


def menagerie_missing(task: str) -> list[str]:
    """The Menagerie directories ``task`` needs that are not installed (empty when ready).

    Honours ``MIMEX_MENAGERIE_PATH`` (which then becomes Playground's Menagerie path: Playground
    reads ``mjx_env.MENAGERIE_PATH`` whenever it loads a robot's assets).
    """
    mjx_env = _mjx_env()
    override = os.environ.get(MENAGERIE_ENV_VAR)
    if override:
        from etils import epath

        mjx_env.MENAGERIE_PATH = epath.Path(override)
    root = mjx_env.MENAGERIE_PATH
    return [str(root / d) for d in PANDA_TASKS[task] if not (root / d).is_dir()]


def check_menagerie(task: str) -> None:
    """Raises ``ImportError`` naming what is missing instead of letting Playground clone."""
    missing = menagerie_missing(task)
    if missing:
        raise ImportError(
            f"playground:{task} needs MuJoCo Menagerie's robot models, missing: {missing}. "
            "Playground would clone Menagerie from the network on first use; put a checkout "
            f"(directories {list(PANDA_TASKS[task])}) there, or set {MENAGERIE_ENV_VAR} to a "
            "checkout elsewhere")


def _camera_element() -> ET.Element:
    sub, fname, name = _CAMERA_SCENE
    path = _mjx_env().ROOT_PATH / "manipulation" / sub / "xmls" / fname
    for cam in ET.fromstring(path.read_text()).iter("camera"):
        if cam.get("name") == name:
            return cam
    raise ValueError(f"camera {name!r} not found in Playground's {path}")


def add_default_camera(env: Any) -> None:
    """Gives a Panda Playground env without cameras the ``front`` camera (in place).

    The scene is compiled again from the env's XML with one ``<camera>`` more in its
    worldbody; the options the env set after compiling (``opt``) are copied over, and the MJX
    model is put again with the env's ``impl`` (Playground's own ``PandaOpenCabinet`` edits its
    model the same way).
    """
    import mujoco
    from mujoco import mjx

    old = env.mj_model
    if old.ncam:
        return
    root = ET.fromstring(open(env.xml_path).read())
    world = root.find("worldbody")
    if world is None:
        world = ET.SubElement(root, "worldbody")
    world.insert(0, _camera_element())
    new = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"),
                                         assets=env._model_assets)
    for field in dir(old.opt):
        if not field.startswith("_"):
            value = getattr(old.opt, field)
            if not callable(value):
                setattr(new.opt, field, value)
    env._mj_model = new
    env._mjx_model = mjx.put_model(new, impl=env._config.impl)


class PandaSparseEnv(PlaygroundEnv):
    """A Panda task with reward 1.0 while its success condition holds, else 0.0.

    Keyword ``success_threshold`` (metres; PickCube and OpenCabinet only) besides the task's
    Playground config entries.
    """

    _ADDED = ("success", "dense_reward", "goal_distance")

    def __init__(self, name: str, *, success_threshold: float | None = None,
                 **config_overrides):
        if name not in SPARSE_PANDA_TASKS:
            raise ValueError(f"unknown sparse Panda task {name!r}; available: "
                             f"{sorted(SPARSE_PANDA_TASKS)}")
        base = SPARSE_PANDA_TASKS[name]
        has_distance = base != "PandaRobotiqPushCube"
        if success_threshold is not None and not has_distance:
            raise ValueError(f"success_threshold={success_threshold!r} is invalid for "
                             f"playground:{name}; allowed: null (the task's own success test)")
        thr = DEFAULT_SUCCESS_THRESHOLD if success_threshold is None else success_threshold
        if not (isinstance(thr, (int, float)) and not isinstance(thr, bool) and thr > 0):
            raise ValueError(f"success_threshold={success_threshold!r} is invalid for "
                             f"playground:{name}; allowed: a number > 0 (metres)")
        self.success_threshold = float(thr) if has_distance else None
        super().__init__(base, env_id=f"playground:{name}", **config_overrides)

    def goal_distance(self, data: Any, info: dict) -> jax.Array:
        """Distance from the object (cube or handle) to the reward's target point."""
        obj = data.xpos[self._env._obj_body]
        return jnp.linalg.norm(info["target_pos"] - obj).astype(jnp.float32)

    def success(self, data: Any, info: dict, metrics: dict) -> jax.Array:
        """The task's success indicator (float32 0/1) for a Playground state's parts."""
        if self.success_threshold is None:
            return jnp.asarray(metrics["success"], jnp.float32)
        return (self.goal_distance(data, info) < self.success_threshold).astype(jnp.float32)

    def _finish(self, state: State, first: bool) -> State:
        zero = jnp.zeros((), jnp.float32)
        success = zero if first else self.success(state.pipeline_state, state.info,
                                                   state.metrics)
        metrics = {**state.metrics, "success": success, "dense_reward": state.reward}
        if self.success_threshold is not None:
            metrics["goal_distance"] = self.goal_distance(state.pipeline_state, state.info)
        return state.replace(reward=success, metrics=metrics)


def _measure(task: str, episodes: int, num_envs: int, seed: int,
             threshold: float | None) -> dict:
    """Random-policy (U[-1, 1]) success rate and min goal distance of one sparse Panda task."""
    import numpy as np

    from mimex_jax.envs.sparse import random_policy_episodes

    env = PandaSparseEnv(task, **({} if threshold is None else {"success_threshold": threshold}))
    length = env.spec.episode_length
    min_d, hit = random_policy_episodes(env, episodes, num_envs, seed, length)
    out = {"task": task, "success_threshold": env.success_threshold, "episodes": int(hit.size),
           "episode_length": length, "seed": seed, "success_rate": float(np.mean(hit > 0))}
    if np.all(np.isfinite(min_d)):
        out["min_distance_quantiles"] = {q: float(np.quantile(min_d, q))
                                         for q in (0.0, 0.1, 0.5, 0.9)}
    return out


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="random-policy success of sparse Panda tasks")
    parser.add_argument("--tasks", nargs="+", default=["PandaPickCubeSparse"])
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--success-threshold", type=float, default=None)
    args = parser.parse_args()
    for t in args.tasks:
        print(json.dumps(_measure(t, args.episodes, args.num_envs, args.seed,
                                  args.success_threshold)), flush=True)
