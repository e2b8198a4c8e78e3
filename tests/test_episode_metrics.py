"""The trainer's per-iteration episode means keep env-specific ``episode_*`` metrics."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mimex_jax.trainer import episode_metrics, episode_step_metrics


def test_episode_metrics_average_every_episode_key_over_finished_episodes():
    step = {"episode_done": jnp.array([[1.0, 0.0], [1.0, 1.0]]),
            "episode_return": jnp.array([[2.0, 0.0], [4.0, 0.0]]),
            "episode_length": jnp.array([[3.0, 0.0], [5.0, 7.0]]),
            "episode_success": jnp.array([[1.0, 0.0], [0.0, 0.0]]),
            "episode_achievements": jnp.array([[50.0, 0.0], [25.0, 0.0]]),
            "success": jnp.ones((2, 2))}
    ep = episode_step_metrics(step)
    assert "success" not in ep and "episode_achievements" in ep
    out = {k: float(v) for k, v in episode_metrics(ep).items()}
    want = {"episodes": 3.0, "episode_return": 2.0, "episode_length": 5.0,
            "episode_success": 1 / 3, "episode_achievements": 25.0}
    assert out.keys() == want.keys()
    np.testing.assert_allclose([out[k] for k in want], list(want.values()), rtol=1e-6)
    none = episode_metrics({k: jnp.zeros(2) for k in ep})
    assert float(none["episodes"]) == 0.0
    np.testing.assert_array_equal([float(v) for v in none.values()], 0.0)
