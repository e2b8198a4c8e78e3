"""Load the original PyTorch state_dicts into mimex-jax parameters.

Users migrating from the original MIMEx code keep their trained weights: export a
``state_dict`` as numpy arrays (``{name: tensor.cpu().numpy()}``) and convert it here.
Names follow the original modules (``blocks.0.attn.qkv.weight``, ``predictor.2.bias``,
``inv_model.0.weight``, ...). PyTorch ``Linear`` weights ``[out, in]`` become Flax
kernels ``[in, out]``; LayerNorm ``weight`` becomes ``scale``. The fixed sinusoidal
buffers (``pos_embed.pe``, ``decoder_pos_embed.pe``) are not parameters: they are
checked against the table mimex-jax computes and otherwise dropped.

Any missing, unexpected or wrongly shaped key raises a ValueError naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mimex_jax.nn.transformer import sinusoidal_table
from mimex_jax.rewards.icm import ICMConfig, init_icm_params
from mimex_jax.rewards.mimex import MIMExConfig, init_params
from mimex_jax.rewards.rnd import RNDConfig, init_rnd_params

_BLOCK_LISTS = ("blocks", "decoder_blocks")
_BUFFERS = {"pos_embed.pe": "embed", "decoder_pos_embed.pe": "decoder"}


def _flax_path(name: str, ndim: int) -> tuple[str, ...]:
    """``blocks.0.attn.qkv.weight`` -> ``('blocks_0', 'attn', 'qkv', 'kernel')``."""
    out: list[str] = []
    for part in name.split("."):
        if part.isdigit():
            if out and out[-1] in _BLOCK_LISTS:
                out[-1] = f"{out[-1]}_{part}"
            else:
                out.append(f"layers_{part}")
        else:
            out.append(part)
    if out[-1] == "weight":
        out[-1] = "kernel" if ndim == 2 else "scale"
    return tuple(out)


def _torch_name(path: tuple[str, ...]) -> str:
    parts: list[str] = []
    for p in path:
        head, _, idx = p.rpartition("_")
        if p.startswith("layers_") and idx.isdigit():
            parts.append(idx)
        elif head in _BLOCK_LISTS and idx.isdigit():
            parts.extend([head, idx])
        elif p in ("kernel", "scale"):
            parts.append("weight")
        else:
            parts.append(p)
    return ".".join(parts)


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            flat.update(_flatten(v, (*prefix, k)))
        else:
            flat[(*prefix, k)] = v
    return flat


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, v in flat.items():
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = v
    return tree


def convert_state_dict(
    state_dict: Mapping[str, Any], template: Mapping[str, Any], *, what: str,
    skip: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Map a PyTorch state_dict onto the structure of ``template`` (Flax params).

    ``skip`` maps buffer names to a validator called with the array (non-parameters).
    """
    skip = skip or {}
    expected = _flatten(template)
    out: dict[tuple[str, ...], jax.Array] = {}
    for name, value in state_dict.items():
        arr = np.asarray(value)
        if name in skip:
            skip[name](arr)
            continue
        path = _flax_path(name, arr.ndim)
        if path not in expected:
            raise ValueError(
                f"{what}: unexpected key {name!r} in the state_dict; expected keys: "
                f"{sorted(_torch_name(p) for p in expected)}")
        if path[-1] == "kernel":
            arr = arr.T
        want = tuple(expected[path].shape)
        if arr.shape != want:
            torch_shape = want[::-1] if path[-1] == "kernel" else want
            raise ValueError(
                f"{what}: key {name!r} has shape {tuple(np.asarray(value).shape)}; "
                f"expected {torch_shape}")
        out[path] = jnp.asarray(arr, dtype=expected[path].dtype)
    missing = sorted(_torch_name(p) for p in expected if p not in out)
    if missing:
        raise ValueError(f"{what}: missing key(s) {missing} in the state_dict")
    return _unflatten(out)


def _pe_checker(name: str, length: int, dim: int):
    def check(arr: np.ndarray) -> None:
        want = sinusoidal_table(length, dim)[None]
        if arr.shape != want.shape:
            raise ValueError(f"mimex: key {name!r} has shape {arr.shape}; expected {want.shape}")
        if not np.allclose(arr, want, atol=1e-5):
            raise ValueError(f"mimex: buffer {name!r} is not the standard sinusoidal table")

    return check


def mimex_params_from_torch(state_dict: Mapping[str, Any], cfg: MIMExConfig) -> dict[str, Any]:
    """Flax params for :class:`MIMExConfig` from an original ``BERT``/``MAE`` state_dict."""
    template = jax.eval_shape(lambda k: init_params(k, cfg), jax.random.key(0))
    dec = cfg.decoder_embed_dim
    pe_width = dec if cfg.mask_all else cfg.embed_dim
    skip = {"pos_embed.pe": _pe_checker("pos_embed.pe", cfg.seq_len, pe_width)}
    if not cfg.mask_all:
        skip["decoder_pos_embed.pe"] = _pe_checker("decoder_pos_embed.pe", cfg.seq_len, dec)
    return convert_state_dict(state_dict, template, what="mimex", skip=skip)


def rnd_params_from_torch(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """RND params (``predictor`` and ``target``) from the original ``RND`` state_dict.

    Sizes are read from the arrays (``predictor.0.weight`` is ``[hidden, obs_dim]``).
    """
    try:
        hidden, obs_dim = np.shape(state_dict["predictor.0.weight"])
        feature_dim = np.shape(state_dict["predictor.4.weight"])[0]
    except KeyError as e:
        raise ValueError(f"rnd: missing key {e.args[0]!r} in the state_dict") from None
    cfg = RNDConfig(obs_dim=obs_dim, hidden_dim=hidden, feature_dim=feature_dim)
    template = jax.eval_shape(lambda k: init_rnd_params(k, cfg), jax.random.key(0))
    return convert_state_dict(state_dict, template, what="rnd")


def icm_params_from_torch(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """ICM params (``enc``, ``inv_model``, ``for_model``) from the original ``ICM`` state_dict."""
    try:
        feature_dim, obs_dim = np.shape(state_dict["enc.weight"])
        hidden = np.shape(state_dict["inv_model.0.weight"])[0]
        action_dim = np.shape(state_dict["inv_model.2.weight"])[0]
    except KeyError as e:
        raise ValueError(f"icm: missing key {e.args[0]!r} in the state_dict") from None
    cfg = ICMConfig(obs_dim=obs_dim, action_dim=action_dim, feature_dim=feature_dim,
                    hidden_dim=hidden)
    template = jax.eval_shape(lambda k: init_icm_params(k, cfg), jax.random.key(0))
    return convert_state_dict(state_dict, template, what="icm")
