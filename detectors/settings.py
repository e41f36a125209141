"""Typed detector settings: a recipe section (a dict) checked into a frozen dataclass.

A detector declares its settings once, as a dataclass whose fields carry their defaults
and, for numbers, their allowed range (`bounded`). `from_section` fills it from the
recipe section and raises RecipeError for unknown keys, wrong types and out-of-range
values, naming the full key (`patchae.train.lr`), so a bad `--set` fails before anything
is written. A settings class may check relations between its fields in a
`validate(prefix)` method (called after it is filled). `as_section` gives the realized
dict back (defaults filled in): what run.json records and a saved detector reloads from.

    @dataclass(frozen=True)
    class MySettings:
        n_points: int = bounded(1024, 16, 10**6)
        train: TrainConfig = field(default_factory=TrainConfig)

    cfg = from_section(MySettings, recipe.get("mydet", {}), "mydet")
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, TypeVar, Union

from anomalygen.errors import RecipeError

T = TypeVar("T")
RANGE = "range"


def bounded(default, lo: float, hi: float):
    """A dataclass field with a default and an inclusive [lo, hi] range (numbers, or each item of a tuple)."""
    return dataclasses.field(default=default, metadata={RANGE: (lo, hi)})


def from_section(cls: type[T], section: dict | None, prefix: str, base: T | None = None) -> T:
    """`cls` built from the recipe `section`: absent keys keep their value in `base` (default: the
    class defaults; for a nested section, the enclosing default's value), anything else is checked."""
    base = cls() if base is None else base
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise RecipeError(f"{prefix} must be a mapping, got {section!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - set(fields))
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(fields), n=1, cutoff=0.0)
        raise RecipeError(f"unknown setting {prefix}.{unknown[0]}; did you mean {prefix}.{near[0] if near else ''}? "
                          f"(known: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in section.items():
        path = f"{prefix}.{name}"
        if dataclasses.is_dataclass(hints[name]):
            values[name] = from_section(hints[name], value, path, getattr(base, name))
        else:
            values[name] = _check(value, hints[name], fields[name].metadata.get(RANGE), path)
    settings = dataclasses.replace(base, **values)
    validate = getattr(settings, "validate", None)
    if validate is not None:
        validate(prefix)
    return settings


def as_section(settings) -> dict:
    """The realized settings as plain data (tuples become lists), the shape a recipe section has."""
    def plain(x):
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x
    return plain(dataclasses.asdict(settings))


def _check(value: Any, hint, bounds, path: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check(value, inner, bounds, path)
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{path} = {value!r}: expected one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{path} = {value!r}: expected a list")
        return tuple(_check(v, args[0], bounds, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{path} must be true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise RecipeError(f"{path} = {value!r}: expected a string")
        return value
    if hint in (int, float):
        ok = isinstance(value, int) if hint is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or bounds is not None and not bounds[0] <= value <= bounds[1]:
            expected = "an integer" if hint is int else "a number"
            within = f" in [{bounds[0]}, {bounds[1]}]" if bounds is not None else ""
            raise RecipeError(f"{path} = {value!r}: expected {expected}{within}")
        return hint(value)
    raise TypeError(f"{path}: unsupported settings type {hint!r}")
