"""DrQ-v2: replay sampling, n-step returns, augmentation, target updates, the fused step
(state and image envs, vmapped over seeds) and config validation."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimex_jax.agents.drqv2 import networks, replay
from mimex_jax.agents.drqv2.agent import Batch, make_drqv2, soft_update
from mimex_jax.agents.drqv2.config import DrQV2Config
from mimex_jax.agents.drqv2.train import build
from mimex_jax.checkpoint import Checkpointer
from mimex_jax.config import ConfigError, from_dict
from mimex_jax.envs.base import Env, EnvSpec, State, Wrapper
from mimex_jax.envs.wrappers import AutoReset, EpisodeStats, EpisodeTimeLimit, VecEnv
from mimex_jax.trainer import HParams, TrainConfig

# ------------------------------------------------------------------------------------------
# Replay buffer: known answers on a hand-built buffer (observation value = its id)

_sample = jax.jit(replay.sample, static_argnums=(2, 3, 5, 6, 7))
_add = jax.jit(replay.add)


def _stack_of(x: int, k: int) -> list[int]:
    """The ``k``-stack (oldest first) ending at scripted id ``x``; episodes start at 1, 10."""
    start = 1 if x < 10 else 10
    return [max(x - i, start) for i in range(k - 1, -1, -1)]


def _scripted(terminal: bool, k: int = 1) -> replay.Replay:
    """Episode A: 1 -> 2 -> 3 (ends: a true terminal or a time limit); episode B:
    10 -> 11 -> 12 -> 13 (in progress). Rewards and actions equal the produced obs id;
    observations are ``k``-stacks of ids (:func:`_stack_of`)."""
    v = lambda x: jnp.asarray([_stack_of(x, k)], jnp.float32)  # noqa: E731
    buf = replay.init(v(1), 1, 8, k)
    for nxt, done in ((2, 0), (3, 1), (11, 0), (12, 0), (13, 0)):
        disc = 0.0 if (done and terminal) else 1.0
        reset = 10 if done else nxt
        buf = _add(buf, jnp.asarray([[float(nxt)]]), jnp.asarray([float(nxt)]),
                   jnp.asarray([disc]), v(nxt), jnp.asarray([float(done)]), v(reset))
    return buf


@pytest.mark.parametrize("terminal, k", [(True, 1), (False, 1), (True, 2), (False, 3)])
def test_replay_nstep_known_answer(terminal, k):
    """n-step returns across a terminal / a time limit, with observations rebuilt from
    frames stored once (``k`` stacked)."""
    buf = _scripted(terminal, k)
    assert buf.frame.shape == (1, 8, 1)  # one frame per slot, not the stack
    np.testing.assert_array_equal(np.asarray(buf.frame[0, :7, 0]), [1, 2, 3, 10, 11, 12, 13])
    # starts: obs 1, 2 (one step left), 10, 11; not 3 (terminal obs), 12 (window incomplete)
    np.testing.assert_array_equal(np.asarray(jax.jit(
        replay.valid_starts, static_argnums=(1, 2, 3, 4))(buf, 2, 0, "pad2", k)[0]),
        [1, 1, 0, 1, 1, 0, 0, 0])
    s = _sample(buf, jax.random.key(0), 256, 2, 0.5, 3, "pad2", k)
    d3 = 0.0 if terminal else 1.0  # env discount of the step into obs 3
    expected = {  # obs: (action, reward, discount, next_obs, k, pad2 sequence)
        1: (2, 2 + 0.5 * 3, 0.5 * 0.5 * d3, 3, 2, [0, 0, 1]),
        2: (3, 3, 0.5 * d3, 3, 1, [0, 1, 2]),
        10: (11, 11 + 0.5 * 12, 0.25, 12, 2, [0, 0, 10]),
        11: (12, 12 + 0.5 * 13, 0.25, 13, 2, [0, 10, 11]),
    }
    stack = lambda x: [0] * k if x == 0 else _stack_of(x, k)  # noqa: E731
    seen = set()
    for i in range(256):
        o = int(s.obs[i, -1])
        a, r, disc, nxt, n, seq = expected[o]
        seen.add(o)
        assert np.asarray(s.obs[i]).tolist() == _stack_of(o, k)
        assert float(s.action[i, 0]) == a
        assert float(s.reward[i]) == pytest.approx(r)
        assert float(s.discount[i]) == pytest.approx(disc)
        assert np.asarray(s.next_obs[i]).tolist() == _stack_of(nxt, k) and int(s.steps[i]) == n
        assert np.asarray(s.seq[i]).tolist() == [stack(x) for x in seq]
    assert seen == set(expected)


@pytest.mark.parametrize("seq_type, t, want", [
    # the original's windows with idx = j + 1 (obs j): pad2 / pad left-pad with zeros,
    # full2 / full move the window to the episode's first T observations instead
    ("pad2", 2, {1: [0, 1], 2: [1, 2], 10: [0, 10], 11: [10, 11]}),
    ("pad", 2, {1: [1, 2], 2: [2, 3], 10: [10, 11], 11: [11, 12]}),
    ("pad", 3, {1: [0, 1, 2], 2: [1, 2, 3], 10: [0, 10, 11], 11: [10, 11, 12]}),
    ("full", 2, {1: [1, 2], 2: [2, 3], 10: [10, 11], 11: [11, 12]}),
    ("full2", 2, {1: [1, 2], 2: [1, 2], 10: [10, 11], 11: [10, 11]}),
    ("full", 3, {1: [1, 2, 3], 2: [1, 2, 3], 10: [10, 11, 12], 11: [10, 11, 12]}),
    ("full2", 3, {1: [1, 2, 3], 2: [1, 2, 3], 10: [10, 11, 12], 11: [10, 11, 12]}),
    # episode A has 3 observations < T = 4: its starts are never drawn; B has 4 written
    ("full", 4, {10: [10, 11, 12, 13], 11: [10, 11, 12, 13]}),
    ("full2", 4, {10: [10, 11, 12, 13], 11: [10, 11, 12, 13]}),
])
def test_replay_seq_types_known_answer(seq_type, t, want):
    buf = _scripted(True)
    s = _sample(buf, jax.random.key(1), 128, 2, 0.5, t, seq_type, 1)
    seen = set()
    for i in range(128):
        o = int(s.obs[i, 0])
        seen.add(o)
        assert np.asarray(s.seq[i, :, 0]).tolist() == want[o], o
    assert seen == set(want)


def test_replay_rebuilds_env_stacks_on_a_wrapping_ring():
    """Frame-stacked observations as :class:`PixelObservation` makes them (the first frame
    fills the stack at reset; each step drops the oldest frame) from 3 envs with random
    episode ends over a 12-slot ring written 60 times: every valid start's rebuilt stack
    equals the observation the env produced, and so do sampled obs, next_obs and the
    unpadded sequence elements."""
    n_env, cap, k, t_seq, rng = 3, 12, 3, 4, np.random.default_rng(0)
    count = iter(range(1, 256))

    def new_frame():
        return np.full((2, 2, 1), next(count), np.uint8)

    def restack(stack, frame):
        return frame.repeat(k, -1) if stack is None else np.concatenate([stack[..., 1:], frame],
                                                                         -1)

    obs = [restack(None, new_frame()) for _ in range(n_env)]
    buf = replay.init(jnp.asarray(np.stack(obs)), 1, cap, k)
    mirror = {(e, 0): obs[e] for e in range(n_env)}        # (env, slot) -> produced stack
    step_in_ep = {(e, 0): 0 for e in range(n_env)}
    t = np.zeros(n_env, int)
    for _ in range(60):
        ptr = np.asarray(buf.ptr)
        done = rng.random(n_env) < 0.25
        nxt = [restack(obs[e], new_frame()) for e in range(n_env)]
        reset = [restack(None, new_frame()) if done[e] else nxt[e] for e in range(n_env)]
        t += 1
        for e in range(n_env):
            mirror[e, ptr[e]], step_in_ep[e, ptr[e]] = nxt[e], t[e]
            mirror[e, (ptr[e] + 1) % cap], step_in_ep[e, (ptr[e] + 1) % cap] = reset[e], 0
        t = np.where(done, 0, t)
        buf = _add(buf, jnp.zeros((n_env, 1)), jnp.zeros(n_env), jnp.ones(n_env),
                   jnp.asarray(np.stack(nxt)), jnp.asarray(done, jnp.float32),
                   jnp.asarray(np.stack(reset)))
        obs = reset
    valid = np.asarray(jax.jit(replay.valid_starts, static_argnums=(1, 2, 3, 4))(
        buf, 2, t_seq, "pad2", k))
    es, js = np.nonzero(valid)
    rebuilt = np.asarray(jax.jit(replay.stacked, static_argnums=3)(
        buf, jnp.asarray(es), jnp.asarray(js), k))
    for i, (e, j) in enumerate(zip(es, js, strict=True)):
        np.testing.assert_array_equal(rebuilt[i], mirror[e, j])
    # the rebuilt stacks include reset stacks and stacks reaching back to an episode start
    assert any(step_in_ep[e, j] == 0 for e, j in zip(es, js, strict=True))
    assert any(step_in_ep[e, j] == 1 for e, j in zip(es, js, strict=True))
    s = _sample(buf, jax.random.key(3), 256, 2, 0.9, t_seq, "pad2", k)
    padded = 0
    for i in range(256):
        e, j, n = int(s.env[i]), int(s.slot[i]), int(s.steps[i])
        np.testing.assert_array_equal(np.asarray(s.obs[i]), mirror[e, j])
        np.testing.assert_array_equal(np.asarray(s.next_obs[i]), mirror[e, (j + n) % cap])
        real = [int(np.any(np.asarray(s.seq[i, m]))) for m in range(t_seq)]
        assert real == sorted(real) and real[-1] == 1  # zeros only before the real ones
        assert sum(real) <= step_in_ep[e, j] + 1
        padded += sum(real) < t_seq
        for m in range(t_seq - sum(real), t_seq):
            np.testing.assert_array_equal(np.asarray(s.seq[i, m]),
                                          mirror[e, (j - (t_seq - 1 - m)) % cap])
    assert 0 < padded < 256


def test_replay_frames_stored_once_memory():
    """84x84x9 observations (3 stacked 84x84x3 frames): the ring holds one 84x84x3 frame
    per slot, a third of the stacked layout's bytes for the observations."""
    obs = jax.ShapeDtypeStruct((4, 84, 84, 9), jnp.uint8)
    nbytes = lambda k: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(  # noqa: E731
        jax.eval_shape(lambda o: replay.init(o, 6, 1000, k), obs)))
    frames_only = 4 * 1000 * 84 * 84 * 3
    assert nbytes(1) - nbytes(3) == 2 * frames_only
    with pytest.raises(ValueError, match="frame_stack=2 is invalid"):
        replay.frame_shape((84, 84, 9), 2)


