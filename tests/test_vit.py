"""The frozen ViT encoder (MAE/MVP layout) against an independent NumPy forward pass.

timm and torch are not installed here, so the reference is written out below from the
published ViT definition (timm names and PyTorch weight layouts); weights are random.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from mimex_jax.agents.ppo import PixelActorCritic
from mimex_jax.nn.encoders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ViTEncoder,
    load_state_dict,
    vit_params_from_state_dict,
)

P, D, DEPTH, HEADS, GRID = 4, 16, 2, 2, 3
H = W = P * GRID


def random_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def r(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    sd = {"patch_embed.proj.weight": r(D, 3, P, P), "patch_embed.proj.bias": r(D),
          "cls_token": r(1, 1, D), "pos_embed": r(1, 1 + GRID * GRID, D),
          "norm.weight": 1 + r(D), "norm.bias": r(D)}
    for i in range(DEPTH):
        b = f"blocks.{i}."
        sd.update({b + "norm1.weight": 1 + r(D), b + "norm1.bias": r(D),
                   b + "attn.qkv.weight": r(3 * D, D), b + "attn.qkv.bias": r(3 * D),
                   b + "attn.proj.weight": r(D, D), b + "attn.proj.bias": r(D),
                   b + "norm2.weight": 1 + r(D), b + "norm2.bias": r(D),
                   b + "mlp.fc1.weight": r(4 * D, D), b + "mlp.fc1.bias": r(4 * D),
                   b + "mlp.fc2.weight": r(D, 4 * D), b + "mlp.fc2.bias": r(D)})
    return sd


def reference(sd: dict[str, np.ndarray], img: np.ndarray) -> np.ndarray:
    """timm ViT forward (cls token, final norm) in float64 NumPy, one RGB frame per row."""
    def ln(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-6) * w + b

    x = (img.astype(np.float64) / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    b = x.shape[0]
    # conv with stride = kernel = P: patches flattened in the weight's (C, P, P) order
    patches = x.reshape(b, GRID, P, GRID, P, 3).transpose(0, 1, 3, 5, 2, 4).reshape(
        b, GRID * GRID, 3 * P * P)
    t = patches @ sd["patch_embed.proj.weight"].reshape(D, -1).T + sd["patch_embed.proj.bias"]
    t = np.concatenate([np.repeat(sd["cls_token"], b, 0), t], 1) + sd["pos_embed"]
    hd = D // HEADS
    for i in range(DEPTH):
        p = lambda k, i=i: sd[f"blocks.{i}.{k}"]  # noqa: E731
        y = ln(t, p("norm1.weight"), p("norm1.bias"))
        qkv = (y @ p("attn.qkv.weight").T + p("attn.qkv.bias")).reshape(b, -1, 3, HEADS, hd)
        q, k, v = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))
        a = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        a = np.exp(a - a.max(-1, keepdims=True))
        a = a / a.sum(-1, keepdims=True)
        o = (a @ v).transpose(0, 2, 1, 3).reshape(b, -1, D)
        t = t + o @ p("attn.proj.weight").T + p("attn.proj.bias")
        y = ln(t, p("norm2.weight"), p("norm2.bias"))
        y = y @ p("mlp.fc1.weight").T + p("mlp.fc1.bias")
        y = 0.5 * y * (1 + erf(y / np.sqrt(2)))
        t = t + y @ p("mlp.fc2.weight").T + p("mlp.fc2.bias")
    return ln(t[:, 0], sd["norm.weight"], sd["norm.bias"])


@pytest.fixture(scope="module")
def vit():
    module = ViTEncoder(patch_size=P, width=D, depth=DEPTH, num_heads=HEADS, grid=GRID)
    shapes = jax.eval_shape(module.init, jax.random.key(0),
                            jnp.zeros((1, H, W, 6), jnp.uint8))["params"]
    return module, shapes


def test_vit_matches_reference_forward_per_frame(vit, tmp_path):
    module, shapes = vit
    sd = random_state_dict()
    path = tmp_path / "vit.npz"
    np.savez(path, **sd, **{"decoder_embed.weight": np.zeros((2, 2), np.float32)})
    params = vit_params_from_state_dict(load_state_dict(str(path)), shapes)
    img = np.random.default_rng(1).integers(0, 256, (2, H, W, 6), dtype=np.uint8)
    out = np.asarray(jax.jit(module.apply)({"params": params}, jnp.asarray(img)))
    assert out.shape == (2, 2 * D)
    for f in range(2):  # two stacked frames -> two feature blocks
        want = reference(sd, img[..., 3 * f:3 * f + 3])
        np.testing.assert_allclose(out[:, f * D:(f + 1) * D], want, atol=2e-4, rtol=1e-4)


def test_vit_is_frozen_and_resizes_its_position_grid(vit):
    module, shapes = vit
    params = vit_params_from_state_dict(random_state_dict(), shapes)
    img = jnp.full((1, H, W, 3), 128, jnp.uint8)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(module.apply({"params": p}, img))))(params)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads))
    bigger = jax.jit(module.apply)({"params": params},
                                   jnp.zeros((1, H + P, W + 2 * P, 3), jnp.uint8))
    assert bigger.shape == (1, D) and bool(jnp.all(jnp.isfinite(bigger)))


@pytest.mark.parametrize("change, message", [
    (lambda sd: sd.pop("blocks.1.mlp.fc2.bias"), "missing key(s) ['blocks.1.mlp.fc2.bias']"),
    (lambda sd: sd.pop("pos_embed"), "missing key(s) ['pos_embed']"),
    (lambda sd: sd.update({"blocks.2.norm1.weight": np.ones(D, np.float32)}),
     "unexpected key 'blocks.2.norm1.weight'"),
    (lambda sd: sd.update({"fc_norm.weight": np.ones(D, np.float32)}),
     "unexpected key 'fc_norm.weight'"),
    (lambda sd: sd.update({"blocks.0.attn.qkv.weight": np.ones((D, D), np.float32)}),
     f"key 'blocks.0.attn.qkv.weight' has shape ({D}, {D}); expected ({3 * D}, {D})"),
    (lambda sd: sd.update({"patch_embed.proj.weight": np.ones((D, 3, 2, 2), np.float32)}),
     f"key 'patch_embed.proj.weight' has shape ({D}, 3, 2, 2); expected ({D}, 3, {P}, {P})"),
])
def test_pretrained_file_errors_name_the_key(vit, change, message):
    sd = random_state_dict()
    change(sd)
    with pytest.raises(ValueError) as err:
        vit_params_from_state_dict(sd, vit[1])
    assert message in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_state_dict(str(tmp_path / "nope.npz"))


@pytest.mark.slow
def test_pixel_actor_critic_with_vit_features():
    net = PixelActorCritic(action_dim=2, actor_hidden=(8,), critic_hidden=(8,), encoder="vit",
                           encoder_kwargs=(("depth", 1), ("num_heads", 2), ("patch_size", P),
                                           ("width", D)), torso_output="encoder")
    obs = jnp.zeros((3, H, W, 9), jnp.uint8)
    params = jax.jit(net.init)(jax.random.key(0), obs)["params"]
    dist, v, _, feat = jax.jit(net.apply)({"params": params}, obs)
    assert dist.loc.shape == (3, 2) and v.shape == (3,) and feat.shape == (3, 50)
