"""The pydantic layer of the run-config loader (:mod:`mimex_jax.config`).

pydantic checks what is generic about a config: unknown keys, types (with YAML 1.1's
quirks: ``1e6`` and ``3e-4`` arrive as strings), and the ranges and choices of the host-side
and sweep options. The section schemas are generated from the runtime dataclasses'
annotations (:class:`~mimex_jax.trainer.TrainConfig`, :class:`~mimex_jax.rewards.MIMExConfig`,
...), so a new field needs no entry here; their own ``__post_init__`` keeps the rules of the
Python API (ranges, divisibility, registries). pydantic runs only at load time: the trainer
sees the same frozen dataclasses and ``HParams`` pytrees as before.

Every field type carries the words a user reads when a value is refused: ``explained(t,
"an integer", "an integer >= 1")`` turns pydantic's type errors into ``wrong_type`` ("expected
an integer") and its constraint errors into ``invalid`` ("allowed: an integer >= 1"), and
:func:`issues` turns a ``ValidationError`` into ``(key path, message)`` pairs.
"""

import dataclasses
import difflib
import functools
import math
import numbers
import operator
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from annotated_types import Ge, MinLen
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    ValidationError,
    WrapValidator,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = ["Bool", "Float", "Int", "Str", "as_int", "explained", "field_error", "invalid", "issues",
           "mapping_of", "section_model", "settings", "sweep_model", "wrong_type"]

# pydantic error kinds that mean "this is not the right type of value"
_TYPE_ERRORS = frozenset({
    "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "bool_type",
    "bool_parsing", "string_type", "list_type", "tuple_type", "dict_type", "model_type",
    "model_attributes_type", "dataclass_type", "none_required"})
_OURS = frozenset({"wrong_type", "invalid", "unknown_key", "note"})


def invalid(allowed: str, value: Any = dataclasses.MISSING) -> PydanticCustomError:
    """The error of a value of the right type that is out of range (``allowed`` says what
    is allowed); ``value`` replaces the input in the message (e.g. after a conversion)."""
    ctx = {"allowed": allowed}
    if value is not dataclasses.MISSING:
        ctx["value"] = value
    return PydanticCustomError("invalid", "allowed: {allowed}", ctx)


def wrong_type(expected: str) -> PydanticCustomError:
    """The error of a value of the wrong type (``expected`` names the right one)."""
    return PydanticCustomError("wrong_type", "expected {expected}", {"expected": expected})


def explained(tp: Any, expected: str, allowed: str | None = None, *constraints: Any) -> Any:
    """``tp`` restricted by ``constraints`` (annotated-types), refusing in words: a wrong
    type as ``expected``, a failed constraint as ``allowed`` (errors of nested fields that
    are already explained pass through)."""

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError as e:
            kinds = {err["type"] for err in e.errors()}
            if kinds & _OURS:
                raise
            if kinds <= _TYPE_ERRORS:
                raise wrong_type(expected) from None
            if allowed is not None:
                raise invalid(allowed) from None
            raise

    return Annotated[(tp, *constraints, WrapValidator(wrap))]


# ------------------------------------------------------------------ YAML-tolerant scalars


