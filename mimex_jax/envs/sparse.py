"""Sparse-reward versions of Brax tasks that ship only dense rewards.

``brax:reacher_sparse`` and ``brax:pusher_sparse``: the reward is 1.0 on every step on which the
fingertip (reacher) or the object (pusher) is within ``radius`` of the goal (distance in the
table plane, x-y), else 0.0. ``metrics["success"]`` is that same indicator,
``metrics["goal_distance"]`` the distance and ``metrics["dense_reward"]`` Brax's original reward.
Dynamics, observations and initial states are Brax's.

Default radii were chosen so that a uniformly random policy (actions ~ U[-1, 1]) succeeds, i.e.
is within the radius on at least one step, in under 5% of episodes, at the task's default
``episode_length`` and the default ``"generalized"`` backend. Measured with
``python -m mimex_jax.envs.sparse --seed S`` (256 episodes per seed, seeds 0 and 1):

- reacher_sparse: radius 0.005, episode_length 50 -> random success 2.3% / 3.1%
- pusher_sparse:  radius 0.05, episode_length 100 -> random success 0.0% / 0.4%

The default episode lengths are Gym's horizons for Reacher/Pusher (Brax's versions use the same
control step), not Brax's generic 1000: in 1000 steps a random reacher arm passes within 0.006
of the target in half of all episodes, so no useful radius stays under 5% there (the pusher's
random success at 1000 steps is about 5% already at radius 0.12). Other episode lengths or
backends change these rates; re-run the script (``--episode-length``, ``--radius``) to check.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mimex_jax import xla
from mimex_jax.envs.base import State
from mimex_jax.envs.brax_suite import BraxEnv, brax_keywords

__all__ = ["PUSHER_RADIUS", "REACHER_RADIUS", "SparsePusher", "SparseReacher", "SPARSE_TASKS"]

REACHER_RADIUS = 0.005
REACHER_EPISODE_LENGTH = 50  # Gym's Reacher horizon; Brax's reacher has the same 0.02 s step
PUSHER_RADIUS = 0.05
PUSHER_EPISODE_LENGTH = 100  # Gym's Pusher horizon; Brax's pusher has the same 0.05 s step


class _SparseBraxTask(BraxEnv):
    base_name: str = ""
    task_name: str = ""
    default_radius: float = 0.0

    def __init__(self, *, radius: float | None = None, **kwargs):
        allowed = sorted([*brax_keywords(self.base_name), "radius"])
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown keyword(s) {unknown} for brax:{self.task_name}; allowed: {allowed}"
            )
        radius = self.default_radius if radius is None else float(radius)
        if not radius >= 0.0:
            raise ValueError(f"radius must be >= 0 for brax:{self.task_name}, got {radius!r}")
        super().__init__(self.base_name, env_id=f"brax:{self.task_name}", **kwargs)
        self.radius = radius

    def goal_distance(self, obs: jax.Array) -> jax.Array:
        raise NotImplementedError

    def _sparse(self, state: State, success: jax.Array, dense: jax.Array) -> State:
        metrics = {
            **state.metrics,
            "success": success,
            "goal_distance": self.goal_distance(state.obs),
            "dense_reward": dense.astype(jnp.float32),
        }
        return state.replace(reward=success, metrics=metrics)

    def reset(self, rng: jax.Array) -> State:
        state = super().reset(rng)
        zero = jnp.zeros((), jnp.float32)
        return self._sparse(state, zero, zero)

    def step(self, state: State, action: jax.Array) -> State:
        nstate = super().step(state, action)
        success = (self.goal_distance(nstate.obs) <= self.radius).astype(jnp.float32)
        return self._sparse(nstate, success, nstate.reward)


class SparseReacher(_SparseBraxTask):
    """Brax reacher; reward 1.0 while the fingertip is within ``radius`` of the target."""

    base_name = "reacher"
    task_name = "reacher_sparse"
    default_radius = REACHER_RADIUS
    default_episode_length = REACHER_EPISODE_LENGTH

    def goal_distance(self, obs: jax.Array) -> jax.Array:
        # Brax's reacher observation ends with (fingertip - target) in 3-d.
        return jnp.linalg.norm(obs[-3:-1])


class SparsePusher(_SparseBraxTask):
    """Brax pusher; reward 1.0 while the object is within ``radius`` of the goal."""

    base_name = "pusher"
    task_name = "pusher_sparse"
    default_radius = PUSHER_RADIUS
    default_episode_length = PUSHER_EPISODE_LENGTH

    def goal_distance(self, obs: jax.Array) -> jax.Array:
        # Brax's pusher observation ends with the object position then the goal position.
        return jnp.linalg.norm(obs[-6:-4] - obs[-3:-1])


SPARSE_TASKS = {"reacher_sparse": SparseReacher, "pusher_sparse": SparsePusher}


def random_policy_episodes(env, episodes: int, num_envs: int, seed: int,
                           episode_length: int) -> tuple:
    """Per episode of uniformly random actions (U[-1, 1]) on an unbatched sparse env: the
    minimum of ``metrics["goal_distance"]`` (``inf`` when the env has none) and whether
    ``metrics["success"]`` was ever 1. Returns two numpy arrays of length ``episodes``."""
    import numpy as np

    def episode_batch(key):
        k_reset, k_act = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))

        def body(carry, k):
            s, min_d, hit = carry
            a = jax.random.uniform(k, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            d = s.metrics.get("goal_distance", jnp.full((num_envs,), jnp.inf))
            return (s, jnp.minimum(min_d, d), jnp.maximum(hit, s.metrics["success"])), None

        init = (state, jnp.full((num_envs,), jnp.inf), jnp.zeros((num_envs,)))
        (_, min_d, hit), _ = jax.lax.scan(body, init, jax.random.split(k_act, episode_length))
        return min_d, hit

    run = xla.jit(episode_batch, mjx=xla.steps_mjx(getattr(env, "env_id", "")))
    keys = jax.random.split(jax.random.PRNGKey(seed), -(-episodes // num_envs))
    out = [tuple(np.asarray(x) for x in run(k)) for k in keys]
    min_d = np.concatenate([o[0] for o in out])[:episodes]
    hit = np.concatenate([o[1] for o in out])[:episodes]
    return min_d, hit


def _measure(task: str, radius: float | None, episodes: int, num_envs: int, seed: int,
             episode_length: int) -> dict:
    """Random-policy success rate and min goal distance over ``episodes`` episodes."""
    import numpy as np

    env = SPARSE_TASKS[task](**({} if radius is None else {"radius": radius}))
    episode_length = episode_length or env.spec.episode_length
    min_d, _ = random_policy_episodes(env, episodes, num_envs, seed, episode_length)
    return {
        "task": task,
        "radius": env.radius,
        "episodes": int(min_d.size),
        "episode_length": episode_length,
        "seed": seed,
        "success_rate": float(np.mean(min_d <= env.radius)),
        "min_distance_quantiles": {
            q: float(np.quantile(min_d, q)) for q in (0.01, 0.02, 0.05, 0.1, 0.25, 0.5)
        },
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="random-policy success rate of sparse tasks")
    parser.add_argument("--tasks", nargs="+", default=sorted(SPARSE_TASKS))
    parser.add_argument("--radius", type=float, default=None)
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--episode-length", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for t in args.tasks:
        print(json.dumps(_measure(t, args.radius, args.episodes, args.num_envs, args.seed,
                                  args.episode_length)))
