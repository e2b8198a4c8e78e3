"""PPO+MIMEx vs PPO without a bonus from pixels, several seeds, at a CPU-sized budget.

Each method's fused chunk program is compiled once and its seeds run one after another
through it or, with ``--vmap-seeds``, as one vmapped program (every seed's worlds rendered
through one context: the layout for a GPU). Settings follow the state exploration
benchmark's cart-pole (:mod:`mimex_jax.bench.exploration`: PPO lr 3e-4, clip 0.2, tanh
64-64, 4 epochs x 4 minibatches, normalised intrinsic reward, k_expl 0.5) with 64x64 frames
of the pixel preset (3 stacked, action repeat 2) and the bonus on the detached encoder
trunk.

Per seed it records the training metrics of every iteration and reports the extrinsic
reward collected during training (the sparse task pays 1 per step only while the pole is
up and centred, so this counts how often exploration found the goal), the mean return of
the episodes finished in the last half of training, and whether any reward was seen.

    python benchmarks/pixels_learning.py --seeds 5 --iterations 30

``--methods`` also takes ``initial``: PPO without a bonus at lr 1e-12, i.e. the policy
stays at its random initialisation (Gaussian, std 1) while running the same program; it
is the random-policy baseline of a dense task (``--env playground:CartpoleBalance
--methods none,initial --episode-length 100``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from mimex_jax import loop  # noqa: E402
from mimex_jax.evaluate import random_policy_returns  # noqa: E402
from mimex_jax.trainer import HParams, TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def config(args: argparse.Namespace, reward: str) -> TrainConfig:
    return TrainConfig(
        episode_length=args.episode_length,
        env_id=args.env, num_envs=args.num_envs, rollout_len=args.rollout, epochs=args.epochs,
        minibatches=args.minibatches, total_steps=args.num_envs * args.rollout * args.iterations,
        reward=reward, embedding="encoder", normalize_intrinsic=True,
        actor_hidden=(64, 64), critic_hidden=(64, 64), activation="tanh",
        lr_schedule="constant", observation="pixels",
        pixels=(("height", args.size), ("width", args.size), ("proprio", args.proprio),
                ("encoder", args.encoder), ("shared_encoder", not args.separate_encoders)) + (
                   (("camera", args.camera),) if args.camera else ()))


REWARDS = ("none", "mimex", "rnd", "icm")
DIAGNOSTICS = ("entropy", "explained_variance", "value_loss", "grad_norm", "approx_kl")
RANDOM_EPISODES = 64


def random_rows(cfg: TrainConfig, seeds: range) -> list[dict]:
    """The uniform-random policy's returns on the same task (time limit, action repeat),
    :data:`RANDOM_EPISODES` episodes per seed, stepped from state without rendering."""
    run = jax.jit(random_policy_returns, static_argnums=(0, 1))
    rows = []
    for seed in seeds:
        ret = np.asarray(run(cfg, RANDOM_EPISODES, jax.random.key(seed)))
        rows.append({"seed": seed, "episodes": RANDOM_EPISODES,
                     "last_half_mean_episode_return": float(ret.mean()),
                     "return_std": float(ret.std()), "extrinsic_reward_collected": None,
                     "any_reward": bool(np.any(ret > 0))})
        print(f"random seed {seed}: mean return {ret.mean():.2f} (std {ret.std():.2f}, "
              f"{RANDOM_EPISODES} episodes)", flush=True)
    return rows


def seed_row(metrics: dict[str, np.ndarray], steps_per_iteration: int) -> dict:
    it = len(metrics["reward_ext"])
    half = slice(it // 2, it)
    done = metrics["episodes"][half]
    ret = metrics["episode_return"][half]
    last_half_return = float(np.sum(ret * done) / max(np.sum(done), 1.0))
    return {
        "extrinsic_reward_collected": float(np.sum(metrics["reward_ext"]) * steps_per_iteration),
        "last_half_mean_episode_return": last_half_return,
        "episodes_finished": float(np.sum(metrics["episodes"])),
        "any_reward": bool(np.sum(metrics["reward_ext"]) > 0),
        "reward_int_mean": float(np.mean(metrics["reward_int"])),
        "curve_reward_ext": [float(x) for x in metrics["reward_ext"]],
        **{f"curve_{k}": [float(x) for x in metrics[k]] for k in DIAGNOSTICS if k in metrics},
    }


def vmapped_rows(cfg: TrainConfig, method: str, hp: HParams, seeds: range) -> list[dict]:
    """Rows of ``seeds`` trained as one vmapped program (``--vmap-seeds``)."""
    runner = loop.make_runner(cfg, sweep=True)
    hps = jax.tree.map(lambda x: np.full((len(seeds),), x, np.float32), hp)
    keys = jax.numpy.stack([jax.random.key(s) for s in seeds])
    t0 = time.perf_counter()
    _, metrics = loop.run(runner, hps, keys, chunk=cfg.num_iterations)
    seconds = time.perf_counter() - t0
    rows = []
    for i, seed in enumerate(seeds):
        rows.append({"seed": seed, "seconds": seconds / len(seeds),
                     **seed_row({k: v[i] for k, v in metrics.items()},
                                cfg.steps_per_iteration)})
        r = rows[-1]
        print(f"{method} seed {seed}: reward collected {r['extrinsic_reward_collected']:.0f}, "
              f"last-half return {r['last_half_mean_episode_return']:.2f}", flush=True)
    print(f"{method}: {len(seeds)} seeds in one program, {seconds:.0f}s", flush=True)
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="playground:CartpoleSwingupSparse")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds are first-seed .. first-seed + seeds - 1 (split a run over "
                        "processes; --merge joins their files)")
    p.add_argument("--merge", type=Path, nargs="+", default=None,
                   help="join these result files (same settings, other seeds) into --out "
                        "and print the table; nothing is trained")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--rollout", type=int, default=32)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--methods", default="mimex,none",
                   help="comma list of rewards (mimex, none, rnd, icm), 'initial' (PPO at lr "
                        "1e-12) and 'random' (uniform random actions, no training)")
    p.add_argument("--episode-length", type=int, default=None,
                   help="time limit in agent steps (default: the task's)")
    p.add_argument("--lr", type=float, default=3e-4, help="PPO (and reward-model) learning rate")
    p.add_argument("--value-coef", type=float, default=0.5,
                   help="weight of the value loss (it shares the encoder with the policy)")
    p.add_argument("--max-grad-norm", type=float, default=0.5)
    p.add_argument("--gamma", type=float, default=0.99, help="discount")
    p.add_argument("--reward-scale", type=float, default=1.0,
                   help="factor on the task reward in the PPO returns (hparams.reward_scale)")
    p.add_argument("--entropy-coef", type=float, default=0.0, help="weight of the entropy bonus")
    p.add_argument("--clip-eps", type=float, default=0.2, help="PPO's ratio clip")
    p.add_argument("--epochs", type=int, default=4, help="PPO epochs per iteration")
    p.add_argument("--minibatches", type=int, default=4, help="PPO minibatches per epoch")
    p.add_argument("--camera", default=None, help="camera name (default: the task's)")
    p.add_argument("--proprio", action="store_true",
                   help="proprioception (the state vector) beside the image")
    p.add_argument("--encoder", default="conv", help="conv (learned), random_conv or vit")
    p.add_argument("--separate-encoders", action="store_true",
                   help="the critic gets its own encoder and trunk (pixels.shared_encoder false)")
    p.add_argument("--vmap-seeds", action="store_true",
                   help="train a method's seeds as one vmapped program (default: one after "
                        "another through one single-run program)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pixels_learning.json")
    return p


def hparams(args: argparse.Namespace) -> HParams:
    """The run's PPO hyperparameters (k_expl 0.5 and mask ratio 0.7 for the bonus)."""
    return HParams(lr=args.lr, clip_eps=args.clip_eps, value_coef=args.value_coef,
                   entropy_coef=args.entropy_coef, max_grad_norm=args.max_grad_norm,
                   gamma=args.gamma, lam=0.95, k_expl=0.5, mask_ratio=0.7,
                   reward_scale=args.reward_scale).validate()