def _number_from_str(v: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` and ``1e6`` as strings; give back numbers for those."""
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return v
    return v


def as_int(v: Any) -> Any:
    """``v`` as an ``int`` if it is one in YAML's or NumPy's/JAX's spelling, else unchanged."""
    v = _number_from_str(v)
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    if not isinstance(v, (bool, float, str)):
        try:
            return operator.index(v)  # NumPy and 0-d JAX integers
        except TypeError:
            pass
    return v


def _as_float(v: Any) -> Any:
    v = _number_from_str(v)
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return float(v)
    return v


def _freeze(v: Any) -> Any:
    """Lists -> tuples (recursively), so the static config stays hashable."""
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, Mapping):
        raise wrong_type("a scalar or a list (nested mappings are not supported)")
    return v


Int = Annotated[int, Strict(), BeforeValidator(as_int)]
Float = Annotated[float, Strict(), BeforeValidator(_as_float)]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Frozen = Annotated[Any, BeforeValidator(_freeze)]
_SCALARS = {int: (Int, "an integer", "integers"), float: (Float, "a number", "numbers"),
            bool: (Bool, "true or false", "booleans"), str: (Str, "a string", "strings")}


def _schema_type(hint: Any) -> tuple[Any, str]:
    """A dataclass annotation -> (the pydantic type that reads it from YAML, its name)."""
    if hint is Any:
        return Frozen, "a scalar or a list"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [_schema_type(a) for a in args if a is not type(None)]
        tp = rest[0][0] if len(rest) == 1 else functools.reduce(operator.or_, (t for t, _ in rest))
        expected = " or ".join(e for _, e in rest)
        if type(None) in args:
            return tp | None, f"null or {expected}"
        return tp, expected
    if origin is tuple and (len(args) == 1 or args[1:] == (Ellipsis,)):
        item = args[0]
        tp = _SCALARS[item][0] if item in _SCALARS else _schema_type(item)[0]
        plural = _SCALARS[item][2] if item in _SCALARS else "values"
        return tuple[tp, ...], f"a list of {plural}"
    if hint in _SCALARS:
        return _SCALARS[hint][:2]
    return hint, f"a value of type {getattr(hint, '__name__', hint)}"  # pydantic reads it


def _none_to_empty(v: Any) -> Any:
    return {} if v is None else v


def mapping_of(tp: Any, path: str) -> Any:
    """A ``{key: value}`` sub-section (``null`` = empty) whose values are ``tp``."""
    return explained(tp, f"a mapping ({path}: {{key: value}})", None,
                     BeforeValidator(_none_to_empty))


# Valid keys of every (sub)section a generated model reads, for the unknown-key message.
VALID_KEYS: dict[str, list[str]] = {}


@functools.cache
def section_model(cls: type, path: str, exclude: tuple[str, ...] = (),
                  special: tuple[tuple[str, Any], ...] = ()) -> type[BaseModel]:
    """A pydantic model of the fields of ``cls`` (a dataclass or NamedTuple) read at ``path``
    from YAML: every field optional (the dataclass default applies), unknown keys refused.
    ``special`` gives the type of some fields explicitly (already :func:`explained`)."""
    hints = typing.get_type_hints(cls)
    names = [n for n in (cls._fields if hasattr(cls, "_fields")
                         else [f.name for f in dataclasses.fields(cls)]) if n not in exclude]
    given = dict(special)
    fields = {}
    for name in names:
        if name in given:
            fields[name] = (given[name], None)
        else:
            tp, expected = _schema_type(hints[name])
            fields[name] = (explained(tp, expected), None)
    VALID_KEYS[path] = names
    return create_model(f"{cls.__name__}Section", __config__=ConfigDict(extra="forbid"),
                        **fields)


def settings(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``data`` with ``model``; the keys given, typed (a ValidationError otherwise)."""
    return model.model_validate(data).model_dump(exclude_unset=True)


# ------------------------------------------------------------------ the sweep section


def _hparam_key(valid: Sequence[str], path: str) -> Any:
    VALID_KEYS[path] = list(valid)

    def check(key: str) -> str:
        if key not in valid:
            raise PydanticCustomError("unknown_key", "unknown key {key}", {"key": key})
        return key

    return Annotated[str, AfterValidator(check)]


def _range_spec(spec: Any) -> list[Any]:
    expected = "[low, high, 'uniform' | 'log'] with low < high (low > 0 for log)"
    if not isinstance(spec, (list, tuple)) or len(spec) not in (2, 3):
        raise wrong_type(expected)
    low, high = _as_float(spec[0]), _as_float(spec[1])
    if not (isinstance(low, float) and isinstance(high, float)):
        raise wrong_type(expected)
    scale = spec[2] if len(spec) == 3 else "uniform"
    if scale not in ("uniform", "log") or not low < high or (scale == "log" and low <= 0):
        raise invalid(expected, list(spec))
    return [low, high, scale]


def sweep_model(hparams: Sequence[str]) -> type[BaseModel]:
    """The ``sweep`` section: ``grid: {hparam: [values]}`` or ``random: {n, seed, ranges}``."""
    grid_key = _hparam_key(hparams, "sweep.grid")
    ranges_key = _hparam_key(hparams, "sweep.random.ranges")
    VALID_KEYS["sweep"] = ["grid", "random"]
    VALID_KEYS["sweep.random"] = ["n", "seed", "ranges"]
    values = explained(list[Float], "a non-empty list of numbers", "a non-empty list of numbers",
                       MinLen(1))

    class Random(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: explained(Int, "an integer >= 1", ">= 1", Ge(1)) | None = None
        seed: explained(Int, "an integer") = 0
        ranges: explained(dict[ranges_key, Annotated[Any, BeforeValidator(_range_spec)]],
                          "a non-empty mapping {hparam: [low, high, uniform|log]}",
                          "a non-empty mapping {hparam: [low, high, uniform|log]}",
                          MinLen(1)) | None = None

        @model_validator(mode="after")
        def _needs_n(self) -> "Random":
            if self.n is None:
                raise PydanticCustomError("note", "sweep.random.n (the number of settings to "
                                                  "draw) is required")
            if self.ranges is None:
                raise PydanticCustomError("note", "sweep.random.ranges (a mapping {hparam: "
                                                  "[low, high, uniform|log]}) is required")
            return self

    class Sweep(BaseModel):
        model_config = ConfigDict(extra="forbid")
        grid: explained(dict[grid_key, values], "a non-empty mapping {hparam: [values]}",
                        "a non-empty mapping {hparam: [values]}", MinLen(1)) | None = None
        random: explained(Random, "a mapping {n, seed, ranges}") | None = None

        @model_validator(mode="after")
        def _one_kind(self) -> "Sweep":
            kinds = [k for k in ("grid", "random") if getattr(self, k) is not None]
            if len(kinds) > 1:
                raise PydanticCustomError("note", "sweep must have exactly one of 'grid' or "
                                                  "'random', got {kinds}", {"kinds": kinds})
            return self

    return Sweep


# ------------------------------------------------------------------ errors in words


def field_error(section: str, error: Exception) -> tuple[str, str]:
    """``(key path, message)`` of a ``ValueError`` raised by a config class while ``section``
    is built. By the house convention such a message starts ``field=value`` (or a dotted
    ``section.field=value``), which names the key."""
    message = str(error)
    m = re.match(r"([\w.]+)=", message)
    if m is None:
        return section, f"{section}: {message}"
    if m.group(1).split(".")[0] == section.split(".")[0]:
        return m.group(1), message  # already the whole path, e.g. hparams.lr=...
    return f"{section}.{m.group(1)}", f"{section}.{message}"


def _unknown_key(path: str) -> str:
    section, _, key = path.rpartition(".")
    valid = VALID_KEYS.get(section, [])
    if not section:
        valid = ["extends", *valid]
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown key {path}{hint}; valid keys of {section or 'the top level'}: "
            f"{sorted(valid)}")


def issues(error: ValidationError, prefix: Sequence[str] = ()) -> list[tuple[str, str]]:
    """The errors of a validation as ``(key path, message)`` pairs, unknown keys first.

    Messages name the key path, the value and what is allowed, e.g.
    ``train.num_envs='abc' has the wrong type; expected an integer``.
    """
    out = []
    for err in error.errors():
        loc = [*prefix, *(str(p) for p in err["loc"] if p != "[key]")]
        path = ".".join(loc)
        ctx = err.get("ctx") or {}
        value = ctx.get("value", err.get("input"))
        kind = err["type"]
        if kind in ("extra_forbidden", "unexpected_keyword_argument", "unknown_key"):
            out.append((0, path, _unknown_key(path)))
        elif kind == "wrong_type":
            out.append((1, path, f"{path}={value!r} has the wrong type; "
                                 f"expected {ctx['expected']}"))
        elif kind == "invalid":
            out.append((1, path, f"{path}={value!r} is invalid; allowed: {ctx['allowed']}"))
        elif kind == "value_error":
            out.append((1, *field_error(path, ctx["error"])))
        elif kind == "note":
            out.append((1, path, err["msg"]))
        else:  # a check of pydantic's own that no explained() type words for us
            out.append((1, path, f"{path}={value!r} is invalid: {err['msg']}"))
    return [(p, m) for _, p, m in sorted(out, key=lambda x: x[0])]
