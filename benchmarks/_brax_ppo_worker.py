"""Worker of ``benchmarks/brax_ppo.py``: Brax's own PPO trainer, timed one training epoch at a time.

Not meant to be run by hand: ``brax_ppo.py`` starts it under ``.venv-brax/bin/python`` (Brax's
trainer calls ``jax.device_put_replicated``, which JAX 0.10 removed) and talks to it over pipes.

The environment is ``mimex_jax.envs.sparse.SparseReacher`` itself (the class behind
``brax:reacher_sparse``, a ``brax.envs.Env``), handed to ``brax.training.agents.ppo.train.train``
unwrapped, so Brax adds its own training wrappers (vmap, episode limit, auto-reset).

How the time is taken: ``train`` runs ``num_evals - 1`` epochs of ``iters`` training steps each
(one training step = one rollout of ``num_envs`` x ``unroll_length`` env steps plus its PPO
update), and after every epoch it calls ``progress_fn`` with ``training/walltime``, Brax's own
running sum of the wall-clock time spent inside the (blocked) epochs only. With
``run_evals=False`` no evaluation runs at all. The epoch time is the difference of two
consecutive walltimes. The first ``--warmup-epochs`` (default 2) epochs are warm-up: Brax's
pmapped epoch compiles twice, once for the training state placed by
``jax.device_put_replicated`` and again for the state its own first epoch returns (different
input shardings; seen with ``JAX_LOG_COMPILES=1``: about 10 s each here).

Protocol: after each epoch the worker writes one line ``BRAX_PPO <json>`` to stdout; from the
last warm-up epoch on it then waits for a line on stdin before it starts the next epoch, so that
the parent can time its own trainer in between (while this process sits idle). A final
``BRAX_PPO`` line with ``"done": true`` follows the end of ``train``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from importlib import metadata


def _emit(payload: dict) -> None:
    sys.stdout.write("BRAX_PPO " + json.dumps(payload) + "\n")
    sys.stdout.flush()


def _versions() -> dict:
    out = {}
    for name in ("jax", "jaxlib", "brax", "flax", "optax", "mujoco", "numpy", "mimex-jax"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def main() -> None:
    p = argparse.ArgumentParser(description="Brax PPO timing worker (see module docstring)")
    p.add_argument("--settings", required=True, help="JSON object of shared settings")
    p.add_argument("--iters", type=int, required=True, help="training steps per epoch")
    p.add_argument("--epochs", type=int, required=True, help="timed epochs (after warm-up)")
    p.add_argument("--warmup-epochs", type=int, default=2)
    args = p.parse_args()
    s = json.loads(args.settings)

    t_start = time.perf_counter()
    import jax
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo
    from flax import linen

    from mimex_jax.envs.sparse import SparseReacher

    env = SparseReacher(backend=s["backend"])
    steps_per_train_step = s["batch_size"] * s["num_minibatches"] * s["unroll_length"]
    if steps_per_train_step != s["num_envs"] * s["unroll_length"]:
        raise ValueError("batch_size * num_minibatches must equal num_envs (one unroll per step)")
    n_warmup = args.warmup_epochs
    if n_warmup < 1:
        raise ValueError("--warmup-epochs must be >= 1 (the first epoch compiles)")
    n_epochs = n_warmup + args.epochs
    activations = {"selu": linen.selu, "swish": linen.swish, "tanh": linen.tanh}
    network_factory = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=tuple(s["hidden"]),
        value_hidden_layer_sizes=tuple(s["hidden"]),
        activation=activations[s["activation"]],
        distribution_type=s["distribution_type"],
        noise_std_type=s["noise_std_type"],
        init_noise_std=s["init_noise_std"],
    )
    kwargs = dict(
        num_timesteps=n_epochs * args.iters * steps_per_train_step,
        num_envs=s["num_envs"],
        episode_length=s["episode_length"],
        action_repeat=1,
        learning_rate=s["lr"],
        entropy_cost=s["entropy_coef"],
        discounting=s["gamma"],
        unroll_length=s["unroll_length"],
        batch_size=s["batch_size"],
        num_minibatches=s["num_minibatches"],
        num_updates_per_batch=s["num_updates_per_batch"],
        normalize_observations=False,
        reward_scaling=1.0,
        clipping_epsilon=s["clip_eps"],
        clipping_epsilon_value=s["clip_eps"],
        gae_lambda=s["lam"],
        max_grad_norm=s["max_grad_norm"],
        normalize_advantage=True,
        vf_loss_coefficient=s["brax_vf_loss_coefficient"],
        bootstrap_on_timeout=False,
        seed=s["seed"],
        num_evals=n_epochs + 1,  # n_epochs epochs; no eval runs (run_evals=False)
        num_eval_envs=16,
        run_evals=False,
    )

    state = {"last_walltime": 0.0, "last_step": 0, "epoch": 0}

    def progress(step: int, metrics: dict) -> None:
        walltime = float(metrics["training/walltime"])
        epoch_s = walltime - state["last_walltime"]
        payload = {
            "epoch": state["epoch"],
            "warmup": state["epoch"] < n_warmup,
            "env_steps": int(step),
            "epoch_env_steps": int(step) - state["last_step"],
            "epoch_s": epoch_s,
            "brax_sps": float(metrics["training/sps"]),
            "since_start_s": time.perf_counter() - t_start,
            # CPU seconds of this process (all threads) so far; it idles between epochs.
            "process_cpu_s": time.process_time(),
        }
        if state["epoch"] == 0:
            payload.update(
                versions=_versions(),
                jax_backend=jax.default_backend(),
                devices=[str(d) for d in jax.devices()],
                env_class=f"{type(env).__module__}.{type(env).__qualname__}",
                brax_train_kwargs=dict(kwargs),
                network_factory={k: (v.__name__ if callable(v) else v)
                                 for k, v in network_factory.keywords.items()},
                env_steps_per_training_step=steps_per_train_step,
            )
        loss_keys = ("training/policy_loss", "training/v_loss", "training/total_loss")
        payload["losses"] = {k: float(metrics[k]) for k in loss_keys if k in metrics}
        wait = state["epoch"] >= n_warmup - 1
        state.update(last_walltime=walltime, last_step=int(step), epoch=state["epoch"] + 1)
        _emit(payload)
        if wait and sys.stdin.readline() == "":  # parent went away
            raise SystemExit(1)

    ppo.train(env, network_factory=network_factory, progress_fn=progress, **kwargs)
    _emit({"done": True, "epochs": state["epoch"]})


if __name__ == "__main__":
    main()