def main() -> None:
    args = parser().parse_args()
    if args.merge:
        merge(args.merge, args.out)
        return
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    hp = hparams(args)
    result = {"machine": machine(), "command": " ".join(["python"] + sys.argv),
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "hparams": hp._asdict(), "methods": {}}
    for method in args.methods.split(","):
        cfg = config(args, method if method in REWARDS else "none")
        result["settings"] = {"num_envs": cfg.num_envs, "rollout_len": cfg.rollout_len,
                              "iterations": cfg.num_iterations,
                              "agent_steps_per_seed": cfg.num_iterations * cfg.steps_per_iteration,
                              "size": args.size, "frame_stack": 3, "action_repeat": 2}
        if method == "random":
            result["methods"][method] = random_rows(cfg, seeds)
            continue
        method_hp = hp._replace(lr=1e-12) if method == "initial" else hp
        if args.vmap_seeds:
            result["methods"][method] = vmapped_rows(cfg, method, method_hp, seeds)
            continue
        runner = loop.make_runner(cfg)
        rows = []
        for seed in seeds:
            t0 = time.perf_counter()
            _, metrics = loop.run(runner, method_hp, jax.random.key(seed),
                                  chunk=cfg.num_iterations)
            rows.append({"seed": seed, "seconds": time.perf_counter() - t0,
                         **seed_row(metrics, cfg.steps_per_iteration)})
            r = rows[-1]
            print(f"{method} seed {seed}: reward collected {r['extrinsic_reward_collected']:.0f}"
                  f", last-half return {r['last_half_mean_episode_return']:.2f} "
                  f"({r['seconds']:.0f}s)", flush=True)
        result["methods"][method] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(report(result))


