"""Exploration benchmark: does an intrinsic reward find sparse rewards that PPO alone misses?

    mimex-jax bench exploration                  # full suite (wall time in BENCHMARKS.md)
    mimex-jax bench exploration --quick          # default tasks, small budgets (see BENCHMARKS.md)
    mimex-jax bench exploration --tasks deepsea --methods none mimex --no-ablations
    mimex-jax bench exploration --tasks cartpole-swingup-sparse-pixels --no-ablations  # ~1 h
    python benchmarks/exploration.py ...         # the same entry point

For every task instance and method, the task's seeds train as ONE vmapped program
(:func:`mimex_jax.loop.make_runner` with ``sweep=True``) with the same PPO settings and
the same environment-step budget; pixel tasks too (every member's worlds go through one
MuJoCo Warp render context, :mod:`mimex_jax.envs.pixels`). ``--one-by-one`` trains them
instead one after another through one compiled single-run program per instance and method
(one member's memory at a time), each exactly as it would alone, their metrics stacked as
the vmapped program stacks them
(:func:`~mimex_jax.bench.exploration.runner.train_members`). Seeds per task are set on the
task (``Task.seeds``, ``Task.quick_seeds``): 10 for DeepSea and MiniGrid, whose runs cost
seconds, 5 for the others; ``--seeds N`` overrides them all. Methods differ only in the
intrinsic reward and its weight ``k_expl``:

- ``none``: PPO on the extrinsic reward only;
- ``rnd``, ``icm``: the original's RND and ICM (:mod:`mimex_jax.rewards`);
- ``mimex``: MIMEx with the paper's defaults (T=5, uniform token masks at ratio 0.7,
  encoder 128 wide / depth 4 / 4 heads, decoder 64 / depth 1 / 2 heads, cls token,
  reward-model Adam lr 1e-4);
- ``mimex-lr1e-3`` (not in the default set): the same with the reward-model lr at 1e-3;
- ``rnd-centered``, ``icm-centered``, ``mimex-centered`` (not in the default set): the same
  bonuses minus their running mean before the division (``center_intrinsic``), so that a
  bonus is zero-mean and does not pay the policy for long episodes (on MiniGrid DoorKey the
  plain normalised bonuses do, see BENCHMARKS.md).

Every bonus is divided by its running std (``normalize_intrinsic``) so that one
``k_expl`` per task serves every method; ``k_expl`` was set once per task, not tuned per
method. Rewards models see the raw observation (``embedding="obs"``; the pixel tasks: the
detached features of the policy's conv encoder).

Tasks (``TASKS``) and what is scored per seed:

- ``deepsea`` (gymnax ``DeepSea-bsuite``, deterministic, sizes 10 to 30 step 4): an N x N
  grid; the treasure (+1) needs N "right" moves in a row and every "right" costs 0.01 / N,
  so a random policy finds it with probability 2^-N per episode and PPO alone learns to go
  left. Per size: episodes until the first treasure, and whether the size is *solved* by
  bsuite's ``deep_sea`` rule as implemented here: an episode is bad when it misses the
  treasure (in the deterministic env that is exactly leaving the diagonal), and a size is
  solved at the first iteration where the running fraction of bad episodes
  ``total_bad / total_episodes`` is below 0.8, if that happens within
  ``min(10_000, 2^N + 100, budget)`` episodes. Episodes are counted over all parallel envs
  of a seed, at iteration resolution (each env plays exactly one episode per iteration).
  Score = the largest size solved (0 when none is). Which action means "right" is drawn by
  gymnax once from ``jax.random.key(0)``, so all seeds share one action map.
- ``mountaincar`` / ``mountaincar-continuous`` (gymnax ``MountainCar-v0`` /
  ``MountainCarContinuous-v0``): success = the car reaches the flag before the time limit.
  Scores: the final policy's success rate over fresh episodes, and env steps to the first
  successful training episode (never reached counts as the budget: a censored value, the
  ``reached`` column says how many seeds got there).
- ``reacher-sparse`` (``brax:reacher_sparse``, reward 1 inside a 0.005 radius of the
  target, 50-step episodes, :mod:`mimex_jax.envs.sparse`): the final policy's success rate.
- ``cartpole-swingup-sparse`` (MuJoCo Playground ``CartpoleSwingupSparse``, ``impl="jax"``,
  1000-step episodes, reward 1 per step with the pole upright and the cart centred): the
  final policy's evaluation return.
- ``minigrid-doorkey`` (xminigrid ``DoorKey-5x5``): key, locked door, goal; scored like
  MountainCar.
- ``minigrid-doorkey-8x8``, ``minigrid-keycorridor`` and ``minigrid-multiroom`` (opt-in;
  xminigrid ``DoorKey-8x8``, and ``KeyCorridorS3R3`` and ``MultiRoom-N4-S5`` of
  :mod:`mimex_jax.envs.minigrid_tasks`, which xminigrid lacks): the intrinsic-reward
  papers' MiniGrid testbed, 64 envs x 32 steps x 128 iterations (262k env steps per seed),
  10 seeds, scored like MountainCar.
- ``craftax-classic`` / ``craftax`` (``Craftax-Classic-Symbolic-v1`` / ``Craftax-Symbolic-v1``,
  opt-in: ``--tasks craftax-classic``; compiling the env alone takes minutes here): no
  success (``n/a``); a seed scores the training episodes that finished in the last 25% of
  its iterations: return, return as a % of the maximum (22 / 226, the published metric) and
  % of achievements unlocked; no final eval. The report puts the published Craftax scores
  (:mod:`mimex_jax.bench.published`) beside ours, each labelled with its env-step budget.
- ``cartpole-swingup-sparse-pixels`` (opt-in): the cart-pole task above from pixels: 64x64
  RGB of the ``fixed`` camera rendered in the step (:mod:`mimex_jax.envs.pixels`), 3
  stacked frames, action repeat 2 (500-step episodes), DrQ-v2's conv encoder learned
  through PPO, bonuses on its detached features (``embedding="encoder"``), otherwise the
  state task's PPO settings. No final eval (a rendered eval episode costs more than
  training here); a seed scores its training: extrinsic reward collected, the return of the
  episodes that finished in the last half of the iterations, env steps to the first
  reward. Budget per seed: 4 envs x 32 steps x 64 iterations = 8,192 env steps, sized from
  a measured ~60 env steps/s (how: ``tasks._cartpole_pixels``) so that none / RND / ICM /
  MIMEx x 5 seeds take about an hour on the 2-core CPU (far below what learning this task
  takes: a CPU-sized comparison, not a learning result); ``--quick``: 2 iterations. GPU
  budget (not yet run on a GPU; 2M env steps per seed)::

      mimex-jax bench exploration --tasks cartpole-swingup-sparse-pixels --no-ablations \\
          --num-envs 256 --iterations 250 --chunk 25

- ``panda-open-cabinet-sparse-pixels`` (opt-in): Playground ``PandaOpenCabinetSparse``
  (:mod:`mimex_jax.envs.manipulation`: reward 1 while the drawer handle is within 0.05 m of
  its target, 150-step episodes) from 64x64 RGB of the scene's ``side`` camera, 3 stacked
  frames, no action repeat, scored like the pixel cart-pole plus the late success rate
  (the headline). Needs MuJoCo Menagerie's Panda model. Picked over ``PandaPickCubeSparse``
  because a random policy succeeds now and then (1 of 16 episodes in BENCHMARKS.md), so
  exploration can make a difference; pick-cube's random policy never came within 0.3 m.
  Its default is a GPU budget: 1024 envs x 32 steps x 100 iterations = 3.3M env steps per
  seed (``mimex-jax bench exploration --tasks panda-open-cabinet-sparse-pixels
  --no-ablations``; not yet run on a GPU). On this CPU, before mimex-jax compiled MJX
  programs with XLA:CPU's older fusion emitters (:mod:`mimex_jax.xla`), the Panda physics
  ran at about 6 env steps/s with one env, and ``--num-envs 1 --iterations 32 --chunk 8``
  (1,024 env steps, about 7 episodes, per seed) took an hour (BENCHMARKS.md). Now the
  whole pixel training step runs at about 49 env steps/s with 4 envs (``--num-envs 4
  --iterations 16``: 2,048 env steps per seed, about 20 minutes for 4 methods x 5 seeds),
  so the CPU's hour is about ``--num-envs 4 --iterations 60`` (7,680 env steps per seed;
  2,301 s for 4 methods x 5 seeds on one core, no method distinguished: BENCHMARKS.md).
  ``--quick`` (2 envs x 8 steps x 2 iterations) is a smoke run.

``--num-envs N`` sets the envs per run of the pixel tasks (the other tasks keep theirs).

Final policies are evaluated on ``--eval-episodes`` fresh episodes per seed, acting with
the mode of the policy (``greedy``) and, reported beside it, sampling (``sampled``).

Aggregates: interquartile mean over seeds with a 95% percentile-bootstrap CI
(:mod:`mimex_jax.bench.stats`), and per task rliable's probability of improvement
P(MIMEx > baseline) for none / RND / ICM on the headline score, with its stratified
bootstrap CI. Learning curves (mean over seeds, band = min..max) are one
PNG per task; raw per-seed results, the budget, seeds, versions and the command are in
the JSON.

Ablations (``ABLATIONS``): from MIMEx's paper defaults, one factor at a time, on DeepSea
size 12 and MountainCarContinuous: mask ratio {0.3, 0.5, 0.7, 0.9} and k_expl
{0.01, 0.05, 0.5, task default} (hyperparameters: one vmapped program, members = values x
seeds), sequence length T {2, 3, 5, 10}, mask distribution {uniform, last token, fully
masked}, n_mask {1, 5} and the reward-model lr {1e-4, 1e-3} (these change shapes or the
program: one program per value). A swept mask ratio is a traced value, so that program
encodes the largest kept-token count for every member (same results, more work).

Runs are deterministic: rerunning a command with the same seeds reproduces its numbers,
and ``--compare JSON`` checks that against a stored result (settings fields added to
``TrainConfig`` / ``HParams`` after that file was written are read as their defaults, and
named). The JSON records the git commit it was produced at, is rewritten after every run,
and ``--resume`` skips runs already in it.

Package layout:

- :mod:`~mimex_jax.bench.exploration.tasks`: :class:`Task`, :class:`Instance`, the
  registry :data:`TASKS` (:func:`register_task`), the built-in tasks and their scoring
  hooks (:class:`DeepSeaTask`);
- :mod:`~mimex_jax.bench.exploration.methods`: :data:`METHODS`, the ablation factors
  :data:`ABLATIONS` and the programs they run;
- :mod:`~mimex_jax.bench.exploration.runner`: vmapped (or, for pixels, one-by-one)
  training, per-seed rows, the result JSON and ``--compare``;
- :mod:`~mimex_jax.bench.exploration.report` and :mod:`~mimex_jax.bench.exploration.plots`:
  the Markdown tables and PNGs;
- :mod:`~mimex_jax.bench.exploration.cli`: the command line (:func:`main`).

Adding a task (e.g. from an env adapter's module)::

    from mimex_jax.bench import exploration as ex

    def instances(args):                       # args: the parsed command line
        its = args.iterations or (6 if args.quick else 50)
        return [ex.Instance(task="my-task", label="my-task",
                            cfg=ex.train_config("gymnax:MyEnv-v0", 16, 128, its),
                            hp=ex.ppo_hparams(), info={})]

    ex.register_task(ex.Task(
        "my-task", "gymnax MyEnv-v0 (what success means)", instances,
        scores=(("final_success", "final success rate", 2),
                ("steps_to_first_success", "env steps to 1st success", 0))))

It then appears in ``--tasks`` (and runs by default) in any process that imported that
module before :func:`main` built its parser. Scores are keys of a seed's row
(:func:`~mimex_jax.bench.exploration.runner.seed_row`): ``final_success``, ``final_return``,
``steps_to_first_success``, ``episodes_to_first_success``, ... Success comes from the env
(``metrics["success"]``); ``Task.has_success`` (default ``None``: ask the env) decides
whether it exists: without it every success-based number of a seed is ``None`` and every
table shows ``n/a``, never 0 (such a task plots ``curve="return"``). A task with its own
rule subclasses :class:`Task` and overrides its hooks: ``seed_scores`` (extra per-seed
fields), ``method_scores`` (per-seed table scores over a method's instances),
``budget_text`` and ``extra_tables`` (:class:`DeepSeaTask` is the example); ``ablation``
names the instance the MIMEx ablations may run on (``--ablation-tasks``).
"""

