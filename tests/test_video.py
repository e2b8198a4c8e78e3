"""Evaluation videos (mimex_jax.video): ``eval --video``, ``run.video_every``, the writer.

The fast MuJoCo tests train and record a one-body MJX scene registered (fixture
``ball_task``) as ``playground:VideoBall``: a red ball drifting along x in front of a
camera, posed by hand, so that only the renderer and a tiny policy compile, not a task's
physics. The pixel-task variant and Playground's cart-pole through the CLI are behind
``slow``.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("warp")
mujoco = pytest.importorskip("mujoco")
iio = pytest.importorskip("imageio.v3")
from mujoco import mjx  # noqa: E402

from mimex_jax import video  # noqa: E402
from mimex_jax.cli import main  # noqa: E402
from mimex_jax.config import ConfigError, load_config  # noqa: E402
from mimex_jax.envs import registry  # noqa: E402
from mimex_jax.envs.base import Env, EnvSpec, State  # noqa: E402

SIZE, LENGTH = 32, 5
XML = """
<mujoco>
  <worldbody>
    <light pos="0 -1 3" dir="0 0.3 -1"/>
    <camera name="front" pos="0 -2 0" xyaxes="1 0 0 0 0 1" fovy="45"/>
    <body name="ball">
      <joint name="x" type="slide" axis="1 0 0"/>
      <geom type="sphere" size="0.1" rgba="1 0 0 1"/>
    </body>
  </worldbody>
</mujoco>
"""


class VideoBall(Env):
    """The ball at x = qpos drifts by 0.1 per step (plus 0.05 * action); reward = x.

    Its MJX ``Data`` is posed by hand (the ball's body and geom positions follow qpos; the
    camera and light are fixed, posed once by MuJoCo on the host): nothing of MJX's physics
    is traced or compiled, only the renderer.
    """

    dt = 0.04

    def __init__(self, episode_length: int = LENGTH):
        self.mj_model = mujoco.MjModel.from_xml_string(XML)
        host = mujoco.MjData(self.mj_model)
        mujoco.mj_forward(self.mj_model, host)
        self._d0 = mjx.put_data(self.mj_model, host, impl="jax")
        self._length = episode_length

    def _at(self, x):
        x = jnp.asarray(x, jnp.float32)
        pos = jnp.stack([x, 0.0, 0.0])
        d = self._d0
        return d.replace(qpos=x[None], xpos=d.xpos.at[1].set(pos),
                         geom_xpos=d.geom_xpos.at[0].set(pos))

    def reset(self, rng):
        d = self._at(jax.random.uniform(rng, (), minval=-0.4, maxval=-0.2))
        zero = jnp.zeros((), jnp.float32)
        return State(pipeline_state=d, obs=d.qpos, reward=zero, done=zero, metrics={},
                     info={"truncation": zero})

    def step(self, state, action):
        x = state.pipeline_state.qpos[0] + 0.1 + 0.05 * action[0]
        d = self._at(x)
        return state.replace(pipeline_state=d, obs=d.qpos, reward=x)

    @property
    def spec(self):
        return EnvSpec(env_id="playground:VideoBall", observation_size=1,
                       action_kind="continuous", action_size=1, action_low=(-1.0,),
                       action_high=(1.0,), episode_length=self._length, backend="mjx-jax")


RUN_YAML = f"""
train:
  env_id: playground:VideoBall
  num_envs: 2
  rollout_len: 4
  epochs: 1
  minibatches: 1
  total_steps: 16           # 2 iterations
  reward: none
  actor_hidden: [8]
  critic_hidden: [8]
run:
  seeds: 1
  chunk: 1
  eval_episodes: 0
  video_every: 1
  video_size: {SIZE}
  log_backends: [jsonl, tensorboard]
"""


@pytest.fixture(scope="module")
def ball_task():
    """``playground:VideoBall`` in the env registry for this module's tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._SUITES, "playground",
                   (lambda: ["VideoBall"], lambda name, kw: VideoBall(**kw)))
        yield


@pytest.fixture(scope="module")
def ball_run(ball_task, tmp_path_factory) -> Path:
    """A two-iteration run of the ball with ``run.video_every=1`` (a clip per iteration)."""
    tmp = tmp_path_factory.mktemp("video")
    (tmp / "ball.yaml").write_text(RUN_YAML)
    out = tmp / "run"
    assert main(["train", "-c", str(tmp / "ball.yaml"), "--out", str(out),
                 "--no-progress"]) == 0
    return out