def test_replay_wrapped_ring_never_crosses_episodes():
    """Random episode ends over a ring that wraps many times: every sampled sequence and
    n-step window stays inside one episode (ids are episode * 1000 + step)."""
    n_env, cap, rng = 3, 12, np.random.default_rng(0)
    ep = np.zeros(n_env, int)
    t = np.zeros(n_env, int)
    buf = replay.init(jnp.asarray(np.zeros((n_env, 1)), jnp.float32), 1, cap)
    for _ in range(60):
        done = rng.random(n_env) < 0.2
        t += 1
        nxt = ep * 1000 + t
        ep = np.where(done, ep + 1, ep)
        t = np.where(done, 0, t)
        reset = ep * 1000 + t
        f = lambda x: jnp.asarray(x[:, None], jnp.float32)  # noqa: E731
        buf = _add(buf, f(nxt), jnp.asarray(nxt, jnp.float32), jnp.ones(n_env),
                  f(nxt), jnp.asarray(done, jnp.float32), f(reset))
    s = _sample(buf, jax.random.key(2), 512, 3, 0.9, 4, "pad2", 1)
    obs, nxt, seq = np.asarray(s.obs[:, 0]), np.asarray(s.next_obs[:, 0]), np.asarray(s.seq)
    k = np.asarray(s.steps)
    assert np.all(nxt // 1000 == obs // 1000) and np.all(nxt - obs == k) and np.all(k >= 1)
    for i in range(512):
        row = seq[i, :, 0]
        real = row[row > 0] if obs[i] % 1000 else row[-1:]  # an episode's step 0 has id e*1000
        assert row[-1] == obs[i]
        assert np.all(real // 1000 == obs[i] // 1000)
        assert np.all(np.diff(row[len(row) - len(real):]) == 1)  # consecutive, zeros before


# ------------------------------------------------------------------------------------------
# Augmentation, noise, target update


def test_random_shift_is_a_crop_within_pad():
    img = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.int32).reshape(2, 8, 8, 3).astype(jnp.uint8)
    out = networks.random_shift(jax.random.key(0), img, 2)
    assert out.shape == img.shape and out.dtype == jnp.uint8
    padded = np.pad(np.asarray(img), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    for b in range(2):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if np.array_equal(padded[b, dy:dy + 8, dx:dx + 8], np.asarray(out[b]))]
        assert hits
    again = networks.random_shift(jax.random.key(0), img, 2)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(again))  # deterministic per key
    seqs = jnp.stack([img, img + 1], axis=1)  # [B, T, H, W, C]: one offset per sequence
    sh = networks.random_shift_seq(jax.random.key(3), seqs, 2)
    assert sh.shape == seqs.shape
    np.testing.assert_array_equal(np.asarray(sh[:, 1]), np.asarray(sh[:, 0]) + 1)


