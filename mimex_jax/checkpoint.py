"""Checkpoints of the fused trainer's whole state, for exact resume.

A checkpoint is one step directory written by orbax's ``CheckpointManager`` (to a temporary
directory that is renamed when complete, so a crash never leaves a half-written step behind
a valid name). It holds two items:

``state``
    Every leaf of the :class:`~mimex_jax.trainer.TrainState` (agent params, optax state,
    reward-model state, env state, sequence windows, observation statistics, projection,
    RNG keys, iteration counter), flattened to ``leaf_00000 ... leaf_NNNNN``. Typed PRNG
    keys are stored as their raw ``key_data`` and re-wrapped with their implementation on
    restore. Flattening keeps orbax away from the state's custom pytree nodes; the
    template given to :meth:`Checkpointer.restore` supplies the structure.
``meta``
    JSON: the :class:`~mimex_jax.trainer.TrainConfig`, the :class:`~mimex_jax.trainer.HParams`
    values, the package version, the step's metrics, a user ``extra`` dict and a manifest of
    the leaves (path, shape, dtype, key implementation, CRC-32 of the bytes). The manifest
    lets a restore refuse a mismatched template before reading any array and detect a
    corrupt array after reading it. (A leaf split over several hosts' devices has no CRC:
    no single process holds its bytes.)

Typical use::

    ckpt = Checkpointer("runs/a/ckpt", keep_last=3)
    ckpt.save(it, state, cfg, hparams, metrics={"episode_return": r})
    ...
    template = jax.eval_shape(init, jax.random.key(0), hparams)
    state, hparams, meta = ckpt.restore(template, cfg=cfg)   # latest step

A sweep state (leaves with a leading member axis, from ``jax.vmap(init)``) is saved and
restored the same way, every member included. A sharded state (:mod:`mimex_jax.distributed`)
is saved from its global arrays - with several processes each writes its own shards, as
orbax does for multi-host arrays - and restored into the template's shardings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from mimex_jax import __version__
from mimex_jax.trainer import HParams, TrainConfig

FORMAT = "mimex_jax.checkpoint/1"
_STATE = "state"
_META = "meta"
# Fields of TrainConfig that may change between a checkpoint and its resume.
_RESUMABLE_FIELDS = ("total_steps",)


class CheckpointError(ValueError):
    """A checkpoint directory or step that cannot be written or read as expected."""


def _summary(e: BaseException, limit: int = 400) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters (tensorstore's
    messages carry whole JSON specs)."""
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _leaf_name(i: int) -> str:
    return f"leaf_{i:05d}"


def _is_key(dtype: Any) -> bool:
    return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _jsonable(x: Any, where: str) -> Any:
    """``x`` as plain JSON values (tuples become lists); ``where`` names it in errors."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, (int, float)):
        return x
    if isinstance(x, (np.generic, np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        x = dataclasses.asdict(x)
    if isinstance(x, Mapping):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a non-string key {k!r}; JSON needs string keys")
            out[k] = _jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(x, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(x)]
    raise TypeError(f"{where} = {x!r} ({type(x).__name__}) cannot be stored as JSON")


def _config_json(cfg: TrainConfig) -> dict:
    """The config as it reads back from JSON, so saved and given configs compare equal."""
    return json.loads(json.dumps(_jsonable(dataclasses.asdict(cfg), "config")))


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def config_from_metadata(meta: Mapping[str, Any]) -> TrainConfig:
    """Rebuild the saved :class:`TrainConfig` from :func:`read_metadata`'s dict.

    JSON lists become tuples again (``actor_hidden``, ``env_kwargs`` pairs, ...).
    """
    saved = dict(meta["config"])
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise CheckpointError(f"checkpoint config has fields this version of mimex_jax "
                              f"({__version__}) does not know: {unknown}")
    return TrainConfig(**{k: _tuples(v) for k, v in saved.items()})


def _hparams_json(hp: HParams) -> dict:
    """Each field's value and dtype (``None`` for a Python scalar, kept as one)."""
    out = {}
    for name in HParams._fields:
        v = getattr(hp, name)
        if isinstance(v, (jax.Array, np.ndarray, np.generic)):
            arr = np.asarray(v)
            out[name] = {"value": arr.tolist(), "dtype": str(arr.dtype)}
        else:
            out[name] = {"value": _jsonable(v, f"hparams.{name}"), "dtype": None}
    return out


