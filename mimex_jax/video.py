"""Evaluation videos: the deterministic policy's episodes, rendered by MuJoCo's batch renderer.

``mimex-jax eval RUN --video PATH.mp4`` and ``run.video_every`` both go through this module:

* :func:`check_video` refuses, before anything compiles, a task that has no renderer (gymnax,
  MiniGrid and Craftax tasks, MuJoCo models without a camera) with a ``ValueError`` that says
  "no video for this env" and why.
* :func:`make_video` returns one jittable function ``(params, obs_stats, key) -> dict`` that
  runs ``episodes`` fresh episodes in parallel under ``lax.scan`` (the evaluation rollout of
  :func:`mimex_jax.evaluate.make_evaluate`) and collects one ``uint8 [H, W, 3]`` frame per
  env and agent step: the state each action is taken in, starting with the reset state.
  Frames come from the same MJX batch renderer as pixel observations
  (:class:`mimex_jax.envs.pixels.PixelObservation`, MuJoCo Warp) at the video's own size
  and camera; a pixel task whose video has the observation's size and camera reuses the
  newest observed frame instead of rendering twice. State tasks are rendered for the video
  only: the policy still sees states.
* :func:`episode_clip` cuts each episode at its length on the host and puts the episodes one
  after another; :func:`write_video` writes MP4 (imageio + imageio-ffmpeg) or, when ffmpeg is
  missing, a GIF (imageio's pillow plugin) with a one-line notice.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import jax
import numpy as np

from mimex_jax import envs as envs_lib
from mimex_jax import xla
from mimex_jax.envs.base import Env, State
from mimex_jax.envs.pixels import PixelConfig, PixelObservation, _camera_id, mj_model_of
from mimex_jax.envs.wrappers import VecEnv
from mimex_jax.evaluate import make_evaluate
from mimex_jax.trainer import TrainConfig

__all__ = ["VIDEO_SIZE", "Recorder", "check_size", "check_video", "episode_clip", "gif_bytes",
           "make_video", "no_renderer", "video_fps", "write_video"]

# Default frame size (square). Rendering Playground's cart-pole for one world on the shared,
# busy 2-core CPU took 4.5 / 22 / 64 ms per frame at 64 / 128 / 256 pixels (median of 3 x 50
# frames, ``python benchmarks/video_render.py``; noisy): a 500-frame episode is ~11 s and
# 25 MB of uint8 frames at 128, ~32 s and 98 MB at 256. Pass 256 for a sharper video.
VIDEO_SIZE = 128
# Suites whose tasks have no array renderer that runs under jit (gymnax's renderers draw
# matplotlib figures; MiniGrid's and Craftax's are not wired up here).
_NO_RENDERER = {
    "gymnax": "gymnax's renderers draw matplotlib figures on the host; there is no array "
              "renderer that runs inside the compiled rollout",
    "minigrid": "MiniGrid (xminigrid) tasks have no renderer wired into mimex-jax",
    "craftax": "Craftax tasks have no renderer wired into mimex-jax",
}


def check_size(size: Any, name: str = "video_size") -> int:
    """``size`` as an int if it is an even integer >= 16 (H.264 needs even sizes), else
    ``ValueError`` naming ``name``, the value and what is allowed."""
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 16
            and size % 2 == 0):
        raise ValueError(f"{name}={size!r} is invalid; allowed: an even integer >= 16")
    return int(size)


def _camera(cfg: TrainConfig, camera: str | int | None) -> str | int:
    if camera is not None:
        return camera
    px = cfg.pixel_config
    return px.camera if px is not None else 0


def no_renderer(env_id: str) -> str | None:
    """Why ``env_id``'s suite has no video renderer (None when it may have one: MuJoCo
    tasks, checked further by :func:`check_video`)."""
    suite = env_id.split(":", 1)[0]
    if suite not in _NO_RENDERER:
        return None
    return (f"{_NO_RENDERER[suite]}; videos need a MuJoCo task (playground:*, brax tasks "
            "on a MuJoCo model with a camera)")


def check_video(cfg: TrainConfig, camera: str | int | None = None) -> None:
    """Raises ``ValueError`` ("no video for this env: ...") when ``cfg``'s task cannot be
    rendered, or names the camera when ``camera`` is not one of the model's. Builds only the
    bare task (no compile)."""
    reason = no_renderer(cfg.env_id)
    if reason is not None:
        raise ValueError(f"no video for this env ({cfg.env_id}): {reason}")
    base = envs_lib.make_base(cfg.env_id, **dict(cfg.env_kwargs))
    try:
        mjm = mj_model_of(base)
    except ValueError as err:
        raise ValueError(f"no video for this env ({cfg.env_id}): {err}") from None
    if mjm.ncam == 0:
        raise ValueError(f"no video for this env ({cfg.env_id}): its MuJoCo model defines no "
                         "camera (the batch renderer draws from the model's cameras only)")
    cam = _camera(cfg, camera)
    try:
        _camera_id(mjm, cam)
    except ValueError as err:
        raise ValueError(str(err).replace("pixels.camera", "video camera", 1)) from None
    try:
        import warp  # noqa: F401
        from mujoco import mjx  # noqa: F401
    except ImportError:
        raise ValueError(f"videos of {cfg.env_id} need MuJoCo's batch renderer (mujoco-mjx "
                         "with MuJoCo Warp): pip install 'mimex-jax[pixels]'") from None


def _inner(env: Env, cls: type) -> Any:
    """The first wrapper of type ``cls`` in ``env``'s chain (outermost first), or None."""
    while env is not None:
        if isinstance(env, cls):
            return env
        env = env.__dict__.get("env")
    return None


