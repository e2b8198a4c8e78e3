"""Pixel tasks in the exploration benchmark (mimex_jax.bench.exploration).

Pixel configs train their members as one vmapped program (their worlds share one render
context) or, with ``--one-by-one``, one after another through one compiled single-run
program. The fast tests run both on the one-joint MJX scene of ``test_pixels.py`` (only the
renderer and a tiny agent compile): one by one, every member's metrics, final eval and seed
row equal those of the member run alone, stacked on a leading member axis as the vmapped
path stacks them; the vmapped program gives the same numbers to float tolerance; and the
whole command line (report, ``--compare``, ``--resume``) works on the stacked result. The
registered pixel tasks are checked without compiling them; a tiny run of the real
cart-pole pixel task is behind ``slow``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest

from mimex_jax import evaluate as _evaluate
from mimex_jax import loop
from mimex_jax import trainer as _trainer
from mimex_jax.bench import exploration as ex
from mimex_jax.trainer import HParams, TrainConfig, make_train

CFG = TrainConfig(
    # The env id passes validation; the env is the slider scene (``slider`` fixture).
    env_id="playground:CartpoleSwingupSparse", num_envs=2, rollout_len=4, epochs=1,
    minibatches=1, total_steps=2 * 4 * 2, episode_length=3, reward="none",
    observation="pixels", embedding="encoder", actor_hidden=(8,), critic_hidden=(8,),
    pixels=(("action_repeat", 1), ("camera", "front"), ("frame_stack", 2), ("height", 16),
            ("width", 16)),
)
HP = HParams(lr=3e-3)
REAL_MAKE_ENV = (_trainer.make_env, _evaluate.make_env)  # before any fixture patches them
# seed 1, and seed 0 again with another learning rate
MEMBERS = [(0, HP), (1, HP), (0, HP._replace(lr=1e-2))]
EVAL = 2


@pytest.fixture(scope="module")
def slider() -> Iterator[None]:
    """The trainer and the evaluator build the slider scene for any pixel config."""
    pytest.importorskip("warp")
    pytest.importorskip("mujoco")
    from test_pixels_checkpoint import slider_env

    from mimex_jax import evaluate, trainer

    state_env = trainer.make_env

    def make_env(cfg: TrainConfig, num_envs: int):
        return (slider_env if cfg.observation == "pixels" else state_env)(cfg, num_envs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "make_env", make_env)
        mp.setattr(evaluate, "make_env", make_env)
        yield


@pytest.fixture(scope="module")
def together(slider) -> tuple[dict, dict, float]:
    """The three members trained one by one by one ``train_members`` call (chunks of one
    iteration)."""
    return ex.train_members(CFG, MEMBERS, 1, EVAL, "t", has_success=False, sequential=True)


def _inst() -> ex.Instance:
    return ex.Instance(task="cartpole-swingup-sparse-pixels", label="t", cfg=CFG, hp=HP,
                       info={})


def test_members_train_one_by_one_exactly_as_alone(together, capsys) -> None:
    metrics, final, _ = together
    # a plain single run through the same compiled program, outside the benchmark
    runner = ex.member_runner(CFG)
    for i, member in enumerate(MEMBERS):
        m1, f1, _ = ex.train_members(CFG, [member], 1, EVAL, "alone", has_success=False,
                                     sequential=True)
        _, plain = loop.run(runner, member[1], jax.random.key(member[0]), chunk=1)
        assert set(m1) == set(metrics) == set(plain)
        for k in metrics:
            np.testing.assert_array_equal(metrics[k][i], m1[k][0], err_msg=k)
            np.testing.assert_array_equal(metrics[k][i], plain[k], err_msg=k)
        for k in final:
            np.testing.assert_array_equal(final[k][i], f1[k][0], err_msg=k)
        for has_success in (True, False):
            row = ex.seed_row(_inst(), CFG, metrics, final, i, has_success)
            assert row == ex.seed_row(_inst(), CFG, m1, f1, 0, has_success)
    # the initial states, stacked, are each member's own
    states = ex.init_members(CFG, MEMBERS, sequential=True)
    for i, (seed, hp) in enumerate(MEMBERS):
        alone = runner.init(jax.random.key(seed), hp)
        jax.tree.map(lambda a, b, i=i: np.testing.assert_array_equal(a[i], b),
                     states.params, alone.params)
    # the members are different runs: seeds and hparams reach the program
    for a, b in ((0, 1), (0, 2)):
        assert not np.array_equal(metrics["value_loss"][a], metrics["value_loss"][b])
    out = capsys.readouterr().out
    assert "[alone] member 1/1 it 2/2 steps/member 16 chunk" in out


def test_metrics_are_stacked_as_the_vmapped_path_stacks_them(together) -> None:
    metrics, final, _ = together
    n, its = len(MEMBERS), CFG.num_iterations
    # one update's metrics, traced; the loop stacks iterations, the members go in front
    init, update_step, _, _ = make_train(CFG)
    state = jax.eval_shape(init, jax.random.key(0), HP)
    _, one = jax.eval_shape(update_step, state, HP)
    assert set(metrics) == set(one)
    for k, v in one.items():
        assert metrics[k].shape == (n, its) + v.shape and metrics[k].dtype == v.dtype, k
    assert set(final) == {"greedy_success", "greedy_return", "sampled_success",
                          "sampled_return"}
    assert all(v.shape == (n,) for v in final.values())


@pytest.mark.slow
def test_vmapped_pixel_members_equal_one_by_one(together) -> None:
    """The default layout: the three pixel members as one vmapped program (6 worlds in one
    render context) give the one-by-one numbers (to float tolerance: the programs differ in
    shape, so XLA may round differently). Slow (16 s cold): the render's folding is checked
    in the default suite by tests/test_pixels_checkpoint.py's sweep test."""
    metrics, final, _ = together
    vm, vf, _ = ex.train_members(CFG, MEMBERS, 1, EVAL, "v", has_success=False)
    for a, b in ((metrics, vm), (final, vf)):
        assert set(a) == set(b)
        for k in a:
            assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.slow