def _hparams_from_json(saved: Mapping[str, Any]) -> HParams:
    """Inverse of :func:`_hparams_json`: Python scalars stay scalars, arrays keep dtypes."""
    values, missing = {}, []
    for name in HParams._fields:
        if name not in saved:
            missing.append(name)  # written by a version without this field: the default
            continue
        entry = saved[name]
        dtype = entry["dtype"]
        values[name] = entry["value"] if dtype is None else jnp.asarray(entry["value"], dtype)
    arrays = [v for v in values.values() if isinstance(v, jax.Array) and v.ndim]
    defaults = HParams()
    for name in missing:  # a sweep's hparams are per member: so is a defaulted field
        if arrays:
            values[name] = jnp.full(arrays[0].shape, getattr(defaults, name), arrays[0].dtype)
    return HParams(**values)


def _leaf_spec(leaf: Any) -> tuple[tuple[int, ...], Any]:
    """Shape and dtype of an array, a ``ShapeDtypeStruct`` or a Python number."""
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return tuple(leaf.shape), leaf.dtype
    arr = jnp.asarray(leaf)
    return tuple(arr.shape), arr.dtype


def _manifest_of(template: Any) -> tuple[list[dict], Any, list[Any]]:
    """``(manifest entries without CRCs, treedef, leaves)`` of a state or its shapes."""
    with_path, treedef = jax.tree_util.tree_flatten_with_path(template)
    entries, leaves = [], []
    for path, leaf in with_path:
        shape, dtype = _leaf_spec(leaf)
        entries.append({"path": jax.tree_util.keystr(path), "shape": list(shape),
                        "dtype": str(dtype)})
        leaves.append(leaf)
    return entries, treedef, leaves


def _flatten_state(state: Any) -> tuple[dict[str, jax.Array], list[dict]]:
    """The state's leaves as orbax items (keys as raw data) and their manifest."""
    entries, _, leaves = _manifest_of(state)
    arrays = {}
    for i, (entry, leaf) in enumerate(zip(entries, leaves, strict=True)):
        arr = leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf)
        if _is_key(arr.dtype):
            entry["key_impl"] = str(jax.random.key_impl(arr))
            arr = jax.random.key_data(arr)
        entry["crc32"] = zlib.crc32(np.asarray(arr, order="C").tobytes()) \
            if arr.is_fully_addressable or arr.is_fully_replicated else None
        if arr.size == 0:  # orbax refuses zero-size arrays (MJX Data has several): the
            entry["empty"] = True  # manifest's shape and dtype restore it
            continue
        arrays[_leaf_name(i)] = arr
    return arrays, entries


def _describe(entry: Mapping[str, Any]) -> str:
    return f"{entry['path']} {tuple(entry['shape'])} {entry['dtype']}"


def _check_template(saved: list[dict], given: list[dict]) -> None:
    """Refuse a template whose leaves differ from the saved ones; name the first one."""
    for i, (s, g) in enumerate(zip(saved, given, strict=False)):
        if (s["path"], list(s["shape"]), s["dtype"]) != (g["path"], g["shape"], g["dtype"]):
            raise ValueError(f"checkpoint state does not match the template at leaf {i}: "
                             f"saved {_describe(s)}, template {_describe(g)}")
    if len(saved) != len(given):
        longer, name = (saved, "checkpoint") if len(saved) > len(given) else (given, "template")
        raise ValueError(f"checkpoint state has {len(saved)} leaves, the template "
                         f"{len(given)}; first leaf only in the {name}: "
                         f"{_describe(longer[min(len(saved), len(given))])}")


def _check_config(saved: Mapping[str, Any], cfg: TrainConfig) -> None:
    """Refuse shape/structure changes (all fields but ``total_steps``); warn on that one."""
    given = _config_json(cfg)
    missing = object()
    diffs, resumable = [], []
    for name in sorted(set(saved) | set(given)):
        a, b = saved.get(name, missing), given.get(name, missing)
        if a == b:
            continue
        show = lambda v: "<absent>" if v is missing else json.dumps(v)
        text = f"{name}: saved {show(a)}, given {show(b)}"
        (resumable if name in _RESUMABLE_FIELDS else diffs).append(text)
    if diffs:
        raise ValueError("checkpoint config differs in fields that change shapes or "
                         "structure: " + "; ".join(diffs))
    if resumable:
        warnings.warn("resuming with a different " + "; ".join(resumable) + " (the learning-"
                      "rate schedule and bonus annealing follow the new total)", stacklevel=3)


def _metric_value(name: str, mode: str):
    """``best_fn`` for orbax: the named metric, NaN ranked worst."""
    worst = -math.inf if mode == "max" else math.inf

    def value(metrics: Mapping[str, float]) -> float:
        v = float(metrics[name])
        return worst if math.isnan(v) else v

    return value


