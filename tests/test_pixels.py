"""Pixel observations (mimex_jax.envs.pixels) and PPO from pixels.

The fast tests use a one-joint MJX scene (a red ball sliding along x in front of a camera)
so that only the renderer, not a task's physics, has to compile; the fused PPO step from
pixels on Playground's cart-pole is behind ``slow`` (its physics compiles for minutes here).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("warp")
mujoco = pytest.importorskip("mujoco")
from mujoco import mjx  # noqa: E402

from mimex_jax.config import ConfigError, load_config  # noqa: E402
from mimex_jax.envs.base import Env, EnvSpec, State  # noqa: E402
from mimex_jax.envs.pixels import (  # noqa: E402
    ActionRepeat,
    PixelConfig,
    PixelObservation,
    check_layout,
)
from mimex_jax.envs.wrappers import AutoReset, EpisodeStats, EpisodeTimeLimit, VecEnv  # noqa: E402

H = W = 24
FOVY = 45.0
DEPTH = 2.0
XML = f"""
<mujoco>
  <worldbody>
    <light pos="0 -1 3" dir="0 0.3 -1"/>
    <!-- a camera before "front", which makes "front" camera 1: frames must come from the
         camera asked for, not from the model's first one -->
    <camera name="above" pos="0 0 {DEPTH}" xyaxes="1 0 0 0 1 0" fovy="{FOVY}"/>
    <camera name="front" pos="0 -{DEPTH} 0" xyaxes="1 0 0 0 0 1" fovy="{FOVY}"/>
    <body name="ball">
      <joint name="x" type="slide" axis="1 0 0"/>
      <geom type="sphere" size="0.08" rgba="1 0 0 1"/>
    </body>
  </worldbody>