def test_one_by_one_equals_the_vmapped_program_on_a_state_config() -> None:
    """Where both layouts run (a state config), members one by one give the vmapped
    program's stacked metrics and final evals (to float tolerance: the programs differ in
    shape, so XLA may round differently). Slow: four more programs compile (~40 s)."""
    cfg = ex.train_config("gymnax:DeepSea-bsuite", 2, 4, 2, env_kwargs=(("size", 4),),
                          epochs=1, minibatches=1, actor_hidden=(8,), critic_hidden=(8,))
    runs = [ex.train_members(cfg, MEMBERS, 1, EVAL, "s", sequential=seq)
            for seq in (True, False)]
    for a, b in zip(runs[0][:2], runs[1][:2], strict=True):
        assert set(a) == set(b)
        for k in a:
            assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_pixel_exploration_command_end_to_end(together, tmp_path: Path) -> None:
    """A pixel task through ``main``: report, --compare and --resume on stacked members."""
    def instances(args: argparse.Namespace) -> list[ex.Instance]:
        return [ex.Instance(task="toy-pixels", label="toy-pixels", cfg=CFG, hp=HP, info={})]

    ex.register_task(ex.TrainingEpisodesTask(
        "toy-pixels", "slider scene from pixels", instances,
        scores=(("reward_collected", "reward collected", 0),), curve="return",
        has_success=False, final_eval=True))
    out = tmp_path / "p.json"
    argv = ["--tasks", "toy-pixels", "--methods", "none", "--seeds", "2", "--chunk", "1",
            "--eval-episodes", str(EVAL), "--no-ablations", "--no-plot", "--one-by-one",
            "--out", str(out)]
    try:
        assert ex.main(argv) == 0
        first = out.read_text()
        assert ex.main(argv + ["--resume", "--compare", str(out)]) == 0
    finally:
        ex.unregister_task("toy-pixels")
    data = json.loads(first)
    (entry,) = data["results"]
    metrics, final, _ = together
    assert entry["members_in_program"] == 2 and entry["members_layout"] == "one_by_one"
    for i, row in enumerate(entry["seeds"]):  # the same members as in `together`
        assert row["seed"] == i
        assert row["final_return"] == float(final["greedy_return"][i])
        assert row["reward_collected"] == float(
            np.asarray(metrics["reward_ext"][i], np.float64).sum() * CFG.steps_per_iteration)
        assert row["episodes"] == int(metrics["episodes"][i].sum())
    md = out.with_suffix(".md").read_text()
    assert "## toy-pixels" in md and "toy-pixels: one compiled program per instance" in md


def _args(*argv: str) -> argparse.Namespace:
    return ex.build_parser().parse_args(list(argv))


