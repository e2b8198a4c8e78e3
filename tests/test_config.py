"""YAML run configs: composition, overrides, validation, round trip. Parsing only: no env is
built and nothing is compiled."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mimex_jax import config as C
from mimex_jax.config import ConfigError, RunConfig, RunOptions, dump_yaml, load_config, to_dict
from mimex_jax.envs import SUITES
from mimex_jax.rewards import MIMExConfig
from mimex_jax.trainer import HParams, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
ALL_YAML = sorted(CONFIGS.rglob("*.yaml"))
TASKS = sorted((CONFIGS / "tasks").glob("*.yaml"))
METHODS = sorted((CONFIGS / "methods").glob("*.yaml"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- the embedded default and the presets ------------------------------------------------


def test_embedded_default_equals_configs_default():
    assert C.default_config_text() == (CONFIGS / "default.yaml").read_text()
    assert load_config(None) == load_config(CONFIGS / "default.yaml")


def test_default_config_is_a_small_sparse_mimex_run():
    rc = load_config()
    assert rc.train.env_id == "gymnax:DeepSea-bsuite" and dict(rc.train.env_kwargs) == {
        "size": 10}
    assert rc.train.reward == "mimex" and rc.train.num_envs <= 128
    # Several seeds in one vmapped program, compared with the no-bonus baseline (issue 15).
    assert rc.run.seeds == (0, 1, 2, 3, 4) and rc.sweep is None and rc.run.compare_baseline


def test_expected_presets_exist():
    names = {p.relative_to(CONFIGS).as_posix() for p in ALL_YAML}
    expected = {"default.yaml", "ppo_paper.yaml", "sweeps/mask_ratio.yaml"}
    expected |= {f"methods/{m}.yaml" for m in ("none", "rnd", "icm", "mimex_t2", "mimex_t3",
                                                "mimex_t4", "mimex_t5", "mimex_t6",
                                                "mimex_t10")}
    expected |= {f"tasks/{t}.yaml" for t in (
        "reacher_sparse", "pusher_sparse", "deepsea", "mountaincar", "mountaincar_continuous",
        "cartpole_swingup_sparse", "acrobot_swingup_sparse", "ball_in_cup", "finger_turn_hard",
        "cartpole")}
    assert expected <= names


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_every_yaml_loads_and_validates(path):
    rc = load_config(path)
    assert isinstance(rc, RunConfig)


def test_every_task_method_combination_validates():
    for task in TASKS:
        for method in METHODS:
            rc = load_config([CONFIGS / "ppo_paper.yaml", task, method])
            assert rc.train.env_id.split(":")[0] in SUITES


def test_ppo_paper_equals_the_dataclass_defaults():
    rc = load_config(CONFIGS / "ppo_paper.yaml")
    d = TrainConfig()
    for f in ("num_envs", "rollout_len", "epochs", "minibatches", "actor_hidden",
              "critic_hidden", "activation", "lr_schedule"):
        assert getattr(rc.train, f) == getattr(d, f), f
    assert rc.hparams == HParams()


# The original repository's expl_cfg files (mimex-pixmc/configs/expl_cfg/expl_l{T}.yaml).
ORIGINAL_T_MASK = {2: 0.5, 3: 0.6, 4: 0.7, 5: 0.7, 6: 0.7, 10: 0.7}


@pytest.mark.parametrize("t", sorted(ORIGINAL_T_MASK))
def test_mimex_method_files_match_the_original(t):
    rc = load_config(CONFIGS / "methods" / f"mimex_t{t}.yaml")
    m = rc.mimex
    assert rc.train.reward == "mimex" and rc.train.seq_len == t
    assert rc.hparams.mask_ratio == ORIGINAL_T_MASK[t] == m["mask_ratio"]
    assert rc.hparams.k_expl == 0.05 and rc.hparams.anneal == 0.0
    assert (m["embed_dim"], m["depth"], m["num_heads"], m["decoder_embed_dim"],
            m["decoder_num_heads"], m["decoder_depth"]) == (128, 4, 4, 64, 2, 1)
    assert (m["use_cls"], m["norm_loss"], m["mask_all"], m["n_mask"], m["lr"]) == (
        True, False, False, 1, 1e-4)


def test_baseline_method_files():
    assert load_config(CONFIGS / "methods/rnd.yaml").train.seq_len == 1
    assert load_config(CONFIGS / "methods/icm.yaml").train.seq_len == 2
    none = load_config(CONFIGS / "methods/none.yaml")
    assert none.train.reward == "none" and none.hparams.k_expl == 0.0


def test_centered_bonus_modifier_keeps_the_bonus() -> None:
    rc = load_config([CONFIGS / "default.yaml", CONFIGS / "tasks/minigrid_doorkey.yaml",
                      CONFIGS / "methods/rnd.yaml", CONFIGS / "methods/centered_bonus.yaml"])
    assert rc.train.reward == "rnd" and rc.train.seq_len == 1
    assert rc.train.normalize_intrinsic and rc.train.center_intrinsic == "running"


def test_readme_documents_every_key():
    text = (CONFIGS / "README.md").read_text()
    keys = [f"train.{f.name}" for f in dataclasses.fields(TrainConfig)]
    keys += [f"hparams.{k}" for k in HParams._fields]
    keys += [f"run.{f.name}" for f in dataclasses.fields(RunOptions)]
    keys += [f"train.mimex.{f.name}" for f in dataclasses.fields(MIMExConfig)
             if f.name not in C.MIMEX_DERIVED]
    missing = [k for k in keys if f"`{k.split('.')[-1]}`" not in text]
    assert not missing, f"configs/README.md does not document {missing}"


# --- composition and overrides ---------------------------------------------------------------


def test_extends_deep_merges_in_order(tmp_path):
    write(tmp_path / "base/a.yaml", "train: {num_envs: 8, rollout_len: 4, mimex: {depth: 2}}\n"
          "hparams: {lr: 0.01}\n")
    write(tmp_path / "base/b.yaml", "train: {rollout_len: 8, mimex: {embed_dim: 32}}\n")
    child = write(tmp_path / "child.yaml", "extends: [base/a.yaml, base/b.yaml]\n"
                  "train: {total_steps: 640, env_kwargs: {size: 5}}\n")
    rc = load_config(child)
    assert (rc.train.num_envs, rc.train.rollout_len, rc.train.total_steps) == (8, 8, 640)
    assert rc.mimex == {"depth": 2, "embed_dim": 32, "mask_ratio": 0.7}
    assert rc.train.env_kwargs == (("size", 5),) and rc.hparams.lr == 0.01
    # a single string works too; the child overrides its parent
    one = write(tmp_path / "one.yaml", "extends: base/a.yaml\ntrain: {num_envs: 16}\n")
    assert load_config(one).train.num_envs == 16
    # several files given directly: later files win
    assert load_config([one, child]).train.num_envs == 8


def test_extends_errors(tmp_path):
    a = write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(a)
    missing = write(tmp_path / "m.yaml", "extends: nope.yaml\n")
    with pytest.raises(ConfigError, match=r"m\.yaml: 'extends'.*nope\.yaml"):
        load_config(missing)
    bad = write(tmp_path / "bad.yaml", "extends: 3\n")
    with pytest.raises(ConfigError, match="extends=3"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path / "y.yaml", "train: [\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path / "l.yaml", "- 1\n"))


def test_overrides():
    rc = load_config(None, ["train.num_envs=32", "hparams.lr=3e-4", "train.mimex.mask_ratio=0.5",
                            "run.seeds=3", "train.actor_hidden=[32, 32]",
                            "train.total_steps=1e6", "train.episode_length=null",
                            "run.log_backends=jsonl,csv", "train.env_kwargs.size=12"])
    assert rc.train.num_envs == 32 and rc.hparams.lr == 3e-4
    assert rc.mimex["mask_ratio"] == 0.5 and rc.run.seeds == (0, 1, 2)
    assert rc.train.actor_hidden == (32, 32) and rc.train.total_steps == 1_000_000
    assert rc.train.episode_length is None and rc.run.log_backends == ("jsonl", "csv")
    assert dict(rc.train.env_kwargs) == {"size": 12}
    assert load_config(None, ["run.seeds=[3, 7]"]).run.seeds == (3, 7)
    assert load_config(None, ["sweep.grid.k_expl=[0.01, 0.1]"]).sweep == {
        "grid": {"k_expl": [0.01, 0.1]}}


@pytest.mark.parametrize("text", ["train.num_envs", "=3", "train=3", "train..x=1"])
def test_malformed_overrides(text):
    with pytest.raises(ConfigError, match="override"):
        load_config(None, [text])


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("override, pattern", [
    ("train.num_env=3", r"unknown key train\.num_env \(did you mean 'num_envs'\?\); valid keys "
                        r"of train: \[.*'num_envs'"),
    ("hparams.learning_rate=1", r"unknown key hparams\.learning_rate.*'lr'"),
    ("run.seed=1", r"unknown key run\.seed.*'seeds'"),
    ("train.mimex.dept=2", r"unknown key train\.mimex\.dept.*'depth'"),
    ("sweep.grid.lrr=[1]", r"unknown key sweep\.grid\.lrr \(did you mean 'lr'\?\); valid keys of "
                           r"sweep\.grid: \[.*'lr'"),
    ("sweep.rand.n=1", r"unknown key sweep\.rand.*'random'"),
    ("model.x=1", r"unknown key model; valid keys of the top level"),
    ("train.mimex.seq_len=3", r"train\.mimex\.seq_len is set by the trainer"),
])
def test_unknown_keys_list_the_valid_ones(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, [override])


@pytest.mark.parametrize("override, pattern", [
    ("train.num_envs=abc", r"train\.num_envs='abc' has the wrong type; expected an integer"),
    ("train.num_envs=1.5", r"train\.num_envs=1\.5 has the wrong type; expected an integer"),
    ("train.num_envs=true", r"train\.num_envs=True has the wrong type; expected an integer"),
    ("hparams.lr=[1]", r"hparams\.lr=\[1\] has the wrong type; expected a number"),
    ("hparams.gamma=abc", r"hparams\.gamma='abc' has the wrong type; expected a number"),
    ("train.normalize_obs=1", r"train\.normalize_obs=1 has the wrong type; expected true or"),
    ("train.actor_hidden=64", r"train\.actor_hidden=64 has the wrong type; expected a list of "
                              "integers"),
    ("train.reward=3", r"train\.reward=3 has the wrong type; expected a string"),
    ("train.episode_length=abc", r"expected null or an integer"),
    ("train.mimex.depth=two", r"train\.mimex\.depth='two' has the wrong type"),
    ("train.mimex=3", r"train\.mimex=3 has the wrong type; expected a mapping"),
    ("train.env_kwargs.size={a: 1}", r"train\.env_kwargs\.size=.*nested mappings"),
    ("run.compare_baseline=maybe", r"run\.compare_baseline='maybe' has the wrong type"),
    ("run.seeds=abc", r"run\.seeds='abc' has the wrong type"),
    ("sweep.grid.lr=[abc]", r"sweep\.grid\.lr=\['abc'\] has the wrong type"),
])
def test_wrong_types_name_field_value_and_type(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, [override])


@pytest.mark.parametrize("override, pattern", [
    ("train.num_envs=0", r"train\.num_envs=0 is invalid; allowed: an integer >= 1"),
    ("train.minibatches=3", r"train\.minibatches=3 is invalid; allowed: a divisor"),
    ("train.reward=curiosity", r"train\.reward='curiosity' is invalid"),
    ("train.actor_hidden=[64, 0]", r"train\.actor_hidden=\[64, 0\] is invalid"),
    ("train.episode_length=0", r"train\.episode_length=0 is invalid"),
    ("train.activation=gelu", r"train\.activation='gelu' is invalid; allowed: \["),
    ("train.env_id=DeepSea", r"train\.env_id='DeepSea' is invalid; allowed: 'suite:name'"),
    ("train.env_id=atari:Pong", r"train\.env_id='atari:Pong' is invalid"),
    ("hparams.lr=-1", r"hparams\.lr=-1\.0 is invalid; allowed: > 0"),
    ("hparams.clip_eps=1.5", r"hparams\.clip_eps=1\.5 is invalid"),
    ("train.mimex.mask_ratio=1.5", r"train\.mimex\.mask_ratio=1\.5 is invalid"),
    ("train.mimex.num_heads=3", r"train\.mimex\.num_heads=3 is invalid; allowed: a divisor"),
    ("train.mimex.mask=nope", r"train\.mimex\.mask='nope' is unknown"),
    ("run.seeds=0", r"run\.seeds=0 is invalid"),
    ("run.seeds=[1, 1]", r"run\.seeds=\(1, 1\) is invalid"),
    ("run.chunk=0", r"run\.chunk=0 is invalid"),
    ("run.checkpoint_every=-1", r"run\.checkpoint_every=-1 is invalid"),
    ("run.log_backends=[jsonl, mlflow]", r"run\.log_backends=.* is invalid.*'wandb'"),
    ("run.best_mode=best", r"run\.best_mode='best' is invalid"),
    ("sweep.grid.mask_ratio=[0.5, 1.0]", r"sweep\.grid\.mask_ratio: hparams\.mask_ratio=1\.0 is"),
    ("sweep.random.n=0", r"sweep\.random\.n=0 is invalid"),
    ("sweep.random.ranges.lr=[0.1, 0.01]", r"sweep\.random\.ranges\.lr=\[0\.1, 0\.01\] is "),
    ("sweep.random.ranges.lr=[0, 0.01, log]", r"low > 0 for log"),
])
def test_out_of_range_values(override, pattern):
    extra = []  # the other half of a random sweep, valid
    if override.startswith("sweep.random.ranges"):
        extra = ["sweep.random.n=2"]
    elif override.startswith("sweep.random"):
        extra = ["sweep.random.ranges.lr=[0.001, 0.01]"]
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, [*extra, override])


def test_errors_name_the_file_the_value_came_from(tmp_path):
    base = write(tmp_path / "base.yaml", "train: {num_envs: abc}\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\nhparams: {lr: 0.1}\n")
    with pytest.raises(ConfigError, match=re.escape(str(base.resolve())) + ": train.num_envs"):
        load_config(child)
    with pytest.raises(ConfigError, match=r"override --set train\.num_envs=0: train\.num_envs=0"):
        load_config(child, ["train.num_envs=0"])
    bad = write(tmp_path / "bad.yaml", "train:\n  num_envz: 3\n")
    with pytest.raises(ConfigError, match=re.escape(str(bad.resolve())) + ": unknown key"):
        load_config(bad)
    rng = write(tmp_path / "rng.yaml", "hparams:\n  gamma: 2\n")
    with pytest.raises(ConfigError, match=re.escape(str(rng.resolve())) + r": hparams\.gamma="):
        load_config(rng)
    ms = write(tmp_path / "ms.yaml", "train:\n  mimex: {depth: 0}\n")
    with pytest.raises(ConfigError, match=re.escape(str(ms.resolve())) + r": train\.mimex\.depth"):
        load_config(ms)


def test_config_errors_are_value_errors():
    assert issubclass(ConfigError, ValueError)


def _slots(cfg: TrainConfig) -> int:
    return MIMExConfig(seq_len=cfg.seq_len, feature_dim=2, **dict(cfg.mimex)).num_slots


def test_mimex_slot_bound_follows_hparams_mask_ratio(tmp_path):
    # Left out, train.mimex.mask_ratio (the encoder's static slot bound) follows hparams.
    rc = load_config(CONFIGS / "methods/mimex_t5.yaml", ["hparams.mask_ratio=0.4"])
    assert rc.mimex["mask_ratio"] == 0.4
    # Given explicitly, it must leave room for the tokens hparams.mask_ratio keeps.
    with pytest.raises(ConfigError, match=r"hparams\.mask_ratio=0\.4 keeps up to 3 of "
                                          r"seq_len=5 tokens, but the encoder is sized for 1"):
        load_config(CONFIGS / "methods/mimex_t5.yaml",
                    ["hparams.mask_ratio=0.4", "train.mimex.mask_ratio=0.7"])
    ok = load_config(CONFIGS / "methods/mimex_t5.yaml",
                     ["hparams.mask_ratio=0.7", "train.mimex.mask_ratio=0.2"])
    assert ok.mimex["mask_ratio"] == 0.2
    # float32 rounding: at T=10 the ratio 0.9 keeps 0 tokens in float64 but 1 as the
    # trainer computes it (float32), so the encoder gets a slot for it.
    t10 = load_config(CONFIGS / "methods/mimex_t10.yaml", ["hparams.mask_ratio=0.9"])
    assert _slots(t10.train) == 1
    swept = C.make_sweep(load_config(CONFIGS / "methods/mimex_t10.yaml",
                                     ["sweep.grid.mask_ratio=[0.9, 0.95]",
                                      "hparams.mask_ratio=0.95"]))[0]
    assert dict(swept.mimex)["mask_ratio"] == 0.9 and _slots(swept) == 1
    # Other rewards keep train.mimex as given.
    assert load_config(CONFIGS / "methods/rnd.yaml").train.mimex == ()


def test_from_dict_and_empty_sections():
    rc = C.from_dict({"train": None, "hparams": {}, "run": None, "sweep": None})
    assert rc.train == dataclasses.replace(TrainConfig(), mimex=(("mask_ratio", 0.7),))
    assert rc.hparams == HParams() and rc.run == RunOptions() and rc.sweep is None
    with pytest.raises(ConfigError, match="extends"):
        C.from_dict({"extends": "x.yaml"})


# --- round trip ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [None, CONFIGS / "sweeps/mask_ratio.yaml",
                                  CONFIGS / "sweeps/random_lr_k_expl.yaml",
                                  CONFIGS / "methods/mimex_t10.yaml"])
def test_dump_then_load_is_identity(tmp_path, path):
    rc = load_config(path, ["train.env_kwargs.sizes=[1, [2, 3]]", "run.best_metric=x",
                            "train.episode_length=7"])
    written = dump_yaml(rc, tmp_path / "run")
    assert written == tmp_path / "run" / "config.yaml" or written.name == "run"
    again = load_config(written)
    assert again == rc
    assert to_dict(again) == to_dict(rc)
    assert dict(again.train.env_kwargs)["sizes"] == (1, (2, 3))


def test_dump_into_a_directory(tmp_path):
    rc = load_config()
    path = dump_yaml(rc, tmp_path)
    assert path == tmp_path / "config.yaml"
    text = path.read_text()
    assert text.startswith("# Fully resolved") and "extends" not in text
    assert load_config(path) == rc
    d = to_dict(rc)
    assert set(d) == {"train", "hparams", "run"}
    assert d["train"]["actor_hidden"] == [64, 64] and d["run"]["seeds"] == [0, 1, 2, 3, 4]


# --- sweeps ----------------------------------------------------------------------------------


def test_make_sweep_grid_and_random():
    rc = load_config(CONFIGS / "sweeps/mask_ratio.yaml")
    cfg, hps, labels = C.make_sweep(rc)
    assert labels == [{"mask_ratio": r} for r in (0.2, 0.4, 0.6, 0.8)]
    assert hps.mask_ratio.shape == (4,) and float(hps.lr[0]) == pytest.approx(rc.hparams.lr)
    assert dict(cfg.mimex)["mask_ratio"] == 0.2  # encoder sized for the most kept tokens
    rnd = load_config(CONFIGS / "sweeps/random_lr_k_expl.yaml")
    _, hps, labels = C.make_sweep(rnd)
    assert len(labels) == 8 and all(1e-4 <= lab["lr"] <= 3e-3 for lab in labels)
    _, hps, labels = C.make_sweep(load_config())
    assert labels == [{}] and hps.lr.shape == (1,)


def test_sweep_needs_exactly_one_kind():
    with pytest.raises(ConfigError, match="exactly one of 'grid' or 'random'"):
        load_config(CONFIGS / "sweeps/mask_ratio.yaml",
                    ["sweep.random.n=2", "sweep.random.ranges.lr=[0.001, 0.01]"])
    with pytest.raises(ConfigError, match=r"sweep\.random\.n \(the number .*\) is required"):
        load_config(None, ["sweep.random.ranges.lr=[0.001, 0.01]"])
    # a child can clear an inherited sweep
    assert load_config(CONFIGS / "sweeps/mask_ratio.yaml", ["sweep.grid=null"]).sweep is None


# --- the pydantic layer (mimex_jax.config_schema) ---------------------------------------------


def test_pydantic_errors_name_key_value_allowed_and_source(tmp_path):
    f = write(tmp_path / "run.yaml", "run:\n  chunk: 0\n  keep_lats: 2\n  eval_episodes: many\n"
                                     "  best_mode: best\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    src = str(f.resolve())
    valid = sorted(f.name for f in dataclasses.fields(RunOptions))
    # every error of the schema at once (unknown keys first), each with its file
    assert str(err.value).splitlines() == [
        f"{src}: unknown key run.keep_lats (did you mean 'keep_last'?); valid keys of run: {valid}",
        f"{src}: run.chunk=0 is invalid; allowed: an integer >= 1",
        f"{src}: run.best_mode='best' is invalid; allowed: 'max' or 'min'",
        f"{src}: run.eval_episodes='many' has the wrong type; expected an integer",
    ]


def test_each_error_names_its_own_source(tmp_path):
    base = write(tmp_path / "base.yaml", "train: {num_envs: 1.5, mimex: {depht: 2}}\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\nhparams: {gamma: 0.9}\n")
    with pytest.raises(ConfigError) as err:
        load_config(child, ["hparams.gamma=high", "sweep.grid.lr=[]"])
    assert str(err.value).splitlines() == [
        f"{base.resolve()}: unknown key train.mimex.depht (did you mean 'depth'?); valid keys of "
        f"train.mimex: {sorted(C.schema.VALID_KEYS['train.mimex'])}",
        f"{base.resolve()}: train.num_envs=1.5 has the wrong type; expected an integer",
        "override --set hparams.gamma=high: hparams.gamma='high' has the wrong type; expected a "
        "number",
        "override --set sweep.grid.lr=[]: sweep.grid.lr=[] is invalid; allowed: a non-empty list "
        "of numbers",
    ]


def test_yaml_strings_numpy_and_jax_integers_are_read_as_numbers():
    import jax.numpy as jnp
    import numpy as np

    rc = C.from_dict({"train": {"num_envs": np.int64(8), "rollout_len": jnp.asarray(4),
                                "total_steps": "1e3", "actor_hidden": [np.uint8(8)],
                                "mimex": {"depth": np.int32(2), "lr": "3e-4"}},
                      "hparams": {"lr": np.float32(0.5), "k_expl": 1},
                      "run": {"seeds": np.int64(2), "chunk": 3.0}})
    assert (rc.train.num_envs, rc.train.rollout_len, rc.train.total_steps) == (8, 4, 1000)
    assert all(type(v) is int for v in (rc.train.num_envs, rc.train.rollout_len,
                                        rc.train.actor_hidden[0], rc.run.chunk))
    assert rc.mimex["depth"] == 2 and rc.mimex["lr"] == 3e-4 and rc.run.seeds == (0, 1)
    assert type(rc.hparams.k_expl) is float and rc.hparams.lr == 0.5
    for bad in (np.bool_(True), True, 2.5, "2.5", np.float64(2.0) + 0.5):
        with pytest.raises(ConfigError, match=r"train\.num_envs=.* has the wrong type"):
            C.from_dict({"train": {"num_envs": bad}})


def test_run_options_validate_when_constructed():
    assert RunOptions(seeds=3, log_backends="jsonl, csv") == RunOptions(
        seeds=(0, 1, 2), log_backends=("jsonl", "csv"))
    with pytest.raises(ValueError, match="chunk"):
        RunOptions(chunk=0)
    with pytest.raises(ValueError, match=r"run\.devices=2 is invalid"):
        RunOptions(mesh={"sweep": 1, "data": 1}, devices=2)


def test_section_schema_follows_the_dataclass():
    from pydantic import ValidationError

    from mimex_jax import config_schema as S

    @dataclasses.dataclass(frozen=True)
    class Toy:
        width: int = 4
        rate: float = 0.1
        on: bool = False
        name: str = "a"
        limit: int | None = None
        sizes: tuple[int, ...] = ()

    model = S.section_model(Toy, "toy")
    assert S.settings(model, {"width": "8", "sizes": [1, 2], "limit": None}) == {
        "width": 8, "sizes": (1, 2), "limit": None}
    with pytest.raises(ValidationError) as err:
        S.settings(model, {"width": 1.5, "rate": "fast", "on": "yes", "name": 3, "limit": "x",
                           "sizes": [1, "b"], "widht": 2})
    assert [m for _, m in S.issues(err.value, ("toy",))] == [
        "unknown key toy.widht (did you mean 'width'?); valid keys of toy: "
        "['limit', 'name', 'on', 'rate', 'sizes', 'width']",
        "toy.width=1.5 has the wrong type; expected an integer",
        "toy.rate='fast' has the wrong type; expected a number",
        "toy.on='yes' has the wrong type; expected true or false",
        "toy.name=3 has the wrong type; expected a string",
        "toy.limit='x' has the wrong type; expected null or an integer",
        "toy.sizes=[1, 'b'] has the wrong type; expected a list of integers",
    ]
