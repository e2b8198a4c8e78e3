"""YAML run configs: load, compose, override, validate and write back.

A run config file has four sections (all optional)::

    extends: [../ppo_paper.yaml, tasks/deepsea.yaml]   # parents, merged first
    train:   {...}   # TrainConfig fields (static: shapes and program structure)
    hparams: {...}   # HParams fields (dynamic scalars, vmappable over a sweep)
    run:     {...}   # RunOptions (host side: seeds, chunking, checkpoints, logging)
    sweep:   {grid: {name: [values]}} | {random: {n: N, seed: 0, ranges: {name: [lo, hi, scale]}}}

``load_config(path, overrides)`` reads a file (or the embedded default when ``path`` is
None), merges its ``extends`` parents (deep merge of mappings; the child wins), applies
``--set section.key=value`` overrides and validates everything *before* anything is
compiled or any environment is built: unknown keys, wrong types and out-of-range values
raise :class:`ConfigError` (a ``ValueError``) naming the key, the value, what is allowed
and the file or override the value came from. Keys left out take the dataclass defaults
(the paper's PPO settings, ``TrainConfig`` / ``HParams`` / ``MIMExConfig``).

Validation is in two layers. pydantic (:mod:`mimex_jax.config_schema`) checks keys, types
and the ranges of ``run`` and ``sweep``; the runtime dataclasses then check their own rules
as they are built, and this module adds what is specific to mimex-jax: where each value came
from, MIMEx's encoder slot sizing, the bonus and env registries.

``dump_yaml`` writes the fully resolved config (no ``extends``, every key explicit) into a
run directory; loading that file gives back an equal :class:`RunConfig`.

The embedded default (``mimex_jax/default_config.yaml``, shipped in the wheel) is kept
identical to ``configs/default.yaml`` (a test checks it).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.resources
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from annotated_types import Ge, MinLen
from pydantic import AfterValidator, BeforeValidator, ConfigDict, ValidationError, create_model
from pydantic.dataclasses import dataclass as pydantic_dataclass

from mimex_jax import config_schema as schema
from mimex_jax.agents.drqv2.config import DrQV2Config
from mimex_jax.agents.ppo import networks
from mimex_jax.config_schema import Bool, Int, Str, explained, invalid
from mimex_jax.envs import SUITES
from mimex_jax.rewards import MIMExConfig, registry
from mimex_jax.rewards.mimex import slots_needed
from mimex_jax.trainer import (
    HParams,
    TrainConfig,
    bonus_settings,
    size_for_sweep,
    with_bonus_settings,
)
from mimex_jax.video import VIDEO_SIZE, no_renderer

__all__ = [
    "BACKENDS",
    "ConfigError",
    "RunConfig",
    "RunOptions",
    "default_config_text",
    "dump_yaml",
    "from_dict",
    "load_config",
    "make_sweep",
    "parse_override",
    "slots_needed",
    "to_dict",
]

SECTIONS = ("train", "hparams", "run", "sweep")
BACKENDS = ("jsonl", "csv", "tensorboard", "wandb")
# MIMExConfig fields that the trainer sets itself (from train.seq_len and the embedding width).
MIMEX_DERIVED = ("seq_len", "feature_dim")
# Placeholder embedding width for validating train.mimex when the width is only known once
# the environment is built (embedding "obs"); checks that depend on it run again at build time.
_PLACEHOLDER_FEATURE_DIM = 2


class ConfigError(ValueError):
    """An invalid run config: the message names the key, the value, what is allowed and
    where the value came from."""


# --------------------------------------------------------------------------------------
# Host-side options (validated by pydantic as they are constructed)

_SEEDS = "a count >= 1 or a non-empty list of distinct integers >= 0"


def _seed_count(v: Any) -> Any:
    n = v if isinstance(v, (list, tuple)) else schema.as_int(v)
    if isinstance(n, int) and not isinstance(n, bool):
        if n < 1:
            raise invalid(_SEEDS)
        return tuple(range(n))
    return v


def _distinct_seeds(v: tuple[int, ...]) -> tuple[int, ...]:
    if not v or min(v) < 0 or len(set(v)) != len(v):
        raise invalid(_SEEDS, v)
    return v


def _backend_list(v: Any) -> Any:
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    return () if v is None else v


def _distinct_backends(v: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(v)) != len(v):
        raise invalid(f"distinct names among {list(BACKENDS)}")
    return v


def _check_mesh(v: Any) -> Any:
    from mimex_jax.distributed import check_mesh_option

    if isinstance(v, Mapping):
        v = {k: schema.as_int(x) for k, x in v.items()}
    if isinstance(v, (str, Mapping)):
        check_mesh_option(v)  # its ValueError names run.mesh or run.mesh.<axis>
    return v


def _name(what: str) -> Any:
    return explained(Annotated[Str, MinLen(1)] | None, "null or a string", f"null or {what}")


def _at_least(n: int, note: str = "") -> Any:
    return explained(Int, "an integer", f"an integer >= {n}{note}", Ge(n))


Seeds = explained(tuple[Int, ...], "a count (integer >= 1) or a list of integers", None,
                  BeforeValidator(_seed_count), AfterValidator(_distinct_seeds))
Backends = explained(tuple[Literal[BACKENDS], ...], "a list of names",
                     f"distinct names among {list(BACKENDS)}", BeforeValidator(_backend_list),
                     AfterValidator(_distinct_backends))
Mesh = explained(Str | dict[Str, Int], "'auto', 'sweep', 'data' or a mapping {sweep: S, data: D}",
                 None, BeforeValidator(_check_mesh))
Positive = _at_least(1)
Checkpoints = _at_least(0, " (0 = only at the end)")
Episodes = _at_least(0, " (0 = no evaluation)")
Videos = _at_least(0, " (0 = no videos)")


def _even(v: int) -> int:
    if v % 2:
        raise invalid("an even integer >= 16", v)
    return v


VideoSize = explained(Int, "an integer", "an even integer >= 16", Ge(16), AfterValidator(_even))
Devices = explained(Annotated[Int, Ge(1)] | None, "null or an integer",
                    "null (all devices) or an integer >= 1")
MetricName, ProjectName = _name("a metric name"), _name("a project name")
Mode = explained(Literal["max", "min"], "'max' or 'min'", "'max' or 'min'")
Flag = explained(Bool, "true or false")


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class RunOptions:
    """Host-side options of a run: nothing here changes the compiled program.

    Attributes:
      seeds: the seeds to train (each seed is one vmapped member). In YAML either a count
        ``N`` (meaning seeds ``0 .. N-1``) or an explicit list.
      chunk: training iterations per compiled chunk; the host logs, checkpoints and
        updates the progress bar between chunks.
      checkpoint_every: save a checkpoint every this many iterations (rounded up to a
        chunk boundary); 0 = only at the end.
      keep_last: how many of the most recent checkpoints to keep.
      best_metric: also keep the checkpoint with the best value of this metric (a key of
        the trainer's metrics, e.g. ``episode_return``); None = no best checkpoint.
      best_mode: ``"max"`` or ``"min"``: whether a larger ``best_metric`` is better.
      log_backends: metric sinks among ``jsonl``, ``csv``, ``tensorboard``, ``wandb``.
      wandb_project: the W&B project (with the ``wandb`` backend); None = ``mimex-jax``.
      eval_episodes: greedy-policy evaluation episodes after training; 0 = no evaluation.
      compare_baseline: also train the same config with ``train.reward: none`` (same
        seeds) and report both, to see what the exploration bonus adds.
      video_every: every this many iterations (rounded up to a chunk boundary) and at the
        end, write one deterministic episode of the current policy (member 0) to
        ``videos/iter_<iteration>.mp4`` in the run directory, and to TensorBoard / W&B when
        those log backends are on (:mod:`mimex_jax.video`; MuJoCo tasks only); 0 = off.
      video_size: height and width of those videos' frames (even, >= 16).
      devices: how many devices to run on (the first N JAX sees); None = all of them.
      mesh: how members and environments are laid over the devices
        (:mod:`mimex_jax.distributed`): ``"auto"``, ``"sweep"``, ``"data"`` or a mapping
        ``{sweep: S, data: D}``. Sizes that do not divide are an error, never padded.

    Constructing one validates it (pydantic); an invalid value raises a ``ValueError``.
    """

    seeds: Seeds = (0,)
    chunk: Positive = 10
    checkpoint_every: Checkpoints = 50
    keep_last: Positive = 3
    best_metric: MetricName = None
    best_mode: Mode = "max"
    log_backends: Backends = ("jsonl", "csv", "tensorboard")
    wandb_project: ProjectName = None
    eval_episodes: Episodes = 10
    compare_baseline: Flag = False
    video_every: Videos = 0
    video_size: VideoSize = VIDEO_SIZE
    devices: Devices = None
    mesh: Mesh = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.mesh, dict) and self.devices is not None:
            used = self.mesh.get("sweep", 1) * self.mesh.get("data", 1)
            if used != self.devices:
                raise ValueError(f"run.devices={self.devices!r} is invalid; allowed: null or "
                                 f"{used}, the devices run.mesh={self.mesh!r} lays out")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A fully resolved, validated run: ``train`` (static), ``hparams`` (dynamic),
    ``run`` (host side) and the optional ``sweep`` spec (normalised, see the module doc)."""

    train: TrainConfig = TrainConfig()
    hparams: HParams = HParams()
    run: RunOptions = RunOptions()
    sweep: dict[str, Any] | None = None

    @property
    def mimex(self) -> dict[str, Any]:
        """``train.mimex`` as a dict (MIMExConfig overrides)."""
        return dict(self.train.mimex)


# --------------------------------------------------------------------------------------
# Reading files: extends, deep merge, overrides (with the origin of every value)


def default_config_text() -> str:
    """The embedded default config (identical to ``configs/default.yaml``)."""
    return importlib.resources.files("mimex_jax").joinpath("default_config.yaml").read_text(
        encoding="utf-8")


def _parse_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of sections "
                          f"{['extends', *SECTIONS]}, got {type(data).__name__}")
    return data