def red_x(frame: np.ndarray) -> float:
    """Mean column of the red pixels (the ball) of an RGB frame."""
    f = frame.astype(np.int32)
    cols = np.nonzero((f[..., 0] > 60) & (f[..., 0] > 2 * f[..., 1] + 20))[1]
    assert cols.size, "no ball in the frame"
    return float(cols.mean())


def tb_images(run_dir: Path) -> list[tuple[str, int, bytes]]:
    """(tag, step, encoded image) of every image summary in the run's TensorBoard files."""
    from tensorboardX.proto.event_pb2 import Event

    out = []
    for path in sorted((run_dir / "tensorboard").glob("events.*")):
        data = path.read_bytes()
        i = 0
        while i < len(data):  # TFRecord: length, crc, payload, crc
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                if v.HasField("image"):
                    out.append((v.tag, event.step, v.image.encoded_image_string))
    return out


def test_video_every_writes_a_clip_per_iteration_and_to_tensorboard(ball_run):
    clips = sorted((ball_run / "videos").iterdir())
    assert [p.name for p in clips] == ["iter_000001.mp4", "iter_000002.mp4"]
    frames = iio.imread(clips[-1], plugin="FFMPEG")
    assert frames.shape == (LENGTH, SIZE, SIZE, 3) and frames.dtype == np.uint8
    xs = [red_x(f) for f in frames]
    assert all(b > a for a, b in zip(xs, xs[1:], strict=False))  # the ball drifts right
    import json

    assert json.loads((ball_run / "summary.json").read_text())["videos"] == [
        "videos/iter_000001.mp4", "videos/iter_000002.mp4"]
    images = tb_images(ball_run)
    assert [(t, s) for t, s, _ in images] == [("video/policy", 8), ("video/policy", 16)]
    gif = iio.imread(images[-1][2], extension=".gif", plugin="pillow")
    assert gif.shape[0] == LENGTH and gif.shape[1:3] == (SIZE, SIZE)


def test_eval_video_of_the_deterministic_policy(ball_run, tmp_path, capsys):
    """One episode at the run's clip size: the same program as the training clips (its
    compilation is cached), and the same frames, as the policy and the reset key are."""
    path = tmp_path / "ball.mp4"
    assert main(["eval", str(ball_run), "--video", str(path), "--video-size", str(SIZE),
                 "--video-camera", "front"]) == 0
    assert f"wrote {path} ({LENGTH} frames, {SIZE}x{SIZE}, 25 fps)" in capsys.readouterr().out
    frames = iio.imread(path, plugin="FFMPEG")
    assert frames.shape == (LENGTH, SIZE, SIZE, 3)
    clip = iio.imread(ball_run / "videos" / "iter_000002.mp4", plugin="FFMPEG")
    np.testing.assert_array_equal(frames, clip)


def test_eval_video_refuses_a_bad_camera_or_size_before_compiling(ball_run, tmp_path, capsys):
    path = tmp_path / "no.mp4"
    assert main(["eval", str(ball_run), "--video", str(path), "--video-camera", "top"]) == 2
    assert "video camera='top' is invalid; allowed: one of ['front']" in capsys.readouterr().err
    assert main(["eval", str(ball_run), "--video", str(path), "--video-size", "33"]) == 2
    assert "--video-size=33 is invalid; allowed: an even integer >= 16" in \
        capsys.readouterr().err
    assert not path.exists()


def test_gymnax_has_no_video_with_a_clear_message():
    from mimex_jax.trainer import TrainConfig

    with pytest.raises(ValueError, match=r"no video for this env \(gymnax:DeepSea-bsuite\): "
                                         "gymnax's renderers draw matplotlib figures"):
        video.check_video(TrainConfig(env_id="gymnax:DeepSea-bsuite"))
    with pytest.raises(ConfigError, match=r"run.video_every=5 is invalid for "
                                          r"gymnax:DeepSea-bsuite: no video for this env"):
        load_config(None, ["train.env_id=gymnax:DeepSea-bsuite", "run.video_every=5"])


def test_writer_falls_back_to_gif_without_ffmpeg(tmp_path, monkeypatch, capsys):
    frames = np.random.default_rng(0).integers(0, 256, (7, 16, 24, 3), dtype=np.uint8)
    mp4 = video.write_video(tmp_path / "a.mp4", frames, fps=10)
    assert mp4 == tmp_path / "a.mp4"
    assert iio.imread(mp4, plugin="FFMPEG").shape == (7, 16, 24, 3)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # `import imageio_ffmpeg` fails
    gif = video.write_video(tmp_path / "b.mp4", frames, fps=10)
    assert gif == tmp_path / "b.gif" and not (tmp_path / "b.mp4").exists()
    assert capsys.readouterr().err.count("\n") == 1  # the one-line notice
    back = iio.imread(gif, plugin="pillow")
    assert back.shape[:3] == (7, 16, 24)