def merge(paths: list[Path], out: Path) -> None:
    """Join result files of one setting run over disjoint seeds into ``out``."""
    parts = [json.loads(p.read_text()) for p in paths]
    first = parts[0]
    for p, part in zip(paths[1:], parts[1:], strict=True):
        for key in ("hparams", "settings"):
            if part[key] != first[key]:
                raise ValueError(f"--merge: {p} has other {key} than {paths[0]}: "
                                 f"{part[key]} vs {first[key]}")
    result = {**first, "command": [part["command"] for part in parts],
              "merged_from": [str(p) for p in paths],
              "machine": [part["machine"] for part in parts], "methods": {}}
    for part in parts:
        for method, rows in part["methods"].items():
            result["methods"].setdefault(method, []).extend(rows)
    for method, rows in result["methods"].items():
        seeds = [r["seed"] for r in rows]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"--merge: method {method!r} has seed(s) twice: {sorted(seeds)}")
        rows.sort(key=lambda r: r["seed"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(report(result))


def report(result: dict) -> str:
    lines = ["| method | extrinsic reward collected, median [min, max] | seeds with any reward "
             "| last-half episode return, median | per-seed reward collected |",
             "|---|---|---|---|---|"]
    for method, rows in result["methods"].items():
        ret = [r["last_half_mean_episode_return"] for r in rows]
        any_reward = f"{sum(r['any_reward'] for r in rows)}/{len(rows)}"
        if method == "random":  # no training: its episodes' mean return stands in
            lines.append(f"| random (uniform actions, {rows[0]['episodes']} episodes per seed) "
                         f"| n/a | {any_reward} | {statistics.median(ret):.2f} | n/a |")
            continue
        col = [r["extrinsic_reward_collected"] for r in rows]
        lines.append(f"| {method} | {statistics.median(col):.0f} [{min(col):.0f}, "
                     f"{max(col):.0f}] | {any_reward} | "
                     f"{statistics.median(ret):.2f} | {', '.join(f'{c:.0f}' for c in col)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
