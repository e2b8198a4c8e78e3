"""The original PyTorch ``DrQV2Agent.update`` (mimex-dmc), timed on this CPU.

Runs in the separate torch virtualenv; ``benchmarks/drqv2.py`` starts it with ``--serve``
and times it in turns with mimex-jax's update. The original's ``drqv2.py`` and
``utils.py`` are loaded at run time from the original's directory (``--original``), not
copied: modules they import only for paths not timed here (hydra, timm, the BERT / ICM /
RND / MAE models, omegaconf when absent) are replaced by empty stand-ins that fail if
called. Timed: ``agent.update(replay_iter, step)`` with no bonus (``seq_expl_len: 0``), the
``drq`` encoder and random-shift augmentation, as in the original's pixel runs; the batch
is the same numpy batch each call (``utils.to_torch`` converts it, as the original does).

``--obs state``: the original has no state variant (its ``Encoder`` asserts images), so
the encoder is replaced by the identity (holding one unused scalar so that the original's
``Adam`` over encoder parameters can be built) and augmentation is off, as mimex-jax's
state DrQ-v2 with ``state_hidden: []``.

    /work/.venv-torch/bin/python benchmarks/torch_drqv2.py --obs pixels --repeats 5
    /work/.venv-torch/bin/python benchmarks/torch_drqv2.py --serve   # one update per line
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import statistics
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_baseline import serve_loop  # noqa: E402

DEFAULT_ORIGINAL = Path(__file__).resolve().parents[2] / "shared" / "original" / "mimex-dmc"


def _stand_in(name: str, attrs: tuple[str, ...]) -> types.ModuleType:
    """An importable module whose attributes raise when used."""
    mod = types.ModuleType(name)

    def unused(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError(f"{name} is not available in this benchmark")

    for a in attrs:
        setattr(mod, a, unused)
    return mod


def load_original(directory: Path) -> types.ModuleType:
    """The original's ``drqv2`` module (with its ``utils``), loaded from ``directory``."""
    stand_ins = {"hydra": (), "timm": (), "timm.optim": (), "timm.optim.optim_factory": (),
                 "bert": ("BERT",), "icm": ("ICM",), "rnd": ("RND",),
                 "mae": ("MAE", "get_data_aug"),
                 "mae_models": ("mae_vit_mini_flex", "vit_mini_flex")}
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        stand_ins["omegaconf"] = ("DictConfig", "OmegaConf")
    for name, attrs in stand_ins.items():
        sys.modules.setdefault(name, _stand_in(name, attrs))
    sys.modules["timm"].optim = sys.modules["timm.optim"]
    sys.modules["timm.optim"].optim_factory = sys.modules["timm.optim.optim_factory"]
    for name in ("utils", "drqv2"):
        spec = importlib.util.spec_from_file_location(name, directory / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["drqv2"]


class IdentityEncoder(nn.Module):
    """State observations as features (one unused scalar for the original's Adam)."""

    def __init__(self, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.repr_dim = obs_shape[0]
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs


def make_update(args: argparse.Namespace):
    """``step()`` running one original ``DrQV2Agent.update`` on a fixed random batch."""
    drqv2 = load_original(Path(args.original))
    pixels = args.obs == "pixels"
    obs_shape = (9, 84, 84) if pixels else (args.state_dim,)
    if not pixels:
        drqv2.Encoder = IdentityEncoder
    agent = drqv2.DrQV2Agent(
        obs_shape=obs_shape, action_shape=(args.action_dim,), device="cpu", lr=1e-4,
        feature_dim=args.feature_dim, hidden_dim=args.hidden_dim, critic_target_tau=0.01,
        num_expl_steps=2000, update_every_steps=2, stddev_schedule="linear(1.0,0.1,500000)",
        stddev_clip=0.3, use_tb=True,
        encoder_cfg=SimpleNamespace(aug_type="drq", encoder_type="drq"),
        expl_cfg=SimpleNamespace(seq_expl_len=0))
    if not pixels:
        agent.aug = nn.Identity()
    rng = np.random.default_rng(0)
    b = args.batch
    if pixels:
        obs = rng.integers(0, 256, (b,) + obs_shape, dtype=np.uint8)
        nxt = rng.integers(0, 256, (b,) + obs_shape, dtype=np.uint8)
    else:
        obs = rng.standard_normal((b,) + obs_shape).astype(np.float32)
        nxt = rng.standard_normal((b,) + obs_shape).astype(np.float32)
    batch = (obs, rng.uniform(-1, 1, (b, args.action_dim)).astype(np.float32),
             rng.standard_normal((b, 1)).astype(np.float32), np.full((b, 1), 0.99, np.float32),
             nxt)
    replay_iter = itertools.repeat(batch)

    def step() -> dict:
        return agent.update(replay_iter, 10_000)

    return step


def info() -> dict:
    return {"torch_version": torch.__version__, "num_threads": torch.get_num_threads()}


def serve(args: argparse.Namespace) -> None:
    """After ``--warmup`` updates, the ``--serve`` protocol of ``torch_baseline.py``."""
    step = make_update(args)
    for _ in range(args.warmup):
        step()
    serve_loop(step, info())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--obs", choices=("state", "pixels"), default="pixels")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--state-dim", type=int, default=24)
    p.add_argument("--action-dim", type=int, default=6)
    p.add_argument("--hidden-dim", type=int, default=1024)
    p.add_argument("--feature-dim", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--original", default=str(DEFAULT_ORIGINAL),
                   help="the original mimex-dmc directory (drqv2.py, utils.py)")
    p.add_argument("--serve", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.serve:
        serve(args)
        return
    step = make_update(args)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        m = step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({**info(), "obs": args.obs, "median_s": med, "updates_per_s": 1 / med,
                      "critic_loss": m["critic_loss"], "times_s": times}))


if __name__ == "__main__":
    main()