def test_sample_action_clips_noise_and_clamps():
    mean = jnp.full((1000, 2), 0.9)
    a = networks.sample_action(jax.random.key(0), mean, jnp.asarray(1.0), 0.3)
    assert float(jnp.min(a)) >= 0.6 - 1e-6 and float(jnp.max(a)) <= 1.0 - 1e-6
    assert float(networks.stddev((1.0, 0.1, 100.0), jnp.asarray(50))) == pytest.approx(0.55)
    assert float(networks.stddev((1.0, 0.1, 100.0), jnp.asarray(500))) == pytest.approx(0.1)


def test_agent_update_soft_updates_target():
    cfg = DrQV2Config(hidden_dim=16, feature_dim=4, critic_target_tau=0.25)
    drq = make_drqv2(cfg, (3,), jnp.float32, 2)
    state = drq.agent.init(jax.random.key(0), jnp.zeros((1, 3)))
    state = state._replace(target=jax.tree.map(jnp.zeros_like, state.target))
    batch = Batch(jnp.ones((8, 3)), jnp.zeros((8, 2)), jnp.ones(8), jnp.full(8, 0.9),
                  jnp.ones((8, 3)))
    new, m = jax.jit(drq.agent.update)(state, batch, jax.random.key(1), 0, 1e-3)
    want = soft_update(state.target, new.params["critic"], 0.25)
    for x, y in zip(jax.tree.leaves(new.target), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6)
    old, updated = jax.tree.leaves(state.params["critic"]), jax.tree.leaves(new.params["critic"])
    assert any(not np.allclose(a, b) for a, b in zip(old, updated, strict=True))
    assert np.isfinite(float(m["critic_loss"]))
    x = {"w": jnp.asarray([0.0, 4.0])}
    np.testing.assert_allclose(soft_update(x, {"w": jnp.asarray([4.0, 0.0])}, 0.25)["w"],
                               [1.0, 3.0])