from mimex_jax.bench.exploration.cli import build_parser, default_out, main
from mimex_jax.bench.exploration.methods import (
    ABLATIONS,
    DEFAULT_METHODS,
    METHODS,
    Factor,
    Method,
    ablation_programs,
    effective_setting,
    method_config,
    with_mimex,
)
from mimex_jax.bench.exploration.plots import plot_ablations, plot_curves
from mimex_jax.bench.exploration.report import (
    ablation_table,
    improvement_table,
    task_table,
    write_reports,
)
from mimex_jax.bench.exploration.runner import (
    SUCCESS_FIELDS,
    compare,
    config_defaults,
    dumps,
    fill_defaults,
    init_members,
    member_eval,
    member_runner,
    run_entry,
    run_key,
    seed_row,
    success_defined,
    train_members,
)
from mimex_jax.bench.exploration.tasks import (
    ABLATION_TASKS,
    NA,
    TASKS,
    DeepSeaTask,
    Instance,
    Task,
    TrainingEpisodesTask,
    ablation_instances,
    ablation_task_names,
    bsuite_deep_sea_solve,
    deepsea_instance,
    deepsea_size_table,
    pixel_settings,
    ppo_hparams,
    register_task,
    train_config,
    unregister_task,
)

__all__ = [
    "ABLATIONS", "ABLATION_TASKS", "DEFAULT_METHODS", "METHODS", "NA", "SUCCESS_FIELDS", "TASKS",
    "DeepSeaTask", "Factor", "Instance", "Method", "Task", "TrainingEpisodesTask",
    "ablation_instances", "ablation_programs", "ablation_table", "ablation_task_names",
    "bsuite_deep_sea_solve",
    "build_parser", "compare", "config_defaults", "deepsea_instance", "deepsea_size_table",
    "default_out", "dumps", "effective_setting", "fill_defaults", "improvement_table",
    "init_members", "main", "member_eval", "member_runner", "method_config",
    "pixel_settings", "plot_ablations", "plot_curves", "ppo_hparams",
    "register_task", "run_entry", "run_key", "seed_row", "success_defined", "task_table",
    "train_config", "train_members", "unregister_task", "with_mimex", "write_reports",
]