def test_episode_clip_cuts_each_episode_at_its_length():
    frames = np.arange(4 * 3).reshape(4, 3, 1, 1, 1).astype(np.uint8)
    clip = video.episode_clip(frames, np.array([2, 4, 0]))
    assert clip[:, 0, 0, 0].tolist() == [0, 3, 1, 4, 7, 10, 2, 5, 8, 11]
    with pytest.raises(ValueError, match="frames must be"):
        video.episode_clip(frames[0], np.array([1, 1, 1]))


@pytest.mark.slow  # about 10 s of CPU compiling the conv encoder's policy twice
def test_pixel_task_video_reuses_the_observed_frame_at_its_size(ball_task):
    """A pixel task's video at the observation's size and camera is its newest observed
    frame (no second render); at another size the same states are rendered again."""
    from mimex_jax.rewards.normalize import init_stats
    from mimex_jax.trainer import TrainConfig, make_env, make_network

    cfg = TrainConfig(env_id="playground:VideoBall", num_envs=2, rollout_len=4,
                      minibatches=1, observation="pixels", embedding="encoder",
                      pixels=(("camera", "front"), ("height", 48), ("width", 48),
                              ("frame_stack", 2), ("action_repeat", 1)),
                      actor_hidden=(8,), critic_hidden=(8,))
    env = make_env(cfg, 1)
    obs = jax.eval_shape(env.reset, jax.random.key(0)).obs
    params = make_network(cfg, env).init(jax.random.key(1), jnp.zeros(obs.shape,
                                                                      obs.dtype))["params"]
    stats, key = init_stats((1,)), jax.random.key(2)
    same = jax.jit(video.make_video(cfg, 1, 48))(params, stats, key)["frames"][:, 0]
    big = jax.jit(video.make_video(cfg, 1, 96))(params, stats, key)["frames"][:, 0]
    assert same.shape == (LENGTH, 48, 48, 3) and big.shape == (LENGTH, 96, 96, 3)
    assert same.dtype == big.dtype == jnp.uint8
    xs = np.array([red_x(f) for f in np.asarray(same)])
    assert np.all(np.diff(xs) > 1.0)  # the ball moves ~2 pixels per step at 48 px
    # the same states: positions agree to a pixel at 48 px (the frame before or after
    # would be ~2 pixels off)
    np.testing.assert_allclose(xs, [red_x(f) / 2 for f in np.asarray(big)], atol=0.75)


def test_wandb_gets_the_video_file(tmp_path, monkeypatch):
    from mimex_jax.logging import MetricsLogger

    calls = []
    run = SimpleNamespace(log=lambda data, step: calls.append((step, data)),
                          finish=lambda: None)
    fake = SimpleNamespace(Video=lambda path: ("Video", path),
                           init=lambda project, dir, config: run)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    with MetricsLogger(tmp_path, backends=("wandb",), labels=[{"seed": 0}, {"seed": 1}]) as log:
        log.log_video(tmp_path / "v.mp4", frames, 10.0, env_steps=64, member=0)
    assert calls == [(64, {"member_000/video/policy": ("Video", str(tmp_path / "v.mp4"))})]


@pytest.mark.slow
def test_playground_cartpole_state_run_gets_a_video(tmp_path, capsys):
    """A state task rendered for the video only: Playground's cart-pole balance, 2 episodes
    of 100 steps with sampled actions (the pole falls, the cart moves)."""
    pytest.importorskip("mujoco_playground")
    cfg = tmp_path / "cartpole.yaml"
    cfg.write_text(RUN_YAML.replace("playground:VideoBall", "playground:CartpoleBalance")
                   .replace("  reward: none", "  reward: none\n  episode_length: 100"))
    run = tmp_path / "run"
    assert main(["train", "-c", str(cfg), "--out", str(run), "--no-progress"]) == 0
    assert sorted(p.name for p in (run / "videos").iterdir()) == ["iter_000001.mp4",
                                                                 "iter_000002.mp4"]
    path = tmp_path / "cartpole.mp4"
    assert main(["eval", str(run), "--video", str(path), "--video-episodes", "2",
                 "--video-size", "64", "--stochastic"]) == 0
    assert "(200 frames, 64x64, 60 fps)" in capsys.readouterr().out
    frames = iio.imread(path, plugin="FFMPEG")
    assert frames.shape == (200, 64, 64, 3)
    assert len({f.tobytes() for f in frames}) > 50  # the cart-pole moves