def _record_origins(data: Any, prefix: str, origin: str, origins: dict[str, str]) -> None:
    """Remember which file (or override) set each dotted key."""
    if prefix:
        origins[prefix] = origin
    if isinstance(data, dict):
        for k, v in data.items():
            _record_origins(v, f"{prefix}.{k}" if prefix else str(k), origin, origins)


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``top`` replaces."""
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _load_file(path: Path, origins: dict[str, str], chain: tuple[Path, ...]) -> dict[str, Any]:
    """Read ``path`` with its ``extends`` parents merged underneath it."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"{path}: 'extends' forms a cycle: {cycle}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        where = f"{chain[-1]}: 'extends'" if chain else "config"
        raise ConfigError(f"{where}: cannot read config file {str(path)!r}: {e}") from e
    data = _parse_yaml(text, str(path))
    parents = data.pop("extends", None)
    if parents is None:
        parents = []
    elif isinstance(parents, str):
        parents = [parents]
    elif not (isinstance(parents, list) and all(isinstance(p, str) for p in parents)):
        raise ConfigError(f"{path}: extends={parents!r} has the wrong type; expected a path or "
                          "a list of paths (relative to this file)")
    merged: dict[str, Any] = {}
    for parent in parents:
        merged = _merge(merged, _load_file(path.parent / parent, origins, (*chain, path)))
    _record_origins(data, "", str(path), origins)
    return _merge(merged, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.mimex.mask_ratio=0.5"`` -> ``(["train", "mimex", "mask_ratio"], 0.5)``.

    The value is parsed with ``yaml.safe_load`` (so ``[64, 64]`` is a list, ``null`` is
    None, ``true`` a bool); numbers YAML reads as strings (``3e-4``) are converted when
    the field is numeric.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like section.key=value "
                          "(e.g. train.num_envs=64, hparams.lr=3e-4)")
    parts = key.split(".")
    if any(p == "" for p in parts) or len(parts) < 2:
        raise ConfigError(f"override {text!r}: the key must be dotted, section.key[.subkey], "
                          f"with a section among {list(SECTIONS)}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return parts, parsed


def _apply_override(data: dict[str, Any], text: str, origins: dict[str, str]) -> dict[str, Any]:
    parts, value = parse_override(text)
    where = f"override --set {text}"
    nested: Any = value
    for p in reversed(parts):
        nested = {p: nested}
    if parts[0] == "extends":
        raise ConfigError(f"{where}: 'extends' cannot be overridden; pass another config "
                          "file instead")
    node = data
    for i, p in enumerate(parts[:-1]):
        child = node.get(p)
        if child is None:
            break
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {'.'.join(parts[:i + 1])} is {child!r}, not a mapping, "
                              "so it has no sub-keys")
        node = child
    _record_origins(nested, "", where, origins)
    return _merge(data, nested)