# ------------------------------------------------------------------------------------------
# The fused step on a state env and a tiny synthetic image env, vmapped over seeds


class DotImageEnv(Env):
    """A bright dot on a 16x16x3 uint8 image; actions move it; reward -|position|."""

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec("test:dot", 16 * 16 * 3, "continuous", 2, action_low=(-1.0, -1.0),
                       action_high=(1.0, 1.0), episode_length=None)

    def _obs(self, pos):
        grid = jnp.arange(16, dtype=jnp.float32) / 7.5 - 1.0
        d = jnp.square(grid[:, None] - pos[0]) + jnp.square(grid[None, :] - pos[1])
        img = (255.0 * jnp.exp(-8.0 * d)).astype(jnp.uint8)
        return jnp.repeat(img[..., None], 3, axis=-1)

    def reset(self, rng):
        pos = jax.random.uniform(rng, (2,), minval=-1.0, maxval=1.0)
        return State(pipeline_state=pos, obs=self._obs(pos), reward=jnp.zeros(()),
                     done=jnp.zeros(()), metrics={}, info={"truncation": jnp.zeros(())})

    def step(self, state, action):
        pos = jnp.clip(state.pipeline_state + 0.2 * action, -1.0, 1.0)
        return state.replace(pipeline_state=pos, obs=self._obs(pos),
                             reward=-jnp.sum(jnp.abs(pos)), done=jnp.zeros(()))