class Checkpointer:
    """Save and restore :class:`~mimex_jax.trainer.TrainState` checkpoints in ``directory``.

    Keeps the ``keep_last`` most recent steps and, with ``best_metric``, also the step whose
    ``metrics[best_metric]`` is best (``best_mode`` ``"max"`` or ``"min"``; NaN is worst).
    ``create=False`` refuses a directory that does not exist instead of creating it.
    ``read_only=True`` (implies ``create=False``) only reads: it neither saves, deletes
    nor cleans up the temporary directory of a step being written, so it is safe on the
    checkpoints of a run that another process is still training (``mimex-jax eval``).
    Saving is synchronous: :meth:`save` returns once the step is on disk.
    """

    def __init__(self, directory: str | os.PathLike, *, keep_last: int = 3,
                 best_metric: str | None = None, best_mode: str = "max",
                 create: bool = True, read_only: bool = False) -> None:
        if not (isinstance(keep_last, int) and keep_last >= 1):
            raise ValueError(f"keep_last={keep_last!r} is invalid; allowed: an integer >= 1")
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode={best_mode!r} is invalid; allowed: 'max', 'min'")
        self.directory = Path(directory).absolute()
        self.best_metric = best_metric
        self.read_only = read_only
        create = create and not read_only
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"checkpoint directory {self.directory} is not a directory")
        if not create and not self.directory.is_dir():
            raise CheckpointError(f"checkpoint directory {self.directory} does not exist")
        policies: list[Any] = [pp.LatestN(n=keep_last)]
        best_fn = None
        if best_metric is not None:
            best_fn = _metric_value(best_metric, best_mode)
            policies.append(pp.BestN(get_metric_fn=best_fn, reverse=best_mode == "min", n=1,
                                     keep_checkpoints_without_metrics=False))
        if read_only:
            options = ocp.CheckpointManagerOptions(
                create=False, read_only=True, save_interval_steps=0,
                enable_async_checkpointing=False, best_fn=best_fn, best_mode=best_mode)
        else:
            options = ocp.CheckpointManagerOptions(
                create=create, enable_async_checkpointing=False,
                cleanup_tmp_directories=True, best_fn=best_fn, best_mode=best_mode,
                preservation_policy=pp.AnyPreservationPolicy(policies))
        verbosity = absl_logging.get_verbosity()
        if read_only:  # orbax warns that the directory is read-only: it is meant to be
            absl_logging.set_verbosity(absl_logging.ERROR)
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options,
                                                  item_names=(_STATE, _META))
        except Exception as e:  # orbax raises assorted types for bad paths
            raise CheckpointError(f"cannot use {self.directory} as a checkpoint directory: "
                                  f"{_summary(e)}") from e
        finally:
            absl_logging.set_verbosity(verbosity)

    # -- steps ------------------------------------------------------------------------

    def all_steps(self) -> list[int]:
        """Saved steps, ascending."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest saved step, or ``None`` when there is none."""
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        """The step with the best ``best_metric`` (the latest one without ``best_metric``)."""
        return self._manager.best_step()

    def delete(self, step: int) -> None:
        """Remove one saved step (e.g. a corrupt one, before saving past it again)."""
        self._require_step(step)
        self._manager.delete(step)

    def step_path(self, step: int) -> Path:
        """The directory holding ``step``."""
        return self.directory / str(step)

    def _require_step(self, step: int | None) -> None:
        """Raise unless ``step`` is saved (``None``: unless any step is saved)."""
        steps = self.all_steps()
        if not steps:
            raise CheckpointError(
                f"{self.directory} holds no checkpoint: expected step directories "
                f"(e.g. {self.directory / '100'}) with '{_STATE}' and '{_META}' items, as "
                "written by mimex_jax.checkpoint.Checkpointer.save")
        if step is not None and step not in steps:
            raise CheckpointError(f"no checkpoint step {step} in {self.directory}; "
                                  f"available steps: {steps}")

    def _read_error(self, step: int, what: str) -> CheckpointError:
        others = [s for s in self.all_steps() if s != step]
        hint = (f"; other available steps: {others} (pass step=... to restore one)" if others
                else "; no other step is available")
        return CheckpointError(f"checkpoint step {step} at {self.step_path(step)} {what}{hint}")

    # -- save ---------------------------------------------------------------------------

    def save(self, iteration: int, state: Any, cfg: TrainConfig, hparams: HParams,
             metrics: Mapping[str, float] | None = None,
             extra: Mapping[str, Any] | None = None) -> None:
        """Write ``state`` and its metadata as step ``iteration``; blocks until written.

        ``iteration`` must be newer than every saved step. ``metrics`` (scalars) rank steps
        for ``best_metric`` and are stored in the metadata; ``extra`` is any JSON-able dict
        (run options, sweep member labels, ...). On failure raises :class:`CheckpointError`
        and leaves earlier steps untouched.
        """
        if self.read_only:
            raise CheckpointError(f"cannot save step {iteration}: {self.directory} was "
                                  "opened read-only")
        if isinstance(iteration, bool) or not isinstance(iteration, (int, np.integer)) \
                or iteration < 0:
            raise ValueError(f"iteration={iteration!r} is invalid; allowed: an integer >= 0")
        iteration = int(iteration)
        latest = self.latest_step()
        if latest is not None and iteration <= latest:
            raise CheckpointError(
                f"cannot save step {iteration} in {self.directory}: step {latest} is already "
                "saved and steps must increase (delete newer steps first to branch off)")
        metrics = {k: float(v) for k, v in (metrics or {}).items()}
        if self.best_metric is not None and metrics and self.best_metric not in metrics:
            raise ValueError(f"metrics lack best_metric {self.best_metric!r}; "
                             f"given: {sorted(metrics)}")
        arrays, manifest = _flatten_state(state)
        meta = {
            "format": FORMAT, "version": __version__, "iteration": iteration,
            "config": _config_json(cfg), "hparams": _hparams_json(hparams),
            "metrics": metrics, "extra": _jsonable(dict(extra or {}), "extra"),
            "leaves": manifest,
        }
        args = ocp.args.Composite(**{_STATE: ocp.args.StandardSave(arrays),
                                     _META: ocp.args.JsonSave(meta)})
        before = set(threading.enumerate())
        try:
            self._manager.save(iteration, args=args, metrics=metrics or None, force=True)
            self._manager.wait_until_finished()
        except Exception as e:  # I/O failures surface as assorted types
            # A failed item leaves orbax's writer threads for the others running; let them
            # end before anything (a retry, a cleanup) touches the temporary directory.
            for t in set(threading.enumerate()) - before:
                if type(t).__module__.startswith("orbax."):
                    t.join(timeout=120.0)
            self._manager.reload()
            raise CheckpointError(f"could not write checkpoint step {iteration} to "
                                  f"{self.step_path(iteration)}: {_summary(e)}") from e

    # -- restore ------------------------------------------------------------------------

    def metadata(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata of ``step`` (default: latest) without reading any array."""
        step = self._resolve(step)
        if not (self.step_path(step) / _META).is_dir():
            raise self._read_error(step, f"is not a mimex_jax checkpoint: it has no '{_META}' "
                                         "item (written by mimex_jax.checkpoint.Checkpointer)")
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()}))
            meta = dict(restored[_META])
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        except Exception as e:  # missing/cut JSON surfaces as assorted types
            raise self._read_error(step, f"has unreadable metadata: {_summary(e)}") from e
        meta["step"] = step
        return meta

    def _resolve(self, step: int | None) -> int:
        if step is None:
            self._require_step(None)
            return self.all_steps()[-1]
        self._require_step(step)
        return step

    def restore(self, template_state: Any, cfg: TrainConfig | None = None,
                step: int | None = None) -> tuple[Any, HParams, dict[str, Any]]:
        """Restore ``step`` (default: latest) into the structure of ``template_state``.

        ``template_state`` is a state or its shapes (``jax.eval_shape(init, key, hp)``; for
        a sweep, of the vmapped ``init``). Returns ``(state, hparams, meta)`` with ``meta``
        as from :meth:`metadata`. Raises ``ValueError`` when ``cfg`` differs from the saved
        config in any field but ``total_steps`` (which only warns), or when the template's
        leaves (paths, shapes, dtypes) differ; :class:`CheckpointError` when the step is
        missing, unreadable or corrupt. A corrupt latest step is not skipped silently: the
        error lists the other steps, and ``step=`` restores one of them.
        """
        meta = self.metadata(step)
        step = meta["step"]
        if cfg is not None:
            _check_config(meta["config"], cfg)
        given, treedef, leaves = _manifest_of(template_state)
        saved = meta["leaves"]
        _check_template(saved, given)
        if meta["version"] != __version__:
            warnings.warn(f"checkpoint {self.step_path(step)} was written by mimex_jax "
                          f"{meta['version']}, this is {__version__}", stacklevel=2)
        # Read to host memory, check, then place each leaf as the template's leaf is placed.
        host_items = {}
        for i, entry in enumerate(saved):
            shape = tuple(entry["shape"])
            if "key_impl" in entry:
                tail, dtype = _key_data_spec(entry["key_impl"])
                shape = shape + tail
            else:
                dtype = jnp.dtype(entry["dtype"])
            host_items[_leaf_name(i)] = np.empty(shape, dtype)
        empty = {_leaf_name(i) for i, entry in enumerate(saved) if entry.get("empty")}
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**{
                _STATE: ocp.args.StandardRestore(
                    {k: v for k, v in host_items.items() if k not in empty})}))
            arrays = {**restored[_STATE], **{k: host_items[k] for k in empty}}
            for i, entry in enumerate(saved):
                name, want = _leaf_name(i), host_items[_leaf_name(i)]
                host = np.asarray(arrays[name], order="C")
                if host.shape != want.shape or host.dtype != want.dtype:
                    raise ValueError(f"leaf {entry['path']} reads as {host.shape} {host.dtype}, "
                                     f"its manifest says {want.shape} {want.dtype}")
                if entry["crc32"] is not None and zlib.crc32(host.tobytes()) != entry["crc32"]:
                    raise ValueError(f"leaf {entry['path']} fails its CRC-32 check")
                arrays[name] = host
        except Exception as e:  # corrupt files surface as assorted types
            raise self._read_error(step, f"is unreadable or corrupt: {_summary(e)}") from e
        out = []
        for i, (entry, leaf) in enumerate(zip(saved, leaves, strict=True)):
            arr = _place(arrays[_leaf_name(i)], leaf)
            if "key_impl" in entry:
                arr = jax.random.wrap_key_data(arr, impl=entry["key_impl"])
            elif _is_weak(leaf):
                arr = _weakly_typed(arr)
            out.append(arr)
        state = jax.tree_util.tree_unflatten(treedef, out)
        return state, _hparams_from_json(meta["hparams"]), meta

    def close(self) -> None:
        """Release orbax's resources (background threads)."""
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_weak(leaf: Any) -> bool:
    """Whether the template leaf is weakly typed (a Python number, or marked weak)."""
    if isinstance(leaf, (bool, int, float, complex)):
        return True
    return bool(getattr(leaf, "weak_type", False))


def _place(host: np.ndarray, leaf: Any) -> jax.Array:
    """``host`` on the device(s) of the template ``leaf``.

    An explicit sharding (a committed array's, or a ``ShapeDtypeStruct``'s) is kept;
    otherwise the array goes uncommitted to the default device, as ``jit`` outputs are:
    ``jit`` caches on commitment, so a committed copy would recompile the step function.
    A sharding that spans several processes gets a global array of which each process
    places only its own shards.
    """
    sharding = None
    if isinstance(leaf, jax.ShapeDtypeStruct) and leaf.sharding is not None:
        sharding = leaf.sharding
    elif isinstance(leaf, jax.Array) and leaf.committed:
        sharding = leaf.sharding
    if sharding is None:
        return jnp.asarray(host)
    if not sharding.is_fully_addressable:
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])
    return jax.device_put(host, sharding)