# --------------------------------------------------------------------------------------
# Validating a merged mapping: the pydantic schema, then the runtime classes, then the rules
# specific to mimex-jax. Every error is reported with the file or override of its key.


@functools.cache
def _schema() -> type:
    """The pydantic schema of a whole config (built on first use: no import-time cost)."""
    widths = explained(tuple[Annotated[Int, Ge(1)], ...], "a list of integers",
                       "a non-empty list of integers >= 1", MinLen(1))
    train = schema.section_model(TrainConfig, "train", special=(
        ("env_kwargs", schema.mapping_of(dict[Str, schema.Frozen], "train.env_kwargs")),
        ("pixels", schema.mapping_of(dict[Str, schema.Frozen], "train.pixels")),
        ("mimex", schema.mapping_of(schema.section_model(
            MIMExConfig, "train.mimex", exclude=MIMEX_DERIVED), "train.mimex")),
        ("drqv2", schema.mapping_of(schema.section_model(DrQV2Config, "train.drqv2"),
                                    "train.drqv2")),
        ("bonus", schema.mapping_of(dict[Str, Any], "train.bonus")),  # typed once reward is known
        ("actor_hidden", widths), ("critic_hidden", widths),
        ("episode_length", explained(Annotated[Int, Ge(1)] | None, "null or an integer",
                                     "null or an integer >= 1"))))
    hparams = schema.section_model(HParams, "hparams", special=tuple(
        (name, explained(schema.Float, "a number")) for name in HParams._fields))
    schema.VALID_KEYS["run"] = [f.name for f in dataclasses.fields(RunOptions)]
    schema.VALID_KEYS[""] = list(SECTIONS)
    section = "a mapping of keys"
    return create_model(
        "RunConfigSchema", __config__=ConfigDict(extra="forbid"),
        train=(explained(train | None, section), None),
        hparams=(explained(hparams | None, section), None),
        run=(explained(RunOptions | None, section), None),
        sweep=(explained(schema.sweep_model(HParams._fields) | None,
                         "a mapping with 'grid' or 'random'"), None))