SMALL = (("batch_size", 8), ("hidden_dim", 16), ("feature_dim", 4), ("num_expl_steps", 8),
         ("num_seed_steps", 8), ("buffer_size", 64), ("update_every_steps", 2))
TINY_MIMEX = (("embed_dim", 8), ("depth", 1), ("num_heads", 2), ("decoder_embed_dim", 8),
              ("decoder_num_heads", 2), ("mask_ratio", 0.5))


def _run(built, hp, seeds, iters):
    init = jax.jit(jax.vmap(built.init, in_axes=(0, None)))
    step = jax.jit(jax.vmap(built.update_step, in_axes=(0, None)))
    state = init(jax.vmap(jax.random.key)(jnp.asarray(seeds)), hp)
    out = []
    for _ in range(iters):
        state, m = step(state, hp)
        out.append(m)
    return state, out


def test_fused_step_state_env_vmapped_seeds_and_exact_resume(tmp_path):
    """Also the bonus's encoder options: an EMA copy (``ema_tau`` 0.25, initialised to the
    encoder, moved ``tau`` of the way to it before each bonus update) read through the
    actor's trunk (``bonus_features: actor_trunk``, ``feature_dim`` 4 wide, not the state
    encoder's 12)."""
    tau = 0.25
    cfg = TrainConfig(agent="drqv2", env_id="gymnax:Pendulum-v1", num_envs=2, total_steps=64,
                      reward="mimex", seq_len=3, mimex=TINY_MIMEX,
                      drqv2=SMALL + (("state_hidden", (12,)), ("ema_tau", tau),
                                     ("bonus_features", "actor_trunk")))
    built = build(cfg)
    hp = HParams(lr=1e-3, mask_ratio=0.5)
    first = jax.jit(built.init)(jax.random.key(0), hp)
    chex.assert_trees_all_equal(first.bonus_encoder, first.params["encoder"])
    widths = {x.shape[0] for x in jax.tree.leaves(first.reward_state.params) if x.ndim == 2}
    assert 4 in widths and 12 not in widths, widths  # the reward model reads trunk features
    state, ms = _run(built, hp, [0, 1, 0], 4)
    # exact resume with a non-empty buffer: save, restore, continue == continue
    step = jax.jit(jax.vmap(built.update_step, in_axes=(0, None)))
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(4, state, cfg, hp)
        restored, _, _ = ckpt.restore(jax.eval_shape(lambda: state), cfg=cfg)
    a, ma = step(state, hp)
    b, mb = step(restored, hp)
    for x, y in zip(jax.tree.leaves((a.params, a.buffer, a.bonus_encoder, ma)),
                    jax.tree.leaves((b.params, b.buffer, b.bonus_encoder, mb)), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # the EMA step of this update, from the encoder it started with
    assert np.all(np.asarray(ma["updated"]) == 1.0)
    chex.assert_trees_all_close(a.bonus_encoder, jax.tree.map(
        lambda e, o: tau * e + (1 - tau) * o, state.params["encoder"], state.bonus_encoder),
        rtol=1e-6, atol=1e-7)
    assert max(float(np.max(np.abs(x - y))) for x, y in zip(
        jax.tree.leaves(a.bonus_encoder), jax.tree.leaves(a.params["encoder"]),
        strict=True)) > 0  # the copy lags the encoder
    assert [float(m["updated"][0]) for m in ms] == [0.0, 1.0, 1.0, 1.0]  # 8 seed steps
    last = ms[-1]
    for k in ("critic_loss", "actor_loss", "reward_int", "episode_return"):
        assert np.all(np.isfinite(np.asarray(last[k]))), k
    assert np.all(np.asarray(last["reward_int"]) > 0)
    # seed 0 twice: identical; seeds 0 and 1 differ
    for leaf in jax.tree.leaves(state.params):
        np.testing.assert_array_equal(np.asarray(leaf[0]), np.asarray(leaf[2]))
    # seed 1 alone (not vmapped) matches its member of the vmapped run
    alone = jax.jit(built.init)(jax.random.key(1), hp)
    for _ in range(4):
        alone, m1 = jax.jit(built.update_step)(alone, hp)
    for x, y in zip(jax.tree.leaves((alone.params, alone.buffer, m1)),
                    jax.tree.leaves((state.params, state.buffer, ms[-1])), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y[1]), rtol=1e-4, atol=1e-5)
    assert not np.allclose(np.asarray(last["critic_loss"][0]),
                           np.asarray(last["critic_loss"][1]))
    # the first slot + 4 iterations x 2 steps, no episode end within 8 steps
    assert np.all(np.asarray(state.buffer.size) == 9)
    assert np.asarray(state.iteration).tolist() == [4, 4, 4]


