"""PPO pieces: GAE against a hand computation, loss pieces, distributions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from mimex_jax.agents.ppo import ActorCritic, PPOLossConfig, gae, make_distribution, ppo_loss


def test_gae_hand_computed() -> None:
    # One env, three steps, episode ends after step 1 (index 1).
    r = jnp.array([[1.0], [2.0], [3.0]])
    v = jnp.array([[0.5], [1.0], [1.5]])
    d = jnp.array([[0.0], [1.0], [0.0]])
    last = jnp.array([2.0])
    g, lam = 0.9, 0.8
    adv, ret = gae(r, v, d, last, g, lam)
    # By hand: deltas
    d2 = 3.0 + 0.9 * 2.0 - 1.5          # 3.3
    d1 = 2.0 + 0.0 - 1.0                # 1.0 (terminal: no bootstrap)
    d0 = 1.0 + 0.9 * 1.0 - 0.5          # 1.4
    a2 = d2
    a1 = d1                              # chain cut at the terminal
    a0 = d0 + 0.9 * 0.8 * a1
    np.testing.assert_allclose(adv[:, 0], [a0, a1, a2], rtol=1e-6)
    np.testing.assert_allclose(ret, adv + v, rtol=1e-6)


def test_gae_truncation_bootstraps_from_final_value() -> None:
    r = jnp.array([[1.0], [1.0]])
    v = jnp.array([[0.0], [0.0]])
    d = jnp.array([[1.0], [0.0]])
    trunc = jnp.array([[1.0], [0.0]])
    boot = jnp.array([[5.0], [0.0]])
    adv, _ = gae(r, v, d, jnp.array([0.0]), 0.5, 1.0, trunc, boot)
    assert float(adv[0, 0]) == 1.0 + 0.5 * 5.0


def test_ppo_loss_clipping() -> None:
    cfg = PPOLossConfig(clip_eps=0.1, value_coef=2.0, entropy_coef=0.01)
    adv = jnp.array([1.0, -1.0])
    old = jnp.zeros(2)
    new = jnp.log(jnp.array([1.5, 0.5]))  # ratios 1.5 and 0.5: both clipped
    total, pieces = ppo_loss(new, old, adv, jnp.zeros(2), jnp.zeros(2), jnp.ones(2),
                             jnp.ones(2), cfg)
    # min(1.5*1, 1.1*1) = 1.1 ; min(0.5*-1, 0.9*-1) = -0.9  -> policy = -(1.1 - 0.9)/2
    np.testing.assert_allclose(pieces["policy_loss"], -(1.1 - 0.9) / 2, rtol=1e-6)
    np.testing.assert_allclose(pieces["value_loss"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(total, pieces["policy_loss"] + 2.0 - 0.01, rtol=1e-6)
    assert float(pieces["clip_fraction"]) == 1.0
    # Value clipping: a value moved past the clip range keeps the larger error.
    _, p2 = ppo_loss(old, old, adv, jnp.array([0.9, 0.9]), jnp.zeros(2), jnp.ones(2),
                     jnp.zeros(2), cfg)
    np.testing.assert_allclose(p2["value_loss"], 0.81, rtol=1e-6)  # (0.1 - 1)^2 beats 0.01


def test_gaussian_and_categorical_match_scipy() -> None:
    mean = jnp.array([[0.3, -1.0]])
    log_std = jnp.array([0.1, -0.5])
    dist = make_distribution(mean, log_std)
    a = jnp.array([[0.0, 0.2]])
    want = stats.norm(np.asarray(mean), np.exp(np.asarray(log_std))).logpdf(np.asarray(a)).sum()
    np.testing.assert_allclose(dist.log_prob(a), [want], rtol=1e-5)
    ent = stats.norm(0, np.exp(np.asarray(log_std))).entropy().sum()
    np.testing.assert_allclose(dist.entropy(), [ent], rtol=1e-5)
    logits = jnp.log(jnp.array([[0.2, 0.3, 0.5]]))
    cat = make_distribution(logits, None)
    np.testing.assert_allclose(cat.log_prob(jnp.array([2])), [np.log(0.5)], rtol=1e-5)
    np.testing.assert_allclose(cat.entropy(), [stats.entropy([0.2, 0.3, 0.5])], rtol=1e-5)
    samples = jax.vmap(lambda k: cat.sample(k)[0])(jax.random.split(jax.random.key(0), 4000))
    freq = np.bincount(np.asarray(samples), minlength=3) / 4000
    np.testing.assert_allclose(freq, [0.2, 0.3, 0.5], atol=0.03)


def test_actor_critic_shapes_and_init() -> None:
    net = ActorCritic(action_dim=3, intrinsic_value_head=True)
    params = net.init(jax.random.key(0), jnp.zeros((1, 7)))["params"]
    dist, v, v_int, torso = net.apply({"params": params}, jnp.ones((5, 7)))
    assert dist.loc.shape == (5, 3) and v.shape == (5,) and v_int.shape == (5,)
    assert torso.shape == (5, 64)
    # Small policy head at init (gain 0.01): near-zero means.
    assert float(jnp.abs(dist.loc).max()) < 0.1


def test_gae_and_loss_refuse_mismatched_shapes() -> None:
    import pytest

    z = jnp.zeros((3, 2))
    with pytest.raises(AssertionError):
        gae(z, jnp.zeros((3, 4)), z, jnp.zeros(2), 0.9, 0.9)     # values [T, N'] != rewards
    with pytest.raises(AssertionError):
        gae(z, z, z, jnp.zeros(3), 0.9, 0.9)                   # last_value is [N]
    v = jnp.zeros(4)
    with pytest.raises(AssertionError):
        ppo_loss(v, v, jnp.zeros(5), v, v, v, v, PPOLossConfig())