class _Origins:
    """Which file or ``--set`` override each dotted key came from; builds the errors."""

    def __init__(self, where: str, origins: Mapping[str, str]):
        self.where, self.origins = where, dict(origins)

    def of(self, path: str) -> str:
        parts = path.split(".")
        for i in range(len(parts), 0, -1):
            o = self.origins.get(".".join(parts[:i]))
            if o is not None:
                return o
        return self.where

    def error(self, path: str, message: str) -> ConfigError:
        if message.startswith("unknown key") and path in (f"train.mimex.{k}"
                                                          for k in MIMEX_DERIVED):
            message = (f"{path} is set by the trainer (seq_len from train.seq_len, "
                       "feature_dim from the embedding); remove it")
        return ConfigError(f"{self.of(path)}: {message}")

    def invalid(self, e: ValidationError, prefix: Sequence[str] = ()) -> ConfigError:
        """All the errors of a pydantic validation, one line each."""
        errors = [self.error(path, message) for path, message in schema.issues(e, prefix)]
        return ConfigError("\n".join(str(x) for x in errors))

    def build(self, make: Callable[..., Any], kwargs: Mapping[str, Any], section: str) -> Any:
        """``make(**kwargs)``; its ValueError names the key, so report where that came from."""
        try:
            return make(**kwargs)
        except ValueError as e:
            raise self.error(*schema.field_error(section, e)) from None