@pytest.mark.parametrize("reward", [pytest.param("rnd", marks=pytest.mark.slow), "icm"])
def test_fused_step_rnd_icm_on_replayed_batches(reward):
    """ICM (obs, next_obs, action) in the default suite; RND (obs only) behind slow."""
    cfg = TrainConfig(agent="drqv2", env_id="gymnax:Pendulum-v1", num_envs=2, total_steps=64,
                      reward=reward, seq_len=1, drqv2=SMALL)
    built = build(cfg)
    hp = HParams(lr=1e-3)
    state = jax.jit(built.init)(jax.random.key(0), hp)
    step = jax.jit(built.update_step)
    for _ in range(3):
        state, m = step(state, hp)
    assert float(m["updated"]) == 1.0 and float(m["reward_int"]) > 0
    assert np.isfinite(float(m["critic_loss"]))
    # hparams.reward_scale reaches the critic's targets (same state and key, same program)
    _, m_same = step(state, hp)
    _, m_half = step(state, hp._replace(reward_scale=0.5))
    assert float(m_same["critic_loss"]) != float(m_half["critic_loss"])
    assert float(m_same["reward_ext"]) == float(m_half["reward_ext"])  # logged unscaled


class StackFrames(Wrapper):
    """Frame stacking as :class:`~mimex_jax.envs.pixels.PixelObservation` does it: the
    first frame fills the stack at reset; each step drops the oldest frame (channels)."""

    def __init__(self, env: Env, k: int):
        super().__init__(env)
        self.k = k

    def reset(self, rng):
        s = self.env.reset(rng)
        return s.replace(obs=jnp.tile(s.obs, (1, 1, self.k)))

    def step(self, state, action):
        c = state.obs.shape[-1] // self.k
        s = self.env.step(state.replace(obs=state.obs[..., -c:]), action)
        return s.replace(obs=jnp.concatenate([state.obs[..., c:], s.obs], -1))


