"""Pixel observations rendered inside the compiled step by MuJoCo's batch renderer.

A pixel task is the state task plus a camera: :func:`mimex_jax.envs.make` with ``pixels=``
builds, from the inside out::

    suite adapter -> ActionRepeat -> EpisodeTimeLimit -> EpisodeStats -> ClipAction
                  -> VecEnv -> PixelObservation -> AutoReset

:class:`PixelObservation` renders all ``num_envs`` worlds at once with MJX's ray-traced
renderer (``mujoco.mjx.render``, MuJoCo Warp behind a JAX FFI call). The physics stays on
the task's own MJX implementation (``impl="jax"`` for Playground); the renderer reads a
MuJoCo-Warp ``Data`` whose geometry poses (``geom_xpos``/``geom_xmat``), cameras and lights
are copied from the physics ``Data`` (no second forward pass). ``obs`` is a ``uint8 [H, W,
3 * frame_stack]`` array per env (channels-last, oldest frame first) or, with
``proprio=True``, the mapping ``{"pixels": ..., "proprio": float32 state vector}``. The
state observation the task itself needs is kept in ``info["state_obs"]``.

Layouts: MuJoCo Warp fixes the number of worlds when the render context is built
(``create_render_context(nworld=...)``). A sweep that vmaps the env again (seeds or settings
in one program) folds its member axes into the world axis and renders through a context of
``members * num_envs`` worlds (a ``custom_vmap`` rule); a device mesh cannot split the render
call, and :func:`check_layout` refuses it before anything compiles. Contexts are built once
per (model, worlds, camera, size) and cached for the process.

Supported tasks: every MuJoCo Playground DM Control Suite task (``playground:*``) and Brax
tasks on the ``mjx`` backend (``brax:reacher_sparse`` with ``env_kwargs: {backend: mjx}``);
Brax's ``generalized``/``positional``/``spring`` pipelines have no MuJoCo ``Data`` to render.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mimex_jax.envs.base import Env, EnvSpec, State, Wrapper

__all__ = ["ActionRepeat", "PixelConfig", "PixelObservation", "check_layout", "mj_model_of"]

ENCODERS = ("conv", "random_conv", "vit")
FROZEN_ENCODERS = ("random_conv", "vit")


@dataclasses.dataclass(frozen=True)
class PixelConfig:
    """How a pixel task sees its world.

    Attributes:
      camera: a camera name or index of the MuJoCo model (``-1`` is not allowed: the free
        camera has no pose in ``Data``).
      height, width: image size in pixels (DrQ-v2 uses 84, the default here is 64).
      frame_stack: frames stacked along the channel axis (``3 * frame_stack`` channels).
      action_repeat: physics steps per agent step; rewards are summed.
      proprio: also return the task's state vector as ``obs["proprio"]``.
      encoder: the actor-critic's image encoder: ``"conv"`` (DrQ-v2's conv net, learned
        through the PPO loss), ``"random_conv"`` (the same net, frozen at its random init) or
        ``"vit"`` (a frozen ViT in the MAE/MVP layout, :class:`~mimex_jax.nn.encoders.
        ViTEncoder`).
      vit_path: with ``encoder="vit"``: a local ``.npz`` or PyTorch file of pretrained
        weights (timm/MAE names); ``None`` keeps the random initialisation.
      vit_patch, vit_width, vit_depth, vit_heads: the ViT's shape (default ViT-S/16 as MVP).
      vit_grid: the patch grid of the weights' ``pos_embed`` (14: 224-pixel pretraining at
        patch 16); resized to the images' grid.
      cache_features: with a frozen encoder (``random_conv``, ``vit``), the PPO rollout
        stores the encoder's features instead of the frames when they take fewer bytes
        (the ViT's: 4.6 KB per step against 36 KB of 64x64x9 frames), so the PPO epochs do
        not re-run the encoder on every minibatch (as the original PixMC code stores its ViT
        embeddings). The same numbers up to float rounding; ``False`` keeps the frames.
      shared_encoder: PPO's actor and critic share the encoder and trunk (default, as
        PixMC); ``False`` gives the critic its own (a frozen encoder's weights stay shared,
        the trunk is the critic's own), as Brax's vision PPO does, so the value loss does not
        shape the actor's features. DrQ-v2 has its own layout and takes only the default.
    """

    camera: str | int = 0
    height: int = 64
    width: int = 64
    frame_stack: int = 3
    action_repeat: int = 2
    proprio: bool = False
    encoder: str = "conv"
    vit_path: str | None = None
    vit_patch: int = 16
    vit_width: int = 384
    vit_depth: int = 12
    vit_heads: int = 12
    vit_grid: int = 14
    cache_features: bool = True
    shared_encoder: bool = True

    def __post_init__(self) -> None:
        for f in ("height", "width", "frame_stack", "action_repeat", "vit_patch", "vit_width",
                  "vit_depth", "vit_heads", "vit_grid"):
            v = getattr(self, f)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"pixels.{f}={v!r} is invalid; allowed: an integer >= 1")
        cam = self.camera
        if not (isinstance(cam, str) and cam) and not (
                isinstance(cam, int) and not isinstance(cam, bool) and cam >= 0):
            raise ValueError(f"pixels.camera={cam!r} is invalid; allowed: a camera name or an "
                             "index >= 0 of the task's MuJoCo model")
        for f in ("proprio", "cache_features", "shared_encoder"):
            if not isinstance(getattr(self, f), bool):
                raise ValueError(f"pixels.{f}={getattr(self, f)!r} is invalid; allowed: true, "
                                 "false")
        if self.encoder not in ENCODERS:
            raise ValueError(f"pixels.encoder={self.encoder!r} is invalid; allowed: "
                             f"{list(ENCODERS)}")
        if self.vit_width % self.vit_heads:
            raise ValueError(f"pixels.vit_heads={self.vit_heads!r} is invalid; allowed: a "
                             f"divisor of vit_width={self.vit_width}")
        if self.encoder == "vit" and min(self.height, self.width) < self.vit_patch:
            raise ValueError(f"pixels.vit_patch={self.vit_patch!r} is invalid; allowed: at "
                             f"most the image size {self.height}x{self.width}")
        if self.vit_path is not None and self.encoder != "vit":
            raise ValueError(f"pixels.vit_path={self.vit_path!r} is invalid; allowed: null "
                             "unless encoder='vit'")

    def encoder_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the encoder module (:func:`mimex_jax.nn.encoders.make_encoder`)."""
        if self.encoder != "vit":
            return {}
        return {"patch_size": self.vit_patch, "width": self.vit_width, "depth": self.vit_depth,
                "num_heads": self.vit_heads, "grid": self.vit_grid}

    @property
    def channels(self) -> int:
        return 3 * self.frame_stack

    @property
    def shape(self) -> tuple[int, int, int]:
        """Per-env image shape ``(H, W, 3 * frame_stack)``."""
        return (self.height, self.width, self.channels)


PIXEL_KEYS = tuple(f.name for f in dataclasses.fields(PixelConfig))


def pixel_config(items: tuple[tuple[str, Any], ...] | dict[str, Any]) -> PixelConfig:
    """``PixelConfig`` from the ``train.pixels`` mapping; unknown keys raise ``ValueError``."""
    kw = dict(items)
    unknown = sorted(set(kw) - set(PIXEL_KEYS))
    if unknown:
        raise ValueError(f"pixels.{unknown[0]}={kw[unknown[0]]!r} is invalid (unknown key); "
                         f"allowed keys: {list(PIXEL_KEYS)}")
    return PixelConfig(**kw)


def check_layout(pixels: bool, *, mesh: Any = None) -> None:
    """Refuses run layouts the batch renderer cannot serve (call before compiling).

    A vmapped sweep is served (its members' worlds share one render context); a device
    mesh of more than one device is not: MuJoCo Warp's render call is one custom call
    that XLA cannot split over devices.
    """
    if not pixels:
        return
    if mesh is not None and int(np.prod(list(dict(mesh.shape).values()))) > 1:
        raise ValueError(
            "train.observation='pixels' cannot be laid over a device mesh: the render "
            "context is built for one device's worlds; allowed: run.mesh on one device")


def mj_model_of(env: Env):
    """The ``mujoco.MjModel`` behind a Playground or Brax-on-MJX task, else ``ValueError``."""
    inner = env.unwrapped
    model = getattr(inner, "mj_model", None)
    if model is None:
        sys = getattr(inner, "sys", None)
        model = getattr(sys, "mj_model", None)
    if model is None:
        raise ValueError(f"pixel observations need a MuJoCo model; {env.spec.env_id} "
                         f"(backend {env.spec.backend!r}) has none")
    return model


class ActionRepeat(Wrapper):
    """Repeats each action ``repeat`` times (one unbatched env); rewards are summed.

    Once the env reports ``done`` the remaining repeats leave the state unchanged.
    ``metrics["success"]`` (when present) is the maximum over the repeats. The episode
    length in ``spec`` counts agent steps: the wrapped env's length divided by ``repeat``
    (rounded up).
    """

    def __init__(self, env: Env, repeat: int):
        super().__init__(env)
        if int(repeat) < 1:
            raise ValueError(f"action_repeat={repeat!r} is invalid; allowed: an integer >= 1")
        self.repeat = int(repeat)

    @property
    def spec(self) -> EnvSpec:
        spec = self.env.spec
        if spec.episode_length is None:
            return spec
        return dataclasses.replace(spec, episode_length=-(-spec.episode_length // self.repeat))

    def step(self, state: State, action: jax.Array) -> State:
        if self.repeat == 1:
            return self.env.step(state, action)

        def body(carry, _):
            s, total, done, success = carry
            n = self.env.step(s, action)
            keep = done > 0.5  # already finished: freeze
            n = jax.tree.map(lambda old, new: jnp.where(keep, old, new), s, n)
            total = total + jnp.where(keep, 0.0, n.reward)
            if success is not None:
                success = jnp.maximum(success, n.metrics["success"])
            return (n, total, jnp.maximum(done, n.done), success), None

        zero = jnp.zeros((), jnp.float32)
        success0 = zero if "success" in state.metrics else None
        start = state.replace(done=zero)
        (n, total, done, success), _ = jax.lax.scan(
            body, (start, zero, zero, success0), None, length=self.repeat)
        metrics = dict(n.metrics)
        if success is not None:
            metrics["success"] = success
        return n.replace(reward=total, done=done, metrics=metrics)


# Render contexts are expensive to build and own Warp buffers sized by the number of worlds:
# one per (model, worlds, camera, size) for the process.
_CONTEXTS: dict[tuple, Any] = {}


def _camera_id(mjm, camera: str | int) -> int:
    import mujoco

    names = [mjm.camera(i).name for i in range(mjm.ncam)]
    if isinstance(camera, str):
        cid = mujoco.mj_name2id(mjm, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    else:
        cid = camera if camera < mjm.ncam else -1
    if cid < 0:
        raise ValueError(f"pixels.camera={camera!r} is invalid; allowed: one of {names} or an "
                         f"index in [0, {mjm.ncam})")
    return int(cid)


def _render_context(mjm, nworld: int, cam: int, height: int, width: int):
    try:
        from mujoco import mjx
    except ImportError as err:  # pragma: no cover - mujoco is a dependency of the suites
        raise ImportError("pixel observations need mujoco-mjx with MuJoCo Warp "
                          "(pip install 'mimex-jax[pixels]')") from err
    key = (id(mjm), nworld, cam, height, width)
    if key not in _CONTEXTS:
        active = [i == cam for i in range(mjm.ncam)]
        # A sweep's context is first asked for while a program is traced: its arrays must be
        # concrete values (cached for the process), never tracers of that trace.
        with jax.ensure_compile_time_eval():
            try:
                rc = mjx.create_render_context(
                    mjm, nworld=nworld, cam_res=(width, height), cam_active=active,
                    render_rgb=True, render_depth=False, use_textures=True, use_shadows=False)
            except Exception as err:
                raise ImportError("pixel observations need MuJoCo Warp (warp-lang; pip install "
                                  f"'mimex-jax[pixels]'); creating the render context failed: "
                                  f"{err!r}") from err
            # Keep the model alive with its context so that id(mjm) cannot be reused.
            _CONTEXTS[key] = (rc, rc.pytree(), mjx.put_model(mjm, impl="warp"),
                              mjx.make_data(mjm, impl="warp"), mjm)
    return _CONTEXTS[key]


class PixelObservation(Wrapper):
    """Renders a :class:`~mimex_jax.envs.wrappers.VecEnv` of MuJoCo tasks to stacked frames.

    Wrap a ``VecEnv`` directly (``AutoReset`` goes outside). ``obs`` is ``uint8 [num_envs, H,
    W, 3 * frame_stack]`` (or ``{"pixels", "proprio"}`` with ``proprio``); on reset the first
    frame fills the whole stack. info keys: ``"state_obs"`` (the task's own observation).
    """

    _KEYS = ("state_obs",)

    def __init__(self, env: Env, config: PixelConfig):
        super().__init__(env)
        num_envs = getattr(env, "num_envs", None)
        if num_envs is None:
            raise ValueError("PixelObservation wraps a VecEnv (the renderer is batched); "
                             "make the env with num_envs")
        self.num_envs = int(num_envs)
        self.config = config
        mjm = mj_model_of(env)
        self._cam = _camera_id(mjm, config.camera)
        self._mjm = mjm
        # built now for this batch (a missing renderer fails here, not inside a trace); a
        # sweep that vmaps the env again renders through a context for all its worlds
        self._context(self.num_envs)
        # jitted: its constants stay inside that program (see _batched_render)
        self._render_jit = jax.jit(self._render_worlds)
        self._render = self._batched_render()
        self._light_body = np.asarray(mjm.light_bodyid, np.int32)
        self._light_pos = np.asarray(mjm.light_pos, np.float32)
        self._light_dir = np.asarray(mjm.light_dir, np.float32)

    @functools.cached_property
    def spec(self) -> EnvSpec:
        spec = self.env.spec
        return dataclasses.replace(spec, observation_size=int(np.prod(self.config.shape)))

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return self.config.shape

    def _context(self, nworld: int) -> tuple:
        return _render_context(self._mjm, nworld, self._cam, self.config.height,
                               self.config.width)

    def render(self, data: Any) -> jax.Array:
        """``uint8 [num_envs, H, W, 3]`` frames of a batched MJX ``Data``.

        Under further ``vmap`` s (a sweep over seeds or settings) the mapped axes are folded
        into the world axis, so one render context of ``members * num_envs`` worlds serves
        the whole sweep (MuJoCo Warp fixes a context's number of worlds).
        """
        for name in ("geom_xpos", "geom_xmat", "cam_xpos", "cam_xmat", "xpos", "xmat"):
            if not hasattr(data, name):
                raise ValueError(
                    f"pixel observations need an MJX Data pipeline state (field {name!r} is "
                    f"missing in {type(data).__name__}); for brax: tasks set "
                    "train.env_kwargs.backend: mjx")
        return self._render(data)

    def _batched_render(self):
        """The renderer as a ``custom_vmap`` function of a ``[worlds, ...]`` ``Data``.

        The render context travels as an argument, never as a closed-over constant: a
        ``lax.cond`` with a batched predicate (a sweep's auto-reset) batches every operand
        of its branches, and ``custom_vmap`` refuses batched constants. Its value is the same
        for every member, so the rule ignores it. The body is a jitted call so that the
        constants MJX creates while tracing stay inside that program instead of becoming
        (batched) constants of the ``custom_vmap``.
        """

        @jax.custom_batching.custom_vmap
        def render(data: Any, ctx: tuple) -> jax.Array:
            return self._render_jit(data, ctx)

        @render.def_vmap
        def fold(axis_size: int, in_batched: list, data: Any, ctx: tuple
                 ) -> tuple[jax.Array, bool]:
            del ctx  # the folded batch has its own context
            data = jax.tree.map(
                lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x))),
                data, in_batched[0])
            flat = jax.tree.map(  # explicit sizes: some Data fields have a zero-sized axis
                lambda x: jnp.reshape(x, (x.shape[0] * x.shape[1], *x.shape[2:])), data)
            out = render(flat, self._context_args(flat))  # nested sweeps fold again
            return jnp.reshape(out, (axis_size, out.shape[0] // axis_size, *out.shape[1:])), True

        return lambda data: render(data, self._context_args(data))

    def _context_args(self, data: Any) -> tuple:
        """The arrays of the context for ``data``'s worlds, and the lights' constants."""
        _, rcp, mw, dw0, _ = self._context(int(data.qpos.shape[0]))
        return (rcp, mw, dw0, jnp.asarray(self._light_body), jnp.asarray(self._light_pos),
                jnp.asarray(self._light_dir))

    def _render_worlds(self, data: Any, ctx: tuple) -> jax.Array:
        from mujoco import mjx

        rcp, mw, dw0, lb, lp, ld = ctx

        def one(d):
            rot = d.xmat[lb]
            dw = dw0.replace(
                qpos=d.qpos, xpos=d.xpos, xmat=d.xmat, xquat=d.xquat, geom_xpos=d.geom_xpos,
                geom_xmat=d.geom_xmat, cam_xpos=d.cam_xpos, cam_xmat=d.cam_xmat)
            if lb.size:  # lights fixed to their bodies (MuJoCo's default light mode)
                dw = dw.tree_replace({
                    "_impl.light_xpos": d.xpos[lb] + jnp.einsum("lij,lj->li", rot, lp),
                    "_impl.light_xdir": jnp.einsum("lij,lj->li", rot, ld)})
            dw = mjx.refit_bvh(mw, dw, rcp)
            rgb, _, _ = mjx.render(mw, dw, rcp)
            # the context renders only the active camera: its index there is 0, whatever
            # the camera's id in the model
            return mjx.get_rgb(rcp, 0, rgb)

        rgb = jax.vmap(one)(data)
        return jnp.round(rgb * 255.0).astype(jnp.uint8)

    def _observe(self, state: State, stack: jax.Array) -> State:
        obs = {"pixels": stack, "proprio": state.obs} if self.config.proprio else stack
        return state.replace(obs=obs, info={**state.info, "state_obs": state.obs})

    def _first(self, state: State) -> State:
        frame = self.render(state.pipeline_state)
        return self._observe(state, jnp.tile(frame, (1, 1, 1, self.config.frame_stack)))

    def reset(self, rng: jax.Array) -> State:
        return self._first(self.env.reset(rng))

    def reset_each(self, keys: jax.Array) -> State:
        """Resets with one key per env (for :class:`~mimex_jax.envs.wrappers.AutoReset`)."""
        return self._first(self.env.reset_each(keys))

    def pixels_of(self, obs: Any) -> jax.Array:
        return obs["pixels"] if self.config.proprio else obs

    def step(self, state: State, action: jax.Array) -> State:
        info = {k: v for k, v in state.info.items() if k not in self._KEYS}
        nstate = self.env.step(state.replace(obs=state.info["state_obs"], info=info), action)
        frame = self.render(nstate.pipeline_state)
        stack = jnp.concatenate([self.pixels_of(state.obs)[..., 3:], frame], axis=-1)
        return self._observe(nstate, stack)
