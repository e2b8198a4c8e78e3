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

``dump_yaml`` writes the fully resolved config (no ``extends``, every key explicit) into a
run directory; loading that file gives back an equal :class:`RunConfig`.

The embedded default (``mimex_jax/default_config.yaml``, shipped in the wheel) is kept
identical to ``configs/default.yaml`` (a test checks it).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mimex_jax.agents.drqv2.config import DrQV2Config
from mimex_jax.agents.ppo import networks
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


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class ConfigError(ValueError):
    """An invalid run config: the message names the key, the value, what is allowed and
    where the value came from."""


@dataclasses.dataclass(frozen=True)
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
      devices: how many devices to run on (the first N JAX sees); None = all of them.
      mesh: how members and environments are laid over the devices
        (:mod:`mimex_jax.distributed`): ``"auto"``, ``"sweep"``, ``"data"`` or a mapping
        ``{sweep: S, data: D}``. Sizes that do not divide are an error, never padded.
    """

    seeds: tuple[int, ...] = (0,)
    chunk: int = 10
    checkpoint_every: int = 50
    keep_last: int = 3
    best_metric: str | None = None
    best_mode: str = "max"
    log_backends: tuple[str, ...] = ("jsonl", "csv", "tensorboard")
    wandb_project: str | None = None
    eval_episodes: int = 10
    compare_baseline: bool = False
    devices: int | None = None
    mesh: str | dict[str, int] = "auto"

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"run.{name}={getattr(self, name)!r} is invalid; "
                                  f"allowed: {allowed}")

        check("seeds", len(self.seeds) >= 1 and all(_is_int(s) and s >= 0 for s in self.seeds)
              and len(set(self.seeds)) == len(self.seeds),
              "a count >= 1 or a non-empty list of distinct integers >= 0")
        check("chunk", _is_int(self.chunk) and self.chunk >= 1, "an integer >= 1")
        check("checkpoint_every", _is_int(self.checkpoint_every) and self.checkpoint_every >= 0,
              "an integer >= 0 (0 = only at the end)")
        check("keep_last", _is_int(self.keep_last) and self.keep_last >= 1, "an integer >= 1")
        check("best_metric", self.best_metric is None or (
            isinstance(self.best_metric, str) and self.best_metric != ""),
              "null or a metric name")
        check("best_mode", self.best_mode in ("max", "min"), "'max' or 'min'")
        check("log_backends", all(b in BACKENDS for b in self.log_backends)
              and len(set(self.log_backends)) == len(self.log_backends),
              f"distinct names among {list(BACKENDS)}")
        check("wandb_project", self.wandb_project is None or (
            isinstance(self.wandb_project, str) and self.wandb_project != ""),
              "null or a project name")
        check("eval_episodes", _is_int(self.eval_episodes) and self.eval_episodes >= 0,
              "an integer >= 0 (0 = no evaluation)")
        check("compare_baseline", isinstance(self.compare_baseline, bool), "true or false")
        check("devices", self.devices is None or (_is_int(self.devices) and self.devices >= 1),
              "null (all devices) or an integer >= 1")
        from mimex_jax.distributed import check_mesh_option

        try:
            check_mesh_option(self.mesh)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if isinstance(self.mesh, dict) and self.devices is not None:
            used = self.mesh.get("sweep", 1) * self.mesh.get("data", 1)
            check("devices", used == self.devices,
                  f"null or {used}, the devices run.mesh={self.mesh!r} lays out")


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
    _check_structure(data, str(path))
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
    _check_structure(nested, where)
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
# Structure checks (unknown keys), run on every file and override separately


def _unknown(key: Any, section: str, valid: Sequence[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(str(key), list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}: unknown key {section + '.' if section else ''}{key}{hint}; "
                       f"valid keys of {section or 'the top level'}: {sorted(valid)}")


def _field_names(cls: type) -> list[str]:
    if hasattr(cls, "_fields"):
        return list(cls._fields)
    return [f.name for f in dataclasses.fields(cls)]


def _mimex_keys() -> list[str]:
    return [k for k in _field_names(MIMExConfig) if k not in MIMEX_DERIVED]


def _check_structure(data: Mapping[str, Any], where: str) -> None:
    for key in data:
        if key not in SECTIONS and key != "extends":
            raise _unknown(key, "", ["extends", *SECTIONS], where)
        if key == "extends" and where.startswith("override"):
            raise ConfigError(f"{where}: 'extends' cannot be overridden; pass another config "
                              "file instead")
    valid = {"train": _field_names(TrainConfig), "hparams": _field_names(HParams),
             "run": _field_names(RunOptions)}
    for section, keys in valid.items():
        body = data.get(section)
        if not isinstance(body, Mapping):
            continue
        for key in body:
            if key not in keys:
                raise _unknown(key, section, keys, where)
        mimex = body.get("mimex") if section == "train" else None
        if isinstance(mimex, Mapping):
            for key in mimex:
                if key in MIMEX_DERIVED:
                    raise ConfigError(
                        f"{where}: train.mimex.{key} is set by the trainer (seq_len from "
                        "train.seq_len, feature_dim from the embedding); remove it")
                if key not in _mimex_keys():
                    raise _unknown(key, "train.mimex", _mimex_keys(), where)
        drqv2 = body.get("drqv2") if section == "train" else None
        if isinstance(drqv2, Mapping):
            for key in drqv2:
                if key not in _field_names(DrQV2Config):
                    raise _unknown(key, "train.drqv2", _field_names(DrQV2Config), where)
    sweep = data.get("sweep")
    if isinstance(sweep, Mapping):
        for key in sweep:
            if key not in ("grid", "random"):
                raise _unknown(key, "sweep", ["grid", "random"], where)
        rnd = sweep.get("random")
        if isinstance(rnd, Mapping):
            for key in rnd:
                if key not in ("n", "seed", "ranges"):
                    raise _unknown(key, "sweep.random", ["n", "seed", "ranges"], where)
        for section, axes in (("sweep.grid", sweep.get("grid")), (
                "sweep.random.ranges", rnd.get("ranges") if isinstance(rnd, Mapping) else None)):
            if isinstance(axes, Mapping):
                for key in axes:
                    if key not in HParams._fields:
                        raise _unknown(key, section, list(HParams._fields), where)


# --------------------------------------------------------------------------------------
# Types


def _number_from_str(v: str) -> float | None:
    """YAML 1.1 reads ``3e-4`` and ``1e6`` as strings; accept them as numbers."""
    try:
        return float(v.strip())
    except ValueError:
        return None


class _WrongType(Exception):
    def __init__(self, expected: str):
        super().__init__(expected)
        self.expected = expected


def _to_int(v: Any) -> int:
    if _is_int(v):
        return v
    if isinstance(v, str):
        x = _number_from_str(v)
        v = x if x is not None else v
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return int(v)
    raise _WrongType("an integer")


def _to_float(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        x = _number_from_str(v)
        if x is not None:
            return x
    raise _WrongType("a number")


def _freeze(v: Any) -> Any:
    """Lists -> tuples (recursively) so the static config stays hashable."""
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, Mapping):
        raise _WrongType("a scalar or a list (nested mappings are not supported)")
    return v


def _coerce(v: Any, hint: Any) -> Any:
    """Convert a YAML value to the annotated type, or raise _WrongType."""
    if hint is Any:
        return _freeze(v)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (v is None or (isinstance(v, str)
                                                 and v.strip().lower() in ("none", "null"))):
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            try:
                return _coerce(v, rest[0])
            except _WrongType as e:
                raise _WrongType(f"null or {e.expected}") from None
        for a in rest:
            try:
                return _coerce(v, a)
            except _WrongType:
                pass
        raise _WrongType(" or ".join(str(a) for a in args))
    if origin is tuple:
        item = args[0] if args else Any
        if not isinstance(v, (list, tuple)):
            raise _WrongType(f"a list of {_describe(item, plural=True)}")
        try:
            return tuple(_coerce(x, item) for x in v)
        except _WrongType:
            raise _WrongType(f"a list of {_describe(item, plural=True)}") from None
    if hint is bool:
        if isinstance(v, bool):
            return v
        raise _WrongType("true or false")
    if hint is int:
        return _to_int(v)
    if hint is float:
        return _to_float(v)
    if hint is str:
        if isinstance(v, str):
            return v
        raise _WrongType("a string")
    raise TypeError(f"config: unsupported annotation {hint!r}")  # a bug, not a user error


def _describe(hint: Any, plural: bool = False) -> str:
    names = {int: ("an integer", "integers"), float: ("a number", "numbers"),
             str: ("a string", "strings"), bool: ("true or false", "booleans")}
    if hint in names:
        return names[hint][plural]
    return "values"


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# --------------------------------------------------------------------------------------
# Building the dataclasses from a merged mapping


class _Builder:
    def __init__(self, where: str, origins: dict[str, str]):
        self.where = where
        self.origins = origins

    def origin(self, path: str) -> str:
        parts = path.split(".")
        for i in range(len(parts), 0, -1):
            o = self.origins.get(".".join(parts[:i]))
            if o is not None:
                return o
        return self.where

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.origin(path)}: {message}")

    def wrong_type(self, path: str, value: Any, expected: str) -> ConfigError:
        return self.error(path, f"{path}={value!r} has the wrong type; expected {expected}")

    def section(self, data: Mapping[str, Any], name: str) -> dict[str, Any]:
        body = data.get(name)
        if body is None:
            return {}
        if not isinstance(body, Mapping):
            raise self.wrong_type(name, body, "a mapping of keys")
        return dict(body)

    def typed(self, body: Mapping[str, Any], hints: Mapping[str, Any], section: str,
              special: Mapping[str, Any] | None = None) -> dict[str, Any]:
        special = special or {}
        out = {}
        for key, value in body.items():
            path = f"{section}.{key}"
            try:
                out[key] = special[key](value) if key in special else _coerce(value, hints[key])
            except _WrongType as e:
                raise self.wrong_type(path, value, e.expected) from None
        return out

    def construct(self, cls: type, kwargs: dict[str, Any], section: str) -> Any:
        """``cls(**kwargs)``, with the origin of the offending field in the error."""
        try:
            return cls(**kwargs)
        except ConfigError as e:
            m = re.match(rf"{re.escape(section)}\.(\w+)=", str(e))
            path = f"{section}.{m.group(1)}" if m else section
            raise self.error(path, str(e)) from None
        except ValueError as e:
            m = re.match(r"(\w+)=", str(e))
            path = f"{section}.{m.group(1)}" if m else section
            raise self.error(path, f"{section}.{e}" if m else f"{section}: {e}") from None

    # sections ---------------------------------------------------------------------------

    def train(self, body: dict[str, Any]) -> dict[str, Any]:
        def mapping(path: str, freeze_values: bool):
            def convert(value: Any) -> tuple[tuple[str, Any], ...]:
                if value is None:
                    return ()
                if not isinstance(value, Mapping):
                    raise _WrongType(f"a mapping ({path}: {{key: value}})")
                if not freeze_values:
                    return tuple(sorted(value.items()))
                items = []
                for k, v in value.items():
                    try:
                        items.append((str(k), _freeze(v)))
                    except _WrongType as e:
                        raise self.wrong_type(f"{path}.{k}", v, e.expected) from None
                return tuple(sorted(items))
            return convert

        kwargs = self.typed(body, _hints(TrainConfig), "train", {
            "env_kwargs": mapping("train.env_kwargs", True),
            "mimex": mapping("train.mimex", False),
            "bonus": mapping("train.bonus", False),
            "drqv2": mapping("train.drqv2", False),
            "pixels": mapping("train.pixels", True),
        })
        if "mimex" in kwargs:
            hints = _hints(MIMExConfig)
            typed = self.typed(dict(kwargs["mimex"]), hints, "train.mimex")
            kwargs["mimex"] = tuple(sorted(typed.items()))
        if kwargs.get("bonus"):
            reward = kwargs.get("reward", TrainConfig.reward)
            spec = self.construct(registry.get, {"name": reward}, "train.reward")
            settable = spec.settable()
            for key, _ in kwargs["bonus"]:
                if key not in settable:
                    raise self.error(f"train.bonus.{key}", f"train.bonus.{key} is not a setting "
                                     f"of bonus {reward!r}; allowed: {settable}")
            typed = self.typed(dict(kwargs["bonus"]), _hints(spec.config), "train.bonus")
            kwargs["bonus"] = tuple(sorted(typed.items()))
        if "drqv2" in kwargs:
            typed = self.typed(dict(kwargs["drqv2"]), _hints(DrQV2Config), "train.drqv2")
            self.construct(DrQV2Config, typed, "train.drqv2")
            kwargs["drqv2"] = tuple(sorted(typed.items()))
        return kwargs

    def bonus_consistency(self, cfg: TrainConfig) -> None:
        """Build the selected bonus's config once, so bad ``train.bonus`` values fail here."""
        if cfg.reward == "mimex" or not cfg.bonus:
            return  # MIMEx: mimex_consistency
        spec = registry.get(cfg.reward)
        ctx = registry.BonusContext(cfg.seq_len, _PLACEHOLDER_FEATURE_DIM, 1, False)
        self.construct(lambda **kw: spec.build_config(ctx, kw), bonus_settings(cfg),
                       "train.bonus")

    def hparams(self, body: dict[str, Any]) -> HParams:
        kwargs = self.typed(body, {k: float for k in HParams._fields}, "hparams")
        hp = HParams(**kwargs)
        try:
            hp.validate()
        except ValueError as e:
            m = re.match(r"hparams\.(\w+)=", str(e))
            raise self.error(f"hparams.{m.group(1)}" if m else "hparams", str(e)) from None
        # validate() may return arrays elsewhere; keep plain floats here
        return HParams(*(float(x) for x in hp))

    def run(self, body: dict[str, Any]) -> RunOptions:
        def seeds(value: Any) -> tuple[int, ...]:
            if _is_int(value) or (isinstance(value, str) and _number_from_str(value) is not None):
                n = _to_int(value)
                if n < 1:
                    raise self.error("run.seeds", f"run.seeds={value!r} is invalid; allowed: a "
                                     "count >= 1 or a non-empty list of distinct integers >= 0")
                return tuple(range(n))
            if isinstance(value, (list, tuple)):
                try:
                    return tuple(_to_int(s) for s in value)
                except _WrongType:
                    pass
            raise _WrongType("a count (integer >= 1) or a list of integers")

        def backends(value: Any) -> tuple[str, ...]:
            if isinstance(value, str):
                value = [s.strip() for s in value.split(",") if s.strip()]
            if value is None:
                return ()
            return _coerce(value, tuple[str, ...])

        def mesh(value: Any) -> str | dict[str, int]:
            if isinstance(value, Mapping):
                out = {}
                for k, v in value.items():
                    try:
                        out[str(k)] = _to_int(v)
                    except _WrongType:
                        raise self.wrong_type(f"run.mesh.{k}", v, "an integer >= 1") from None
                return out
            if isinstance(value, str):
                return value
            raise _WrongType("'auto', 'sweep', 'data' or a mapping {sweep: S, data: D}")

        kwargs = self.typed(body, _hints(RunOptions), "run",
                            {"seeds": seeds, "log_backends": backends, "mesh": mesh})
        return self.construct(RunOptions, kwargs, "run")

    def sweep(self, data: Mapping[str, Any], base: HParams) -> dict[str, Any] | None:
        body = data.get("sweep")
        if isinstance(body, Mapping):
            body = {k: v for k, v in body.items() if v is not None}  # `grid: null` clears
        if not body:
            return None
        if not isinstance(body, Mapping):
            raise self.wrong_type("sweep", body, "a mapping with 'grid' or 'random'")
        kinds = sorted(body)
        if len(kinds) != 1:
            raise self.error("sweep", f"sweep must have exactly one of 'grid' or 'random', "
                                      f"got {sorted(body)}")

        def check_value(path: str, name: str, value: float) -> None:
            try:
                base._replace(**{name: value}).validate()
            except ValueError as e:
                raise self.error(path, f"{path}: {e}") from None

        if kinds[0] == "grid":
            grid = body["grid"]
            if not isinstance(grid, Mapping) or not grid:
                raise self.wrong_type("sweep.grid", grid, "a non-empty mapping {hparam: [values]}")
            out: dict[str, list[float]] = {}
            for name, values in grid.items():
                path = f"sweep.grid.{name}"
                if not isinstance(values, (list, tuple)) or not values:
                    raise self.wrong_type(path, values, "a non-empty list of numbers")
                try:
                    out[name] = [_to_float(v) for v in values]
                except _WrongType:
                    raise self.wrong_type(path, values, "a non-empty list of numbers") from None
                for v in out[name]:
                    check_value(path, name, v)
            return {"grid": out}

        rnd = body["random"]
        if not isinstance(rnd, Mapping):
            raise self.wrong_type("sweep.random", rnd, "a mapping {n, seed, ranges}")
        if rnd.get("n") is None:
            raise self.error("sweep.random", "sweep.random.n (the number of settings to draw) "
                                             "is required")
        try:
            n = _to_int(rnd.get("n"))
        except _WrongType:
            raise self.wrong_type("sweep.random.n", rnd.get("n"), "an integer >= 1") from None
        if n < 1:
            raise self.error("sweep.random.n", f"sweep.random.n={n} is invalid; allowed: >= 1")
        try:
            seed = _to_int(rnd.get("seed", 0))
        except _WrongType:
            raise self.wrong_type("sweep.random.seed", rnd.get("seed"), "an integer") from None
        ranges = rnd.get("ranges")
        if not isinstance(ranges, Mapping) or not ranges:
            raise self.wrong_type("sweep.random.ranges", ranges,
                                  "a non-empty mapping {hparam: [low, high, uniform|log]}")
        out_r: dict[str, list[Any]] = {}
        for name, spec in ranges.items():
            path = f"sweep.random.ranges.{name}"
            expected = "[low, high, 'uniform' | 'log'] with low < high (low > 0 for log)"
            if not isinstance(spec, (list, tuple)) or len(spec) not in (2, 3):
                raise self.wrong_type(path, spec, expected)
            try:
                low, high = _to_float(spec[0]), _to_float(spec[1])
            except _WrongType:
                raise self.wrong_type(path, spec, expected) from None
            scale = spec[2] if len(spec) == 3 else "uniform"
            if scale not in ("uniform", "log") or not low < high or (scale == "log"
                                                                     and low <= 0):
                raise self.error(path, f"{path}={list(spec)!r} is invalid; allowed: {expected}")
            check_value(path, name, low)
            check_value(path, name, high)
            out_r[name] = [low, high, scale]
        return {"random": {"n": n, "seed": seed, "ranges": out_r}}

    def mimex_consistency(self, cfg: TrainConfig, hp: HParams) -> TrainConfig:
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
                 "torso": cfg.actor_hidden[-1] if cfg.actor_hidden else None}.get(
                     cfg.embedding_kind)
        mcfg = self.construct(
            lambda **k: MIMExConfig(seq_len=cfg.seq_len,
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
                raise self.error(
                    "hparams.mask_ratio",
                    f"hparams.mask_ratio={hp.mask_ratio!r} keeps up to {need} of "
                    f"seq_len={cfg.seq_len} tokens, but the encoder is sized for "
                    f"{mcfg.num_slots} (train.mimex.mask_ratio={mcfg.mask_ratio!r}{slots}); "
                    f"set train.mimex.mask_ratio <= hparams.mask_ratio, or "
                    f"train.mimex.encoder_slots >= {need}, or leave both out")
        return cfg


def _suite_envs(suite: str) -> list[str] | None:
    """Env ids of ``suite``, or None when its package does not import (checked at build)."""
    from mimex_jax.envs import list_envs

    try:
        return list_envs(suite)
    except ImportError:
        return None


def from_dict(data: Mapping[str, Any], where: str = "config",
              origins: Mapping[str, str] | None = None) -> RunConfig:
    """Validate a merged config mapping (no ``extends``) and build the :class:`RunConfig`."""
    data = dict(data)
    if "extends" in data:
        raise ConfigError(f"{where}: 'extends' is only supported in files (load_config)")
    _check_structure(data, where)
    b = _Builder(where, dict(origins or {}))
    train_kw = b.train(b.section(data, "train"))
    hp = b.hparams(b.section(data, "hparams"))
    run = b.run(b.section(data, "run"))
    cfg = b.construct(TrainConfig, train_kw, "train")
    cfg = b.mimex_consistency(cfg, hp)
    b.bonus_consistency(cfg)
    suite, sep, env_name = cfg.env_id.partition(":")
    if not sep or suite not in SUITES or not env_name:
        raise b.error("train.env_id", f"train.env_id={cfg.env_id!r} is invalid; allowed: "
                                      f"'suite:name' with suite in {list(SUITES)} (e.g. "
                                      "'gymnax:DeepSea-bsuite'; mimex_jax.envs.list_envs())")
    known = _suite_envs(suite)
    if known is not None and cfg.env_id not in known:
        close = difflib.get_close_matches(cfg.env_id, known, n=3)
        hint = f"; did you mean {close}?" if close else f"; {suite} has {known}"
        raise b.error("train.env_id", f"train.env_id={cfg.env_id!r} is invalid; allowed: an "
                                      f"env of suite {suite!r}{hint}")
    b.construct(lambda activation: networks.activation(activation),
                {"activation": cfg.activation}, "train")
    for name in ("actor_hidden", "critic_hidden"):
        widths = getattr(cfg, name)
        if not widths or not all(w >= 1 for w in widths):
            raise b.error(f"train.{name}", f"train.{name}={list(widths)!r} is invalid; "
                                           "allowed: a non-empty list of integers >= 1")
    if cfg.episode_length is not None and cfg.episode_length < 1:
        raise b.error("train.episode_length", f"train.episode_length={cfg.episode_length!r} "
                                              "is invalid; allowed: null or an integer >= 1")
    sweep = b.sweep(data, hp)
    if cfg.observation == "pixels" and (len(run.seeds) > 1 or sweep):
        what = "run.seeds" if len(run.seeds) > 1 else "sweep"
        raise b.error(what, f"{what} with train.observation='pixels' is invalid: pixel runs "
                            "cannot be vmapped over seeds or settings (MuJoCo Warp's render "
                            "context fixes its number of worlds); allowed: one seed and no "
                            "sweep per run (run the members one after another)")
    return RunConfig(train=cfg, hparams=hp, run=run, sweep=sweep)


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
        _check_structure(data, where)
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
