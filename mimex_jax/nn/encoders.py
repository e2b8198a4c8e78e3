"""Visual encoders: image observations -> feature vectors for agents and bonuses.

``ConvEncoder`` is DrQ-v2's encoder (the original ``mimex-dmc``): pixels scaled to
``[-0.5, 0.5]``, four 3x3 convolutions with 32 channels (stride 2, then 1, 1, 1), ReLU
after each, flattened. Weights are orthogonal with the ReLU gain sqrt(2), biases zero, as
the original's ``weight_init``. Images are channels-last ``[..., H, W, C]`` with stacked
frames along ``C`` (JAX's native convolution layout), usually ``uint8``.

``FrozenConvEncoder`` is the same net frozen at its random initialisation (the cheap
baseline). ``ViTEncoder`` is a frozen ViT in the MAE/MVP layout (the original
``mimex-pixmc``'s encoder) whose weights load from a local timm/MAE state_dict
(:func:`load_state_dict`, :func:`vit_params_from_state_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mimex_jax.nn.conv import Conv
from mimex_jax.nn.init import orthogonal


def conv_output_hw(height: int, width: int, strides: Sequence[int] = (2, 1, 1, 1),
                   kernel: int = 3) -> tuple[int, int]:
    """Spatial size after the ``VALID`` convolutions of :class:`ConvEncoder`."""
    for s in strides:
        height = (height - kernel) // s + 1
        width = (width - kernel) // s + 1
    return height, width


class ConvEncoder(nn.Module):
    """DrQ-v2's conv encoder: ``[..., H, W, C]`` images -> ``[..., repr_dim]`` features.

    ``repr_dim = channels * h' * w'`` (32 * 35 * 35 = 39200 for 84x84 inputs, as the
    original). Any leading axes are kept.
    """

    channels: int = 32
    strides: tuple[int, ...] = (2, 1, 1, 1)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        if obs.ndim < 3:
            raise ValueError(f"ConvEncoder: input shape {obs.shape} is invalid; allowed: "
                             "[..., H, W, C]")
        lead = obs.shape[:-3]
        x = obs.reshape((-1,) + obs.shape[-3:]).astype(jnp.float32) / 255.0 - 0.5
        for i, s in enumerate(self.strides):
            # mimex_jax's Conv: flax.linen.Conv's parameters, gradients that stay fast
            # inside lax.scan on XLA:CPU (see mimex_jax.nn.conv).
            x = Conv(self.channels, (3, 3), strides=(s, s),
                     kernel_init=orthogonal(math.sqrt(2.0)),
                     bias_init=nn.initializers.zeros, name=f"conv_{i}")(x)
            x = nn.relu(x)
        return x.reshape(lead + (-1,))

    def repr_dim(self, height: int, width: int) -> int:
        """Width of the flattened features for ``height x width`` images."""
        h, w = conv_output_hw(height, width, self.strides)
        return self.channels * h * w


class FrozenConvEncoder(ConvEncoder):
    """:class:`ConvEncoder` frozen at its random initialisation (the cheap baseline).

    Its output is wrapped in ``stop_gradient``, so no loss ever updates its weights (they
    stay in the parameter tree with zero gradients).
    """

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jax.lax.stop_gradient(super().__call__(obs))




# ImageNet normalisation used by MAE/MVP pretraining.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _frames(obs: jax.Array) -> tuple[jax.Array, tuple[int, ...], int]:
    """``[..., H, W, 3k]`` -> (``[B * k, H, W, 3]`` frames, leading shape, ``k``)."""
    if obs.ndim < 3 or obs.shape[-1] % 3:
        raise ValueError(f"ViTEncoder: input shape {obs.shape} is invalid; allowed: "
                         "[..., H, W, 3 * frames]")
    lead, (h, w, c) = obs.shape[:-3], obs.shape[-3:]
    k = c // 3
    x = obs.reshape((-1, h, w, k, 3)).transpose(0, 3, 1, 2, 4).reshape((-1, h, w, 3))
    return x, lead, k


class _PatchEmbed(nn.Module):
    patch_size: int
    width: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        p = self.patch_size
        x = nn.Conv(self.width, (p, p), strides=(p, p), padding="VALID", name="proj")(x)
        return x.reshape((x.shape[0], -1, self.width))


class ViTEncoder(nn.Module):
    """A ViT in the MAE/MVP layout (timm names): per frame, the normalised cls token.

    ``[..., H, W, 3k]`` images (``uint8``, ``k`` stacked RGB frames) -> ``[..., k * width]``:
    each frame is scaled to [0, 1], ImageNet-normalised, cut into ``patch_size`` patches
    (``patch_embed.proj``), prefixed with ``cls_token``, added to ``pos_embed`` and run
    through ``depth`` pre-LN blocks; the feature is ``norm`` of the cls token, as MVP's
    ``VisionTransformer.forward``. ``pos_embed`` is stored for a ``grid x grid`` patch grid
    (14 for 224-pixel pretraining at patch 16) and resized bicubically when the images give
    another grid (``jax.image.resize``: Keys' cubic, not PyTorch's, so features at a resized
    grid differ slightly from timm's). ``frozen`` (default) stops gradients at the output.
    Load pretrained weights with :func:`vit_params_from_state_dict`.
    ViT-S/16 as MVP: ``patch_size=16, width=384, depth=12, num_heads=12``.
    """

    patch_size: int = 16
    width: int = 384
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    grid: int = 14
    frozen: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        from mimex_jax.nn.transformer import Block, layer_norm

        x, lead, k = _frames(obs)
        mean, std = jnp.asarray(IMAGENET_MEAN), jnp.asarray(IMAGENET_STD)
        x = (x.astype(jnp.float32) / 255.0 - mean) / std
        gh, gw = x.shape[1] // self.patch_size, x.shape[2] // self.patch_size
        if gh < 1 or gw < 1:
            raise ValueError(f"ViTEncoder: images of {x.shape[1]}x{x.shape[2]} are smaller than "
                             f"one patch ({self.patch_size}); allowed: H, W >= patch_size")
        x = _PatchEmbed(self.patch_size, self.width, name="patch_embed")(x)
        init = nn.initializers.normal(0.02)
        cls = self.param("cls_token", init, (1, 1, self.width))
        pos = self.param("pos_embed", init, (1, 1 + self.grid * self.grid, self.width))
        pos_patches = pos[:, 1:]
        if (gh, gw) != (self.grid, self.grid):
            grid = pos_patches.reshape(1, self.grid, self.grid, self.width)
            pos_patches = jax.image.resize(grid, (1, gh, gw, self.width), "bicubic").reshape(
                1, gh * gw, self.width)
        x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.width)), x], axis=1)
        x = x + jnp.concatenate([pos[:, :1], pos_patches], axis=1)
        for i in range(self.depth):
            x = Block(self.width, self.num_heads, self.mlp_ratio, name=f"blocks_{i}")(x)
        feat = layer_norm("norm")(x[:, 0])
        feat = feat.reshape(lead + (k * self.width,))
        return jax.lax.stop_gradient(feat) if self.frozen else feat


# Keys of MAE/MVP checkpoints that the encoder does not use (MAE's decoder and mask token,
# a classifier head).
VIT_IGNORED_PREFIXES = ("decoder", "mask_token", "head.")


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """A state_dict from a local ``.npz`` (``{name: array}``) or a PyTorch file.

    PyTorch files (``.pth``/``.pt``: a state_dict, or a checkpoint with it under ``"model"``
    as MAE/MVP save them) need ``torch``; nothing is downloaded.
    """
    import os

    if not os.path.isfile(path):
        raise ValueError(f"vit weights file {path!r} does not exist; allowed: a local .npz "
                         "or PyTorch state_dict file")
    if path.endswith(".npz"):
        with np.load(path) as f:
            return {k: np.asarray(f[k]) for k in f.files}
    try:
        import torch
    except ImportError as err:
        raise ValueError(f"reading {path!r} needs torch (not installed); convert it to .npz "
                         "({name: tensor.numpy()}) or install torch") from err
    sd = torch.load(path, map_location="cpu")
    sd = sd.get("model", sd)
    return {k: v.detach().cpu().numpy() for k, v in sd.items()}


def vit_params_from_state_dict(state_dict: dict[str, Any], template: dict[str, Any],
                               ignore: Sequence[str] = VIT_IGNORED_PREFIXES) -> dict[str, Any]:
    """Flax params of :class:`ViTEncoder` (shaped as ``template``) from a timm/MAE state_dict.

    ``patch_embed.proj.weight [D, 3, P, P]`` becomes the conv kernel ``[P, P, 3, D]``;
    ``cls_token``/``pos_embed`` keep their shapes; the rest maps as
    :func:`mimex_jax.interop.convert_state_dict` (Linear transposed, LayerNorm ``weight`` ->
    ``scale``). Keys starting with ``ignore`` are dropped; any other unexpected, missing or
    wrongly shaped key raises ``ValueError`` naming it.
    """
    from mimex_jax.interop import convert_state_dict

    sd = {k: np.asarray(v) for k, v in state_dict.items()
          if not any(k.startswith(p) for p in ignore)}
    special = {"patch_embed.proj.weight": ("patch_embed", "proj", "kernel"),
               "cls_token": ("cls_token",), "pos_embed": ("pos_embed",)}
    out: dict[str, Any] = {}
    for name, path in special.items():
        if name not in sd:
            raise ValueError(f"vit: missing key(s) [{name!r}] in the state_dict")
        arr = sd.pop(name)
        if name == "patch_embed.proj.weight":
            arr = arr.transpose(2, 3, 1, 0)
        node = template
        for p in path:
            node = node[p]
        if arr.shape != tuple(node.shape):
            want = tuple(node.shape)
            if name == "patch_embed.proj.weight":
                want = (want[3], want[2], want[0], want[1])
            raise ValueError(f"vit: key {name!r} has shape {tuple(np.shape(state_dict[name]))}"
                             f"; expected {want}")
        out[path] = jnp.asarray(arr, node.dtype)
    rest = {k: v for k, v in template.items() if k not in ("cls_token", "pos_embed")}
    rest["patch_embed"] = {"proj": {"bias": template["patch_embed"]["proj"]["bias"]}}
    params = convert_state_dict(sd, rest, what="vit")
    params["patch_embed"]["proj"]["kernel"] = out[("patch_embed", "proj", "kernel")]
    params["cls_token"] = out[("cls_token",)]
    params["pos_embed"] = out[("pos_embed",)]
    return params


ENCODERS = {"conv": ConvEncoder, "random_conv": FrozenConvEncoder, "vit": ViTEncoder}


def make_encoder(kind: str, **kwargs) -> nn.Module:
    """The image encoder of kind ``kind`` (one of :data:`ENCODERS`)."""
    if kind not in ENCODERS:
        raise ValueError(f"encoder={kind!r} is invalid; allowed: {sorted(ENCODERS)}")
    return ENCODERS[kind](**kwargs)