def _image_env(n, k=1):
    return AutoReset(VecEnv(StackFrames(EpisodeStats(EpisodeTimeLimit(DotImageEnv(), 3)), k),
                            n))


def test_fused_step_image_env_vmapped_seeds():
    """A 2-frame-stacked image env: the buffer holds single frames, and after every
    iteration the newest slot's rebuilt stack equals the env's current observation."""
    cfg = TrainConfig(agent="drqv2", env_id="test:dot", num_envs=2, total_steps=64,
                      reward="mimex", seq_len=2, mimex=TINY_MIMEX, drqv2=SMALL)
    built = build(cfg, env=_image_env(2, 2), frame_stack=2)
    hp = HParams(lr=1e-3, mask_ratio=0.5)
    init = jax.jit(jax.vmap(built.init, in_axes=(0, None)))
    step = jax.jit(jax.vmap(built.update_step, in_axes=(0, None)))
    newest = jax.jit(jax.vmap(lambda b: replay.stacked(b, jnp.arange(2), (b.ptr - 1) % 32, 2)))
    state = init(jax.vmap(jax.random.key)(jnp.asarray([0, 1])), hp)
    ms = []
    for _ in range(4):
        np.testing.assert_array_equal(np.asarray(newest(state.buffer)),
                                      np.asarray(state.env_state.obs))
        state, m = step(state, hp)
        ms.append(m)
    np.testing.assert_array_equal(np.asarray(newest(state.buffer)),
                                  np.asarray(state.env_state.obs))
    assert state.env_state.obs.shape[2:] == (16, 16, 6)
    assert state.buffer.frame.dtype == jnp.uint8 and state.buffer.frame.shape[3:] == (16, 16, 3)
    assert "conv_0" in state.params["encoder"]
    last = ms[-1]
    assert np.all(np.asarray(last["updated"]) == 1.0)
    # 3-step episodes end at env steps 3 and 6 (iterations 2 and 3), in both envs
    assert [np.asarray(m["episodes"]).tolist() for m in ms] == [[0, 0], [2, 2], [2, 2], [0, 0]]
    assert np.all(np.asarray(ms[1]["episode_length"]) == 3.0)
    for k in ("critic_loss", "actor_loss", "reward_int"):
        assert np.all(np.isfinite(np.asarray(last[k]))), k
    # the first slot, 8 steps, and one more first slot per finished episode (2 per env)
    assert np.asarray(state.buffer.size).tolist() == [[1 + 8 + 2] * 2] * 2


# ------------------------------------------------------------------------------------------
# Config validation


def _cfg(**drq):
    return {"train": {"agent": "drqv2", "env_id": "gymnax:Pendulum-v1", "num_envs": 4,
                      "drqv2": drq}}