def _weakly_typed(arr: jax.Array) -> jax.Array:
    """``arr`` weakly typed, as the template says, when its dtype is a default one.

    Arrays read from disk are strongly typed; a state leaf computed from Python scalars is
    weak, and a changed type would make ``jit`` recompile on the restored state. A weak
    array exists through the public API only for the default dtypes (those of Python
    numbers); other leaves are returned unchanged (same values, strongly typed).
    """
    zero = {"f": 0.0, "i": 0, "b": False, "c": 0j}.get(arr.dtype.kind)
    weak = jnp.asarray(zero) if zero is not None else None
    if weak is None or weak.dtype != arr.dtype:
        return arr
    return jnp.broadcast_to(weak, arr.shape).at[...].set(arr)  # keeps the operand's type


def _key_data_spec(impl: str) -> tuple[tuple[int, ...], Any]:
    """Trailing shape and dtype of ``key_data`` for keys of implementation ``impl``."""
    data = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0, impl=impl)))
    return tuple(data.shape), data.dtype


def read_metadata(directory: str | os.PathLike, step: int | None = None) -> dict[str, Any]:
    """Config, hparams, version, metrics, extra and manifest of ``step`` (default latest).

    Reads only the JSON; raises :class:`CheckpointError` when ``directory`` holds no
    readable checkpoint.
    """
    ckpt = Checkpointer(directory, read_only=True)
    try:
        return ckpt.metadata(step)
    finally:
        ckpt.close()