def test_pixel_tasks_are_registered_opt_in_with_five_seeds() -> None:
    names = ("cartpole-swingup-sparse-pixels", "panda-open-cabinet-sparse-pixels")
    parser = ex.build_parser()
    assert not set(names) & set(parser.parse_args([]).tasks)   # opt-in
    text = parser.format_help().replace("\n", " ")
    for name in names:
        task = ex.TASKS[name]
        assert not task.default and task.seeds >= 5 and task.quick_seeds >= 5
        assert not task.final_eval and isinstance(task, ex.TrainingEpisodesTask)
        assert name in parser.parse_args(["--tasks", name]).tasks and name in text
        for quick in ((), ("--quick",)):
            (inst,) = task.instances(_args(*quick))
            assert inst.cfg.observation == "pixels"
            assert inst.cfg.embedding == "encoder"
            px = inst.cfg.pixel_config
            assert (px.height, px.width, px.frame_stack, px.encoder) == (64, 64, 3, "conv")
    # the cart-pole pixel task: the state task's PPO settings, from 64x64 pixels of `fixed`
    for quick in ((), ("--quick",)):
        (pix,) = ex.TASKS["cartpole-swingup-sparse-pixels"].instances(_args(*quick))
        (state,) = ex.TASKS["cartpole-swingup-sparse"].instances(_args(*quick))
        a, b = dataclasses.asdict(pix.cfg), dataclasses.asdict(state.cfg)
        assert {k for k in a if a[k] != b[k]} <= {"observation", "embedding", "pixels",
                                                  "normalize_obs", "num_envs", "rollout_len",
                                                  "total_steps"}
        assert pix.hp == state.hp
        assert (pix.cfg.pixel_config.camera, pix.cfg.pixel_config.action_repeat) == ("fixed", 2)
    (panda,) = ex.TASKS["panda-open-cabinet-sparse-pixels"].instances(_args())
    assert panda.cfg.env_id == "playground:PandaOpenCabinetSparse"
    assert panda.cfg.pixel_config.camera == "side"
    # --iterations sets the budget of both
    (inst,) = ex.TASKS["cartpole-swingup-sparse-pixels"].instances(_args("--iterations", "7"))
    assert inst.cfg.num_iterations == 7


def test_training_episode_scores() -> None:
    task = ex.TASKS["cartpole-swingup-sparse-pixels"]
    inst = _inst()        # 8 env steps per iteration
    episodes = np.array([[0, 2, 0, 4.0]])
    metrics = {"episodes": episodes, "episode_return": np.array([[0, 1, 0, 2.5]]),
               "reward_ext": np.array([[0, 0.25, 0, 0.5]])}
    s = task.metric_scores(inst, metrics, 0)
    assert s == {"reward_collected": 6.0, "late_iterations": 2, "late_episodes": 4,
                 "late_return": 2.5}
    assert task.seed_scores(inst, episodes[0], np.array([0, 2, 0, 1]))["late_success"] == 0.25
    none = task.metric_scores(inst, {**metrics, "episodes": np.array([[1, 0, 0, 0.0]])}, 0)
    assert none["late_return"] is None and none["late_episodes"] == 0
    assert task.seed_scores(inst, np.array([1, 0, 0, 0]), np.zeros(4))["late_success"] is None


@pytest.mark.slow
def test_cartpole_pixels_quick_end_to_end(tmp_path: Path, monkeypatch) -> None:
    """The real task, ``--quick``, two methods x two seeds (compiles for minutes here)."""
    pytest.importorskip("warp")
    pytest.importorskip("mujoco_playground")
    from mimex_jax import evaluate, trainer

    # the real envs, whether or not the module's slider fixture is active
    monkeypatch.setattr(trainer, "make_env", REAL_MAKE_ENV[0])
    monkeypatch.setattr(evaluate, "make_env", REAL_MAKE_ENV[1])
    out = tmp_path / "px.json"
    assert ex.main(["--tasks", "cartpole-swingup-sparse-pixels", "--quick", "--methods",
                    "none", "mimex", "--seeds", "2", "--no-ablations", "--no-plot", "--out",
                    str(out)]) == 0
    data = json.loads(out.read_text())
    assert [e["method"] for e in data["results"]] == ["none", "mimex"]
    for e in data["results"]:
        assert e["members_in_program"] == 2 and e["config"]["observation"] == "pixels"
        assert e["members_layout"] == "vmapped"
        assert e["budget"] == {"env_steps_per_seed": 256, "iterations": 2, "num_envs": 4,
                               "rollout_len": 32, "eval_episodes": 0}
        for s in e["seeds"]:
            assert s["final_return"] is None and s["reward_collected"] >= 0.0
            assert len(s["return_per_iteration"]) == 2
    md = out.with_suffix(".md").read_text()
    assert "one after another" not in md and "## cartpole-swingup-sparse-pixels" in md