def _items(mapping: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(mapping.items()))


def _train(body: dict[str, Any], at: _Origins) -> dict[str, Any]:
    """TrainConfig keyword arguments from the typed ``train`` section."""
    for key in ("env_kwargs", "mimex", "pixels"):
        if key in body:
            body[key] = _items(body[key])
    if "drqv2" in body:
        at.build(DrQV2Config, body["drqv2"], "train.drqv2")
        body["drqv2"] = _items(body["drqv2"])
    if body.get("bonus"):  # the settings of the selected bonus, typed by its config class
        reward = body.get("reward", TrainConfig.reward)
        spec = at.build(registry.get, {"name": reward}, "train")
        for key in body["bonus"]:
            if key not in spec.settable():
                raise at.error(f"train.bonus.{key}", f"train.bonus.{key} is not a setting of bonus "
                                                     f"{reward!r}; allowed: {spec.settable()}")
        model = schema.section_model(spec.config, "train.bonus", spec.derived)
        try:
            body["bonus"] = _items(schema.settings(model, body["bonus"]))
        except ValidationError as e:
            raise at.invalid(e, ("train", "bonus")) from None
    elif "bonus" in body:
        body["bonus"] = ()
    return body


def _mimex_slots(cfg: TrainConfig, hp: HParams, at: _Origins) -> TrainConfig:
    """Validate ``train.mimex`` and size the encoder for ``hparams.mask_ratio``.

    ``hparams.mask_ratio`` is the ratio the model trains with; the static
    ``train.mimex.mask_ratio`` only fixes how many token slots the encoder processes.
    When it is not given it follows ``hparams.mask_ratio``; when it is, it must leave
    room for every token ``hparams.mask_ratio`` keeps. Where float32 rounding of the
    traced ratio keeps one token more than the float64 bound (:func:`slots_needed`),
    ``encoder_slots`` is set to cover it.
    """
    kw = bonus_settings(cfg) if cfg.reward == "mimex" else dict(cfg.mimex)
    if cfg.reward != "mimex" and not kw:
        return cfg
    if cfg.reward == "mimex" and "mask_ratio" not in kw:
        kw["mask_ratio"] = float(hp.mask_ratio)
        cfg = with_bonus_settings(cfg, kw)
    width = {"random_projection": cfg.projection_dim,
             "torso": cfg.actor_hidden[-1] if cfg.actor_hidden else None}.get(cfg.embedding_kind)
    mcfg = at.build(lambda **k: MIMExConfig(seq_len=cfg.seq_len,
                                            feature_dim=width or _PLACEHOLDER_FEATURE_DIM, **k),
                    kw, "train.mimex")
    if cfg.reward == "mimex" and not mcfg.mask_all:
        need = slots_needed(mcfg, [float(hp.mask_ratio)])
        if (need > mcfg.num_slots and mcfg.encoder_slots is None
                and mcfg.mask_ratio <= float(hp.mask_ratio)):
            # float32 rounding of the traced ratio keeps one token more than float64 says
            kw["encoder_slots"] = need
            cfg = with_bonus_settings(cfg, kw)
        elif need > mcfg.num_slots:
            slots = f", encoder_slots={mcfg.encoder_slots}" if mcfg.encoder_slots else ""
            raise at.error(
                "hparams.mask_ratio",
                f"hparams.mask_ratio={hp.mask_ratio!r} keeps up to {need} of "
                f"seq_len={cfg.seq_len} tokens, but the encoder is sized for "
                f"{mcfg.num_slots} (train.mimex.mask_ratio={mcfg.mask_ratio!r}{slots}); "
                f"set train.mimex.mask_ratio <= hparams.mask_ratio, or "
                f"train.mimex.encoder_slots >= {need}, or leave both out")
    return cfg