@pytest.mark.parametrize("drq, match", [
    ({"batch_size": 0}, r"train\.drqv2\.batch_size=0 is invalid"),
    ({"seq_type": "fulll"}, r"train\.drqv2\.seq_type='fulll' is invalid; allowed"),
    ({"stddev_schedule": "linear(1,0.1)"}, r"stddev_schedule"),
    ({"critic_target_tau": 0.0}, r"critic_target_tau=0.0 is invalid"),
    ({"nstep": "three"}, r"train\.drqv2\.nstep='three' has the wrong type"),
    ({"bogus": 1}, r"unknown key train\.drqv2\.bogus"),
    ({"buffer_size": 16}, r"buffer_size=16 is invalid"),
    ({"ema_tau": 0.0}, r"train\.drqv2\.ema_tau=0\.0 is invalid; allowed: in \(0, 1\]"),
    ({"bonus_features": "actor"}, r"bonus_features='actor' is invalid; allowed"),
])
def test_config_errors(drq, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(_cfg(**drq))


def test_config_agent_selection():
    rc = from_dict(_cfg(nstep=1, batch_size=32))
    assert rc.train.agent == "drqv2" and dict(rc.train.drqv2) == {"nstep": 1, "batch_size": 32}
    assert rc.train.steps_per_iteration == 4 * 2
    with pytest.raises(ConfigError, match=r"agent='sac' is invalid"):
        from_dict({"train": {"agent": "sac"}})
    with pytest.raises(ConfigError, match=r"drqv2="):
        from_dict({"train": {"drqv2": {"nstep": 1}}})  # ppo with drqv2 settings
    assert dataclasses.replace(rc.train, agent="ppo", drqv2=()).steps_per_iteration == 4 * 32


# ------------------------------------------------------------------------------------------
# Learning (slow): state DrQ-v2 on gymnax Pendulum-v1 from the CPU presets


@pytest.mark.slow
def test_drqv2_learns_pendulum_five_seeds():
    """configs/agents/drqv2_cpu.yaml + configs/tasks/pendulum.yaml, 8,000 env steps, five
    seeds in one vmapped program: every seed's greedy return over 8 episodes beats -400
    (a random policy scores about -1,200)."""
    from pathlib import Path

    from mimex_jax import loop
    from mimex_jax.config import load_config
    from mimex_jax.evaluate import make_evaluate

    root = Path(__file__).resolve().parents[1] / "configs"
    rc = load_config([root / "agents/drqv2_cpu.yaml", root / "tasks/pendulum.yaml"],
                     ["train.total_steps=8000"])
    seeds = [0, 1, 2, 3, 4]
    hp = jax.tree.map(lambda x: jnp.full((len(seeds),), x, jnp.float32), rc.hparams)
    runner = loop.make_runner(rc.train, sweep=True)
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    state, _ = loop.run(runner, hp, keys, chunk=250)
    evaluate = make_evaluate(rc.train, 8)
    out = jax.jit(jax.vmap(lambda p, k: evaluate(p, (), k, True)))(
        state.params, jax.random.split(jax.random.key(7), len(seeds)))
    returns = np.asarray(out["return"]).mean(axis=1)
    print("greedy returns per seed:", np.round(returns, 1))
    assert np.all(returns > -400.0), returns


@pytest.mark.slow
def test_drqv2_pixels_cli_end_to_end(tmp_path):
    """The issue's command on a pixel DM Control task with a tiny budget (32x32 images,
    3 stacked frames, 2 envs, 64 env steps, 20-step episodes): it trains through episode
    ends, updates with the MIMEx bonus, evaluates and writes its run directory. A smoke
    test (about 5 minutes of compiling on 2 CPU cores), not a learning claim."""
    pytest.importorskip("warp")
    pytest.importorskip("mujoco_playground")
    import json
    from pathlib import Path

    from mimex_jax.cli import main

    root = Path(__file__).resolve().parents[1] / "configs"
    sets = ["train.num_envs=2", "train.total_steps=64", "train.pixels.height=32",
            "train.pixels.width=32", "train.episode_length=20", "train.drqv2.batch_size=16",
            "train.drqv2.buffer_size=200", "train.drqv2.num_seed_steps=16",
            "train.drqv2.num_expl_steps=16", "train.drqv2.updates_per_step=1",
            "run.compare_baseline=false", "run.eval_episodes=1", "run.chunk=8"]
    argv = ["train", "-c", str(root / "agents/drqv2_cpu.yaml"), "-c",
            str(root / "tasks/cartpole_swingup_sparse_pixels.yaml"), "-c",
            str(root / "methods/mimex_t5.yaml"), "--out", str(tmp_path / "run"), "--no-progress"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 32 and rows[-1]["env_steps"] == 64
    assert sum(r["episodes"] for r in rows) == 2  # both envs ended a 20-step episode
    assert all(r["updated"] == 1.0 and np.isfinite(r["critic_loss"]) and r["reward_int"] > 0
               for r in rows[8:])