def _frame_fn(env: Env, camera: str | int, size: int) -> Callable[[State], jax.Array]:
    """``state -> uint8 [num_envs, size, size, 3]`` for the batched eval env ``env``."""
    pixels = _inner(env, PixelObservation)
    if pixels is not None:
        px = pixels.config
        mjm = mj_model_of(env)
        if (px.height, px.width) == (size, size) and \
                _camera_id(mjm, camera) == _camera_id(mjm, px.camera):
            return lambda state: pixels.pixels_of(state.obs)[..., -3:]  # the newest frame
        batched = pixels.env  # the VecEnv under the observation wrapper
    else:
        batched = _inner(env, VecEnv)
    renderer = PixelObservation(batched, PixelConfig(camera=camera, height=size, width=size,
                                                     frame_stack=1, action_repeat=1))
    return lambda state: renderer.render(state.pipeline_state)


def make_video(cfg: TrainConfig, episodes: int = 1, size: int = VIDEO_SIZE,
               camera: str | int | None = None) -> Callable[..., dict[str, jax.Array]]:
    """Build ``video(params, obs_stats, key, deterministic=True) -> dict`` (jittable).

    The dict holds :func:`~mimex_jax.evaluate.make_evaluate`'s ``[episodes]`` arrays
    (``return``, ``success``, ``length``, ``finished``) and ``frames``, ``uint8 [limit,
    episodes, size, size, 3]``: frame ``t`` of env ``i`` shows the state in which the
    ``t``-th action was taken (frame 0 is the reset state). Frames after an env's first
    episode ended belong to its next episode; :func:`episode_clip` drops them. ``camera``
    defaults to the pixel task's camera, or the model's camera 0 for a state task.
    """
    check_size(size)
    check_video(cfg, camera)
    cam = _camera(cfg, camera)
    return make_evaluate(cfg, episodes, frames=lambda env: _frame_fn(env, cam, size))