def _check_env_id(env_id: str, at: _Origins) -> None:
    """``suite:name`` with a known suite, and a name that suite lists (if it imports)."""
    from mimex_jax.envs import list_envs

    suite, sep, env_name = env_id.partition(":")
    if not sep or suite not in SUITES or not env_name:
        raise at.error("train.env_id", f"train.env_id={env_id!r} is invalid; allowed: "
                                       f"'suite:name' with suite in {list(SUITES)} (e.g. "
                                       "'gymnax:DeepSea-bsuite'; mimex_jax.envs.list_envs())")
    try:
        known = list_envs(suite)
    except ImportError:
        return  # the suite's package is missing: reported when the env is built
    if env_id not in known:
        close = difflib.get_close_matches(env_id, known, n=3)
        hint = f"; did you mean {close}?" if close else f"; {suite} has {known}"
        raise at.error("train.env_id", f"train.env_id={env_id!r} is invalid; allowed: an "
                                       f"env of suite {suite!r}{hint}")


def _check_sweep_values(sweep: Mapping[str, Any], at: _Origins) -> None:
    """Every swept value (or range end) must be a valid value of its hyperparameter."""
    kind = "grid" if "grid" in sweep else "random"
    axes = sweep["grid"] if kind == "grid" else sweep["random"]["ranges"]
    for name, values in axes.items():
        path = f"sweep.{kind}.{name}" if kind == "grid" else f"sweep.random.ranges.{name}"
        for v in values if kind == "grid" else values[:2]:
            try:
                HParams(**{name: v}).validate()
            except ValueError as e:
                raise at.error(path, f"{path}: {e}") from None


def from_dict(data: Mapping[str, Any], where: str = "config",
              origins: Mapping[str, str] | None = None) -> RunConfig:
    """Validate a merged config mapping (no ``extends``) and build the :class:`RunConfig`."""
    if "extends" in data:
        raise ConfigError(f"{where}: 'extends' is only supported in files (load_config)")
    at = _Origins(where, origins or {})
    try:
        parsed = _schema().model_validate(dict(data))
    except ValidationError as e:
        raise at.invalid(e) from None
    body = parsed.train.model_dump(exclude_unset=True) if parsed.train else {}
    hp_kw = parsed.hparams.model_dump(exclude_unset=True) if parsed.hparams else {}
    hp = at.build(lambda **kw: HParams(**kw).validate(), hp_kw, "hparams")
    cfg = at.build(TrainConfig, _train(body, at), "train")
    cfg = _mimex_slots(cfg, hp, at)
    if cfg.reward != "mimex" and cfg.bonus:  # build the bonus's config once (MIMEx: above)
        spec = registry.get(cfg.reward)
        ctx = registry.BonusContext(cfg.seq_len, _PLACEHOLDER_FEATURE_DIM, 1, False)
        at.build(lambda **kw: spec.build_config(ctx, kw), bonus_settings(cfg), "train.bonus")
    _check_env_id(cfg.env_id, at)
    at.build(networks.activation, {"name": cfg.activation}, "train")
    run = parsed.run or RunOptions()
    sweep = parsed.sweep.model_dump(exclude_none=True) if parsed.sweep else None
    if sweep:
        _check_sweep_values(sweep, at)
    if run.video_every > 0 and no_renderer(cfg.env_id) is not None:
        raise at.error("run.video_every", f"run.video_every={run.video_every} is invalid for "
                                          f"{cfg.env_id}: no video for this env, "
                                          f"{no_renderer(cfg.env_id)}; allowed: 0")
    return RunConfig(train=cfg, hparams=HParams(*(float(x) for x in hp)), run=run,
                     sweep=sweep or None)


