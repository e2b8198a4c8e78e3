"""Benchmark: our fused plain PPO against Brax's own PPO trainer, same task and settings.

Task: ``brax:reacher_sparse`` (``mimex_jax.envs.sparse.SparseReacher``, backend "generalized",
episode length 50) with 512 envs at the paper's PPO settings: 32 steps per env per iteration,
10 epochs x 4 minibatches, clip 0.1 (policy and value), gamma 0.99, GAE lambda 0.95, Adam lr
1e-3 (constant), global grad-norm clip 1, value coefficient 2 on the mean squared error,
entropy 0, separate actor and critic MLPs 256-128-64 (SELU), a Gaussian policy with a learned
state-independent log-std, no reward scaling, no observation normalisation.

Both sides get the same env class. Ours: ``make_train(TrainConfig(reward="none", ...))``, with
``xla.jit(update_step, donate_argnums=0)`` (:mod:`mimex_jax.xla`) called ``--iters`` times per
repeat. Brax's:
``brax.training.agents.ppo.train.train`` with ``num_envs=512, batch_size=128,
num_minibatches=4, unroll_length=32, num_updates_per_batch=10`` (so one Brax training step is
``batch_size * num_minibatches * unroll_length = 16384`` env steps, one unroll of the 512 envs
like one iteration of ours), run by ``benchmarks/_brax_ppo_worker.py`` under ``.venv-brax``
because Brax's trainer calls ``jax.device_put_replicated``, removed in JAX 0.10. One repeat of
Brax's side is one of its training epochs (``--iters`` training steps, one compiled call), timed
by Brax's own ``training/walltime`` (evaluation is off: ``run_evals=False``); its first two
epochs are discarded as warm-up (Brax's pmapped epoch compiles twice: for the state from
``jax.device_put_replicated`` and again for the differently sharded state its first epoch
returns). Ours compiles first (ahead of time), then runs one warm-up repeat. The two sides are
interleaved repeat by repeat (alternating which goes first) while the other process sits idle,
so machine load hits both alike; the ratio is reported both from the medians and as the median
of the per-repeat ratios. Each side's process CPU time per repeat (all threads) is recorded too:
on a shared machine it is less sensitive to other processes than the wall-clock time is.

Differences that remain are listed in ``DIFFERENCES`` below (and in the JSON output).

Create the Brax environment once (from the repository root; jax 0.9.2 is the newest release
that still has ``jax.device_put_replicated``, flax 0.12.6 the newest that accepts it)::

    python3.11 -m venv .venv-brax
    .venv-brax/bin/pip install jax==0.9.2 jaxlib==0.9.2 brax==0.14.2 flax==0.12.6 \\
        optax==0.2.8 orbax-checkpoint==0.12.8 mujoco==4.0.0 mujoco-mjx==3.17.0 \\
        chex==0.1.92 gymnax==1.0.1 six==1.17.0 numpy==2.4.6
    .venv-brax/bin/pip install --no-deps -e .

Run (from the main venv; 3.5 to 6 minutes on the shared 2-core machine)::

    python benchmarks/brax_ppo.py                       # 7 repeats x 3 iterations per side
    python benchmarks/brax_ppo.py --repeats 3 --iters 1 # quicker

Writes ``benchmarks/results/brax_ppo.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from mimex_jax import xla  # noqa: E402
from mimex_jax.envs.base import Wrapper  # noqa: E402
from mimex_jax.trainer import HParams, TrainConfig, make_train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "benchmarks" / "_brax_ppo_worker.py"

# One source for both sides.
SETTINGS = {
    "env_id": "brax:reacher_sparse",
    "backend": "generalized",
    "num_envs": 512,
    "episode_length": 50,
    "unroll_length": 32,  # ours: rollout_len
    "num_updates_per_batch": 10,  # ours: epochs
    "num_minibatches": 4,  # ours: minibatches
    "batch_size": 128,  # Brax: trajectories per minibatch; 128 * 4 = 512 envs
    "lr": 1e-3,
    "max_grad_norm": 1.0,
    "clip_eps": 0.1,  # policy ratio clip and value clip on both sides
    "gamma": 0.99,
    "lam": 0.95,
    "value_coef": 2.0,  # coefficient on mean((V - target)^2)
    "brax_vf_loss_coefficient": 4.0,  # Brax's value loss is 0.5 * coef * mean(...): 0.5 * 4 = 2
    "entropy_coef": 0.0,
    "hidden": [256, 128, 64],
    "activation": "selu",
    "distribution_type": "normal",  # Brax: plain Gaussian (its default is tanh-squashed)
    "noise_std_type": "log",  # Brax: learned state-independent log-std, like ours
    "init_noise_std": 1.0,  # ours: init_log_std = 0
    "seed": 0,
}

DIFFERENCES = [
    "JAX: ours runs on the main venv's jax (0.10.x), Brax's trainer on jax 0.9.2 (it needs "
    "jax.device_put_replicated); XLA's CPU code generation may differ between the two.",
    "Advantages: ours computes GAE once per iteration from the rollout's values; Brax recomputes "
    "the values of the minibatch and its GAE inside the loss of every minibatch step (40 times "
    "per iteration, with the current parameters). Both normalise advantages per minibatch.",
    "Minibatches: ours are 4096 transitions shuffled across time and envs; Brax's are 128 whole "
    "32-step trajectories (also 4096 transitions).",
    "Time limits: ours bootstraps a truncated episode from the value of its terminal observation "
    "(one extra actor-critic pass per env step in the rollout, on info['terminal_obs']); Brax "
    "(bootstrap_on_timeout=False, its default) masks the truncated transition out of the loss.",
    "Auto-reset: ours draws a new random initial state when episodes end (a reset under "
    "lax.cond(any(done)); here on 1 step in 50, the envs stay in lockstep); Brax's "
    "AutoResetWrapper selects each env's first initial state with where() on every step.",
    "Wrappers: ours SparseReacher -> EpisodeTimeLimit(50) -> EpisodeStats -> ClipAction "
    "-> VecEnv(512) -> AutoReset; Brax's SparseReacher -> VmapWrapper -> EpisodeWrapper(50) "
    "-> AutoResetWrapper. Ours clips actions to [-1, 1]; Brax's 'normal' distribution passes "
    "them on unclipped.",
    "Ours with reward='none' still keeps the MIMEx sequence windows (seq_len 5) of the "
    "observation embeddings in the rollout and runs the (empty) reward-model update; Brax "
    "updates its observation-normaliser statistics every step although they are unused.",
    "Initialisation: ours orthogonal (gain sqrt(2) hidden, 0.01 policy head, 1 value head); "
    "Brax lecun_uniform. Irrelevant to speed.",
    "Dispatch: Brax's epoch is one pmap (one CPU device) scanning --iters training steps; ours "
    "is --iters Python calls of the jitted update_step (seconds each, dispatch is negligible).",
]


def _versions() -> dict:
    out = {}
    for name in ("jax", "jaxlib", "brax", "flax", "optax", "mujoco", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _load() -> float:
    return os.getloadavg()[0]


class BraxWorker:
    """The Brax side, in its own process; ``epoch()`` runs and times one training epoch."""

    def __init__(self, python: Path, iters: int, repeats: int, warmup_epochs: int):
        self._log = tempfile.TemporaryFile(mode="w+")
        cmd = [str(python), str(WORKER), "--settings", json.dumps(SETTINGS),
               "--iters", str(iters), "--epochs", str(repeats),
               "--warmup-epochs", str(warmup_epochs)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     bufsize=1)
        self.warmup = [self._read() for _ in range(warmup_epochs)]

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("BRAX_PPO "):
                return json.loads(line[len("BRAX_PPO "):])
        self.proc.wait()
        self._log.seek(0)
        tail = self._log.read()[-4000:]
        raise RuntimeError(f"Brax worker exited with {self.proc.returncode}:\n{tail}")

    def epoch(self) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self._read()

    def finish(self) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        done = self._read()
        self.proc.wait(timeout=120)
        return done


class Ours:
    """Our fused trainer; ``epoch()`` runs and times ``iters`` calls of ``update_step``."""

    def __init__(self, iters: int):
        s = SETTINGS
        self.iters = iters
        self.cfg = TrainConfig(
            env_id=s["env_id"], env_kwargs=(("backend", s["backend"]),),
            num_envs=s["num_envs"], rollout_len=s["unroll_length"],
            epochs=s["num_updates_per_batch"], minibatches=s["num_minibatches"],
            total_steps=s["num_envs"] * s["unroll_length"] * 1000,
            episode_length=s["episode_length"], reward="none", normalize_obs=False,
            actor_hidden=tuple(s["hidden"]), critic_hidden=tuple(s["hidden"]),
            activation=s["activation"], lr_schedule="constant", clip_value=True)
        self.hp = HParams(lr=s["lr"], max_grad_norm=s["max_grad_norm"], clip_eps=s["clip_eps"],
                          value_coef=s["value_coef"], entropy_coef=s["entropy_coef"],
                          gamma=s["gamma"], lam=s["lam"], k_expl=0.0).validate()
        init, update_step, _, env = make_train(self.cfg)
        chain = [env]
        while isinstance(chain[-1], Wrapper):
            chain.append(chain[-1].env)
        self.env_chain = [type(e).__qualname__ for e in reversed(chain)]
        self.env_class = f"{type(chain[-1]).__module__}.{type(chain[-1]).__qualname__}"
        self.state = xla.jit(init)(jax.random.key(s["seed"]), self.hp)
        t0 = time.perf_counter()
        self.step = xla.jit(update_step, donate_argnums=0).lower(self.state, self.hp).compile()
        self.compile_s = time.perf_counter() - t0

    def epoch(self) -> tuple[float, float]:
        """(wall-clock s, process CPU s) of ``iters`` iterations."""
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(self.iters):
            self.state, metrics = self.step(self.state, self.hp)
        jax.block_until_ready((self.state, metrics))
        return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=3, help="iterations per repeat, each side")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--brax-warmup-epochs", type=int, default=2)
    p.add_argument("--brax-python", type=Path, default=ROOT / ".venv-brax/bin/python")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/brax_ppo.json")
    args = p.parse_args()
    if not args.brax_python.exists():
        sys.exit(f"{args.brax_python} not found: create .venv-brax first (see this file's "
                 "docstring)")
    steps_per_iter = SETTINGS["num_envs"] * SETTINGS["unroll_length"]
    t_run = time.perf_counter()
    loads = {"start": os.getloadavg()}

    print("Brax: starting worker, compiling, warm-up epoch ...", flush=True)
    t0 = time.perf_counter()
    brax = BraxWorker(args.brax_python, args.iters, args.repeats, args.brax_warmup_epochs)
    brax_startup_s = time.perf_counter() - t0
    w = brax.warmup[0]
    brax_warmup_s = [e["epoch_s"] for e in brax.warmup]
    if w["env_steps_per_training_step"] != steps_per_iter or w["epoch_env_steps"] != (
            args.iters * steps_per_iter):
        raise RuntimeError(f"Brax's epoch is not {args.iters} x {steps_per_iter} env steps: {w}")
    print(f"  warm-up epochs ({args.iters} steps each, compiling) "
          f"{', '.join(f'{t:.1f}' for t in brax_warmup_s)}s", flush=True)

    print("Ours: compiling, warm-up ...", flush=True)
    ours = Ours(args.iters)
    ours_warmup_s = ours.epoch()[0]
    print(f"  compile {ours.compile_s:.1f}s, warm-up {ours_warmup_s:.1f}s", flush=True)

    times = {"ours": [], "brax": []}
    cpu = {"ours": [], "brax": []}
    brax_cpu_mark = brax.warmup[-1]["process_cpu_s"]
    repeat_loads = []
    brax_losses = []
    for r in range(args.repeats):
        order = ("brax", "ours") if r % 2 == 0 else ("ours", "brax")
        load_before = _load()
        for side in order:
            if side == "ours":
                wall, cpu_s = ours.epoch()
                times["ours"].append(wall)
                cpu["ours"].append(cpu_s)
            else:
                e = brax.epoch()
                if e["epoch_env_steps"] != args.iters * steps_per_iter:
                    raise RuntimeError(f"unexpected Brax epoch: {e}")
                times["brax"].append(e["epoch_s"])
                cpu["brax"].append(e["process_cpu_s"] - brax_cpu_mark)
                brax_cpu_mark = e["process_cpu_s"]
                brax_losses.append(e.get("losses", {}))
        repeat_loads.append({"before": load_before, "after": _load()})
        print(f"  repeat {r}: ours {times['ours'][-1]:.2f}s, brax {times['brax'][-1]:.2f}s "
              f"({args.iters} iterations each), load {repeat_loads[-1]['after']:.2f}",
              flush=True)
    brax_done = brax.finish()
    loads["end"] = os.getloadavg()
    total_s = time.perf_counter() - t_run

    def side_summary(ts: list[float], cs: list[float]) -> dict:
        med = statistics.median(ts)
        return {"epoch_s": ts, "median_epoch_s": med, "min_epoch_s": min(ts),
                "max_epoch_s": max(ts), "median_s_per_iteration": med / args.iters,
                "env_steps_per_s": args.iters * steps_per_iter / med,
                "env_steps_per_s_best": args.iters * steps_per_iter / min(ts),
                "epoch_cpu_s": cs, "median_cpu_s_per_iteration": statistics.median(cs) / args.iters}

    res_ours = {**side_summary(times["ours"], cpu["ours"]), "compile_s": ours.compile_s,
                "warmup_epoch_s": ours_warmup_s, "versions": _versions(),
                "env_class": ours.env_class, "env_wrappers_inner_to_outer": ours.env_chain,
                "train_config": dataclasses.asdict(ours.cfg),
                "hparams": {k: float(v) for k, v in ours.hp._asdict().items()}}
    res_brax = {**side_summary(times["brax"], cpu["brax"]),
                "warmup_epochs_s_incl_compile": brax_warmup_s,
                "worker_start_to_end_of_warmup_s": brax_startup_s,
                "versions": w["versions"], "backend": w["jax_backend"],
                "devices": w["devices"], "env_class": w["env_class"],
                "train_kwargs": w["brax_train_kwargs"], "network_factory": w["network_factory"],
                "env_steps_per_training_step": w["env_steps_per_training_step"],
                "losses_per_epoch": brax_losses, "epochs_run": brax_done.get("epochs")}
    pair_ratios = [b / o for o, b in zip(times["ours"], times["brax"], strict=True)]
    ratio = res_ours["env_steps_per_s"] / res_brax["env_steps_per_s"]
    result = {
        "machine": machine(),
        "command": " ".join(["python"] + sys.argv),
        "settings": SETTINGS,
        "iterations_per_repeat": args.iters,
        "repeats": args.repeats,
        "env_steps_per_iteration": steps_per_iter,
        "load_average": {**loads, "per_repeat_1min": repeat_loads},
        "total_wall_s": total_s,
        "ours": res_ours,
        "brax": res_brax,
        "speed_ratio_ours_over_brax": ratio,
        "speed_ratio_per_repeat": pair_ratios,
        "speed_ratio_median_of_repeats": statistics.median(pair_ratios),
        "speed_ratio_best_repeats": res_ours["env_steps_per_s_best"]
        / res_brax["env_steps_per_s_best"],
        "cpu_time_ratio_brax_over_ours": res_brax["median_cpu_s_per_iteration"]
        / res_ours["median_cpu_s_per_iteration"],
        "differences": DIFFERENCES,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{SETTINGS['env_id']}, {SETTINGS['num_envs']} envs x {SETTINGS['unroll_length']} "
          f"steps per iteration, {args.repeats} interleaved repeats x {args.iters} iterations, "
          f"load average (1 min) {loads['start'][0]:.2f} at start, {loads['end'][0]:.2f} at "
          "end\n")
    print("| trainer | jax | env-steps/s (median) | s/iteration (median) | "
          "s/iteration (min-max) | CPU s/iteration (median) | compile + warm-up s |")
    print("|---|---|---|---|---|---|---|")
    for name, r, warm in (("ours (fused, plain PPO)", res_ours,
                           ours.compile_s + ours_warmup_s),
                          ("Brax ppo.train", res_brax, sum(brax_warmup_s))):
        print(f"| {name} | {r['versions']['jax']} | {r['env_steps_per_s']:.0f} | "
              f"{r['median_s_per_iteration']:.2f} | {r['min_epoch_s'] / args.iters:.2f}-"
              f"{r['max_epoch_s'] / args.iters:.2f} | {r['median_cpu_s_per_iteration']:.2f} | "
              f"{warm:.1f} |")
    print(f"\nours / Brax env-steps/s: {ratio:.2f} (from the medians), "
          f"{statistics.median(pair_ratios):.2f} (median of per-repeat ratios), "
          f"{result['speed_ratio_best_repeats']:.2f} (best repeats); Brax / ours CPU s per "
          f"iteration: {result['cpu_time_ratio_brax_over_ours']:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