</mujoco>
"""
N, STACK, REPEAT, LENGTH = 3, 3, 2, 3


class Slider(Env):
    """A ball at x = qpos; each step moves it by 0.1 * action; reward 1 per physics step."""

    def __init__(self):
        self.mj_model = mujoco.MjModel.from_xml_string(XML)
        self._m = mjx.put_model(self.mj_model, impl="jax")

    def _at(self, d, x):
        return mjx.forward(self._m, d.replace(qpos=jnp.reshape(x, (1,)).astype(jnp.float32)))

    def reset(self, rng):
        d = mjx.make_data(self.mj_model, impl="jax")
        d = self._at(d, jax.random.uniform(rng, (), minval=-0.3, maxval=0.3))
        zero = jnp.zeros((), jnp.float32)
        return State(pipeline_state=d, obs=d.qpos.astype(jnp.float32), reward=zero, done=zero,
                     metrics={}, info={"truncation": zero})

    def step(self, state, action):
        d = self._at(state.pipeline_state, state.pipeline_state.qpos[0] + 0.1 * action[0])
        return state.replace(pipeline_state=d, obs=d.qpos.astype(jnp.float32),
                             reward=jnp.ones((), jnp.float32))

    @property
    def spec(self):
        return EnvSpec(env_id="test:slider", observation_size=1, action_kind="continuous",
                       action_size=1, action_low=(-1.0,), action_high=(1.0,))


def make_env(proprio: bool = False) -> Env:
    env = EpisodeStats(EpisodeTimeLimit(ActionRepeat(Slider(), REPEAT), LENGTH))
    cfg = PixelConfig(camera="front", height=H, width=W, frame_stack=STACK,
                      action_repeat=REPEAT, proprio=proprio)
    return AutoReset(PixelObservation(VecEnv(env, N), cfg))


@pytest.fixture(scope="module")
def env():
    return make_env()


@pytest.fixture(scope="module")
def fns(env):
    return jax.jit(env.reset), jax.jit(env.step), jax.jit(env.env.render)


@pytest.fixture(scope="module")
def rollout(fns):
    """States of LENGTH + 1 agent steps with action +1 (crosses one episode boundary)."""
    reset, step, _ = fns
    states = [reset(jax.random.key(0))]
    for _ in range(LENGTH + 1):
        states.append(step(states[-1], jnp.ones((N, 1))))
    return states


def red_mask(frame: np.ndarray) -> np.ndarray:
    f = frame.astype(np.int32)
    return (f[..., 0] > 60) & (f[..., 0] > 2 * f[..., 1] + 20)


def test_frames_are_uint8_stacked_and_deterministic(env, fns, rollout):
    s0 = rollout[0]
    assert s0.obs.dtype == jnp.uint8 and s0.obs.shape == (N, H, W, 3 * STACK)
    assert env.spec.observation_size == H * W * 3 * STACK
    first = np.asarray(s0.obs[..., :3])
    for k in range(1, STACK):  # reset fills the stack with the first frame
        np.testing.assert_array_equal(np.asarray(s0.obs[..., 3 * k:3 * k + 3]), first)
    again = fns[2](s0.pipeline_state)
    np.testing.assert_array_equal(np.asarray(again), first)
    assert red_mask(first).sum() > 0, "the ball is not visible"


def test_ball_lands_where_the_camera_projection_says(rollout):
    s0 = rollout[0]
    x = np.asarray(s0.pipeline_state.qpos[:, 0])
    focal = (H / 2) / math.tan(math.radians(FOVY) / 2)
    for i in range(N):
        mask = red_mask(np.asarray(s0.obs[i, ..., :3]))
        cols = np.nonzero(mask)[1] + 0.5
        rows = np.nonzero(mask)[0] + 0.5
        assert abs(cols.mean() - (W / 2 + focal * x[i] / DEPTH)) < 1.0
        assert abs(rows.mean() - H / 2) < 1.0
    # Different states render differently.
    assert not np.array_equal(np.asarray(s0.obs[0]), np.asarray(s0.obs[1]))


def test_frame_stack_shifts_and_restarts_at_episode_ends(fns, rollout):
    render = fns[2]
    for t in range(1, LENGTH + 1):
        prev, cur = rollout[t - 1], rollout[t]
        if t < LENGTH:
            np.testing.assert_array_equal(np.asarray(cur.obs[..., :-3]),
                                          np.asarray(prev.obs[..., 3:]))
            np.testing.assert_array_equal(np.asarray(cur.obs[..., -3:]),
                                          np.asarray(render(cur.pipeline_state)))
        else:  # the episode ended: a fresh episode whose first frame fills the stack
            assert np.all(np.asarray(cur.done) == 1.0)
            first = np.asarray(render(cur.pipeline_state))
            for k in range(STACK):
                np.testing.assert_array_equal(np.asarray(cur.obs[..., 3 * k:3 * k + 3]), first)
            # the terminal observation is the stepped (pre-reset) stack
            term = np.asarray(cur.info["terminal_obs"])
            np.testing.assert_array_equal(term[..., :-3], np.asarray(prev.obs[..., 3:]))
            assert not np.array_equal(term[..., -3:], first)


def test_action_repeat_sums_rewards_and_steps_physics_k_times(rollout):
    s0, s1 = rollout[0], rollout[1]
    np.testing.assert_allclose(np.asarray(s1.reward), REPEAT * 1.0)
    moved = s1.pipeline_state.qpos[:, 0] - s0.pipeline_state.qpos[:, 0]
    np.testing.assert_allclose(np.asarray(moved), REPEAT * 0.1, atol=1e-5)
    assert ActionRepeat(Slider(), REPEAT).spec.episode_length is None
    ended = rollout[LENGTH].metrics
    np.testing.assert_allclose(np.asarray(ended["episode_length"]), LENGTH)
    np.testing.assert_allclose(np.asarray(ended["episode_return"]), LENGTH * REPEAT)


def test_proprio_sits_beside_the_image():
    env = make_env(proprio=True)
    s = jax.jit(env.reset)(jax.random.key(1))
    assert set(s.obs) == {"pixels", "proprio"}
    assert s.obs["pixels"].shape == (N, H, W, 3 * STACK) and s.obs["pixels"].dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(s.obs["proprio"]),
                                  np.asarray(s.pipeline_state.qpos, np.float32))


@pytest.mark.parametrize("override, needle", [
    ("train.observation=rgb", "train.observation='rgb' is invalid; allowed: ('state', "
                              "'pixels')"),
    ("train.pixels.height=0", "pixels.height=0 is invalid; allowed: an integer >= 1"),
    ("train.pixels.camra=1", "pixels.camra=1 is invalid (unknown key); allowed keys"),
    ("train.pixels.encoder=mae", "pixels.encoder='mae' is invalid; allowed: ['conv', "
                                 "'random_conv', 'vit']"),
    ("train.pixels.vit_path=w.npz", "pixels.vit_path='w.npz' is invalid; allowed: null unless "
                                    "encoder='vit'"),
    ("train.normalize_obs=true", "train.normalize_obs=True is invalid; allowed: false with "
                                 "observation='pixels'"),
    ("train.embedding=random_projection", "train.embedding='random_projection' is invalid; "
                                          "allowed: ('obs', 'torso', 'encoder') with "
                                          "observation='pixels'"),
])
def test_config_errors_name_field_value_allowed(override, needle):
    with pytest.raises(ConfigError) as err:
        load_config("configs/tasks/cartpole_swingup_sparse_pixels.yaml", [override])
    assert needle in str(err.value)


def test_obs_embedding_of_pixels_means_the_encoder_features():
    rc = load_config(["configs/tasks/cartpole_swingup_sparse_pixels.yaml",
                      "configs/methods/icm.yaml"])
    assert rc.train.embedding == "obs" and rc.train.embedding_kind == "encoder"
    assert load_config(None).train.embedding_kind == "obs"


def test_state_config_refuses_pixel_only_options():
    with pytest.raises(ConfigError, match="train.embedding='encoder' is invalid"):
        load_config(None, ["train.embedding=encoder"])
    with pytest.raises(ConfigError, match="train.pixels=.* is invalid; allowed: empty"):
        load_config(None, ["train.pixels.height=32"])


def test_layouts_the_renderer_cannot_serve_are_refused():
    check_layout(True)

    class Mesh:
        shape = {"sweep": 1, "data": 2}

    with pytest.raises(ValueError, match="cannot be laid over a device mesh"):
        check_layout(True, mesh=Mesh())


def test_wrapper_refuses_unbatched_and_non_mujoco_envs():
    with pytest.raises(ValueError, match="wraps a VecEnv"):
        PixelObservation(Slider(), PixelConfig())
    with pytest.raises(ValueError, match="pixels.camera='nope' is invalid; allowed: one of "
                                         r"\['above', 'front'\]"):
        PixelObservation(VecEnv(Slider(), 2), PixelConfig(camera="nope"))


def test_trainer_loads_vit_weights_from_a_file(tmp_path):
    from test_vit import DEPTH, GRID, HEADS, P, random_state_dict

    from mimex_jax.trainer import TrainConfig, _pretrained_encoder, make_network

    sd = random_state_dict()
    np.savez(tmp_path / "vit.npz", **sd)
    pixels = {"encoder": "vit", "vit_path": str(tmp_path / "vit.npz"), "vit_patch": P,
              "vit_width": sd["norm.bias"].shape[0], "vit_depth": DEPTH, "vit_heads": HEADS,
              "vit_grid": GRID, "height": H, "width": W}
    cfg = TrainConfig(observation="pixels", pixels=tuple(sorted(pixels.items())),
                      embedding="encoder")
    env = make_env()
    net = make_network(cfg, env)
    params = _pretrained_encoder(cfg, net, env)
    np.testing.assert_array_equal(np.asarray(params["blocks_1"]["attn"]["qkv"]["kernel"]),
                                  sd["blocks.1.attn.qkv.weight"].T)
    np.testing.assert_array_equal(np.asarray(params["pos_embed"]), sd["pos_embed"])
    del sd["norm.weight"]
    np.savez(tmp_path / "bad.npz", **sd)
    bad = TrainConfig(observation="pixels", embedding="encoder", pixels=tuple(sorted(
        {**pixels, "vit_path": str(tmp_path / "bad.npz")}.items())))
    with pytest.raises(ValueError, match=r"pixels.vit_path=.*bad.npz' is invalid: vit: "
                                         r"missing key\(s\) \['norm.weight'\]"):
        _pretrained_encoder(bad, net, env)


def _grads_by_module(net, params, obs) -> tuple[dict, dict]:
    """``{module: any nonzero gradient}`` of the values' sum and of the action means' sum
    w.r.t. the params (one compiled call)."""
    def grads(p):
        f = lambda p, i: net.apply({"params": p}, obs)[i]  # noqa: E731
        return (jax.grad(lambda p: f(p, 1).sum())(p),
                jax.grad(lambda p: f(p, 0).loc.sum())(p))

    return tuple({k: any(bool(jnp.any(x != 0)) for x in jax.tree.leaves(v))
                  for k, v in g.items()} for g in jax.jit(grads)(params))


def test_separate_critic_encoder_keeps_value_gradients_off_the_actor():
    from mimex_jax.agents.ppo import PixelActorCritic
    from mimex_jax.nn.encoders import make_encoder

    obs = jax.random.randint(jax.random.key(1), (2, 16, 16, 9), 0, 256).astype(jnp.uint8)
    kw = dict(action_dim=2, actor_hidden=(8,), critic_hidden=(8,), feature_dim=6)
    sep = PixelActorCritic(**kw, shared_encoder=False)
    p = sep.init(jax.random.key(0), obs)["params"]
    assert set(p) == {"encoder", "trunk", "trunk_norm", "critic_encoder", "critic_trunk",
                      "critic_trunk_norm", "heads"}
    g_v, g_pi = _grads_by_module(sep, p, obs)
    assert g_v["critic_encoder"] and g_v["critic_trunk"] and not g_v["encoder"] \
        and not g_v["trunk"]
    assert g_pi["encoder"] and g_pi["trunk"] and not g_pi["critic_encoder"] \
        and not g_pi["critic_trunk"]
    shared = PixelActorCritic(**kw)
    ps = shared.init(jax.random.key(0), obs)["params"]
    assert set(ps) == {"encoder", "trunk", "trunk_norm", "heads"}
    assert _grads_by_module(shared, ps, obs)[0]["encoder"]  # the layout it replaces
    # a frozen encoder stays one (its weights never move); the critic gets its own trunk,
    # also when reading cached features
    frozen = PixelActorCritic(**kw, encoder="random_conv", shared_encoder=False)
    pf = frozen.init(jax.random.key(0), obs)["params"]
    assert "critic_encoder" not in pf and "critic_trunk" in pf
    feats = make_encoder("random_conv").apply({"params": pf["encoder"]}, obs)
    a = frozen.apply({"params": pf}, obs)
    b = frozen.apply({"params": pf}, {"features": feats})
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    np.testing.assert_allclose(a[0].loc, b[0].loc, rtol=1e-6)


def test_drqv2_refuses_pixel_options_it_does_not_have():
    base = ["configs/tasks/cartpole_swingup_sparse_pixels.yaml", "configs/agents/drqv2_cpu.yaml"]
    with pytest.raises(ConfigError, match="pixels.shared_encoder=False is invalid; allowed: "
                                          "true with agent='drqv2'"):
        load_config(base, ["train.pixels.shared_encoder=false"])
    with pytest.raises(ConfigError, match="pixels.encoder='vit' is invalid; allowed: 'conv' "
                                          "with agent='drqv2'"):
        load_config(base, ["train.pixels.encoder=vit"])


@pytest.mark.slow
def test_fused_ppo_update_step_from_pixels():
    """Two fused PPO+MIMEx iterations from 32x32 pixels of Playground's cart-pole."""
    pytest.importorskip("mujoco_playground")
    from mimex_jax.trainer import HParams, TrainConfig, make_train

    small = (("embed_dim", 16), ("decoder_embed_dim", 16), ("depth", 1), ("decoder_depth", 1),
             ("num_heads", 2), ("decoder_num_heads", 2))
    cfg = TrainConfig(env_id="playground:CartpoleSwingupSparse", num_envs=2, rollout_len=4,
                      epochs=1, minibatches=2, total_steps=16, embedding="encoder",
                      observation="pixels", pixels=(("height", 16), ("width", 16)),
                      actor_hidden=(16,), critic_hidden=(16,), mimex=small)
    init, update_step, _, env = make_train(cfg)
    hp = HParams()
    state = jax.jit(init)(jax.random.key(0), hp)
    assert state.env_state.obs.dtype == jnp.uint8
    assert state.env_state.obs.shape == (2, 16, 16, 9)
    step = jax.jit(update_step)
    p0 = state.params
    for _ in range(2):
        state, metrics = step(state, hp)
    assert int(state.iteration) == 2
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in metrics.values())
    assert float(metrics["reward_int"]) > 0
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), p0, state.params)
    assert moved["encoder"]["conv_0"]["kernel"]  # the conv encoder learns through PPO
    traj_obs = jax.eval_shape(lambda s: s.env_state.obs, state)
    assert traj_obs.dtype == jnp.uint8