def load_config(path: str | Path | Sequence[str | Path] | None = None,
                overrides: Sequence[str] = ()) -> RunConfig:
    """Load, merge, override and validate a run config.

    Args:
      path: a YAML file, a list of files merged in order (later files win), or None for the
        embedded default (``configs/default.yaml``).
      overrides: ``"section.key=value"`` strings applied last, in order, e.g.
        ``["train.num_envs=64", "hparams.lr=3e-4", "train.mimex.mask_ratio=0.5"]``.

    Raises:
      ConfigError (a ValueError) naming the key, the value, what is allowed and the file or
      override it came from. Nothing is compiled and no environment is built.
    """
    origins: dict[str, str] = {}
    if path is None:
        where = "embedded default config (configs/default.yaml)"
        data = _parse_yaml(default_config_text(), where)
        if "extends" in data:
            raise ConfigError(f"{where}: must not use 'extends'")
        _record_origins(data, "", where, origins)
    else:
        paths = [path] if isinstance(path, (str, Path)) else list(path)
        if not paths:
            raise ConfigError("load_config: empty list of config files")
        where = ", ".join(str(p) for p in paths)
        data = {}
        for p in paths:
            data = _merge(data, _load_file(Path(p), origins, ()))
    for text in overrides:
        data = _apply_override(data, text, origins)
    return from_dict(data, where, origins)


# --------------------------------------------------------------------------------------
# Writing back


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def to_dict(rc: RunConfig) -> dict[str, Any]:
    """The fully resolved config as plain YAML-able data (every key explicit)."""
    train = {}
    for f in dataclasses.fields(TrainConfig):
        v = getattr(rc.train, f.name)
        if f.name in ("env_kwargs", "mimex", "bonus", "drqv2", "pixels"):
            v = {k: _plain(x) for k, x in v}
        train[f.name] = _plain(v)
    out: dict[str, Any] = {
        "train": train,
        "hparams": {k: float(v) for k, v in rc.hparams._asdict().items()},
        "run": {f.name: _plain(getattr(rc.run, f.name)) for f in dataclasses.fields(RunOptions)},
    }
    if rc.sweep is not None:
        out["sweep"] = _plain(rc.sweep)
    return out


def dump_yaml(rc: RunConfig, path: str | Path) -> Path:
    """Write the resolved config to ``path`` (a directory gets ``config.yaml``); returns the
    file written. ``load_config(dump_yaml(rc, p)) == rc``."""
    from mimex_jax import __version__

    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Fully resolved run config written by mimex-jax {__version__}.\n"
              "# Load it again with: mimex_jax.config.load_config(<this file>)\n")
    path.write_text(header + yaml.safe_dump(to_dict(rc), sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------
# Sweeps


def make_sweep(rc: RunConfig) -> tuple[TrainConfig, HParams, list[dict[str, float]]]:
    """The sweep's members: ``(train config, stacked hparams, labels)``.

    Uses :func:`mimex_jax.sweep.grid` / :func:`~mimex_jax.sweep.random_search` over
    ``rc.hparams``. For MIMEx, the static ``train.mimex.mask_ratio`` is lowered to the
    smallest swept ratio and, if float32 rounding needs it, ``encoder_slots`` is raised so
    that every member's masks fit the encoder. Seeds are not included (``rc.run.seeds``
    multiplies the members). Without a sweep: one member, empty label.
    """
    import jax

    from mimex_jax import sweep as sweep_lib

    spec = rc.sweep or {"grid": {}}
    if "grid" in spec:
        hps, labels = sweep_lib.grid(rc.hparams, **spec["grid"])
    else:
        r = spec["random"]
        hps, labels = sweep_lib.random_search(
            jax.random.key(r["seed"]), r["n"], rc.hparams,
            **{k: tuple(v) for k, v in r["ranges"].items()})
    ratios = [float(lab.get("mask_ratio", rc.hparams.mask_ratio)) for lab in labels]
    return size_for_sweep(rc.train, ratios), hps, labels