def episode_clip(frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The episodes of ``frames`` (``[T, N, H, W, 3]``) one after another, each cut at its
    length (``lengths``: ``[N]``; 0, an unfinished episode, keeps all ``T`` frames)."""
    frames = np.asarray(frames)
    lengths = np.asarray(lengths)
    if frames.ndim != 5 or lengths.shape != frames.shape[1:2]:
        raise ValueError(f"episode_clip: frames must be [T, N, H, W, 3] and lengths [N]; got "
                         f"{frames.shape} and {lengths.shape}")
    cut = [int(n) if n > 0 else frames.shape[0] for n in lengths]
    return np.concatenate([frames[:n, i] for i, n in enumerate(cut)], axis=0)


def video_fps(cfg: TrainConfig, default: float = 30.0) -> float:
    """Real-time frames per second of ``cfg``'s agent steps (one over the task's control
    timestep times the action repeat), kept within 1-60, or ``default`` when the task does
    not say its timestep."""
    base = envs_lib.make_base(cfg.env_id, **dict(cfg.env_kwargs)).unwrapped
    dt = getattr(base, "dt", None)
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        return default
    repeat = cfg.pixel_config.action_repeat if cfg.pixel_config is not None else 1
    return float(min(max(1.0 / (dt * repeat), 1.0), 60.0)) if dt > 0 else default


def _ffmpeg_available() -> bool:
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return False
    return True


def _imageio() -> Any:
    try:
        import imageio.v3 as iio
    except ImportError:
        raise ImportError("writing videos needs imageio: pip install 'mimex-jax[video]' "
                          "(imageio and imageio-ffmpeg)") from None
    return iio


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """``frames`` (``uint8 [T, H, W, 3]``) as an animated GIF, looping."""
    return _imageio().imwrite("<bytes>", np.asarray(frames, np.uint8), extension=".gif",
                              plugin="pillow", duration=1000.0 / fps, loop=0)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 30.0,
                stream: TextIO | None = None) -> Path:
    """Write ``frames`` (``uint8 [T, H, W, 3]``) to ``path`` and return the path written.

    ``.gif`` paths are written as GIF; anything else as H.264 MP4 through imageio-ffmpeg.
    Without ffmpeg the frames go to ``path`` with the suffix ``.gif`` instead, and one line
    on ``stream`` (stderr) says so.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"write_video: frames must be a non-empty uint8 [T, H, W, 3] array; "
                         f"got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio = _imageio()
    if path.suffix.lower() != ".gif":
        if _ffmpeg_available():
            with warnings.catch_warnings():  # JAX's notice on the ffmpeg subprocess's fork:
                # the child execs ffmpeg at once and runs no JAX
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                iio.imwrite(path, frames, plugin="FFMPEG", fps=fps, codec="libx264",
                            macro_block_size=1, pixelformat="yuv420p")
            return path
        path = path.with_suffix(".gif")
        print(f"mimex-jax: ffmpeg not found (pip install imageio-ffmpeg); writing a GIF "
              f"instead: {path}", file=stream or sys.stderr, flush=True)
    path.write_bytes(gif_bytes(frames, fps))
    return path


@dataclasses.dataclass
class Recorder:
    """Records clips of a training run's current policy (``run.video_every``).

    The jitted rollout is built on first use and reused; :meth:`record` writes
    ``<run_dir>/videos/iter_<iteration>.mp4`` (one deterministic episode of member 0) and
    returns the path written and the frames.
    """

    cfg: TrainConfig
    run_dir: Path
    size: int = VIDEO_SIZE
    seed: int = 12345
    _fn: Any = None
    _fps: float = 30.0

    def record(self, params: Any, obs_stats: Any, iteration: int,
               stream: TextIO | None = None) -> tuple[Path, np.ndarray, float]:
        """Roll out one episode with ``params`` and write it; ``(path, frames, fps)``."""
        if self._fn is None:
            self._fn = xla.jit(make_video(self.cfg, 1, self.size),
                               mjx=xla.steps_mjx(self.cfg.env_id))
            self._fps = video_fps(self.cfg)
        out = jax.device_get(self._fn(params, obs_stats, jax.random.key(self.seed)))
        clip = episode_clip(out["frames"], out["length"])
        path = write_video(self.run_dir / "videos" / f"iter_{iteration:06d}.mp4", clip,
                           self._fps, stream=stream)
        return path, clip, self._fps
