"""Typed detector settings: dataclasses built from a recipe section and checked field by field.

A detector declares its settings as dataclasses whose fields say what they accept:
    setting(default, lo, hi)   a number in [lo, hi]; an integer when the default is one
    flag(default)              true or false
    section(SubSettings)       a nested mapping with settings of its own
and builds them with `from_section(Settings, recipe_section, "name")`: the section is laid
over the defaults, an unknown key is an error naming the known ones, a value of the wrong
type or out of range an error naming its dotted key and range. A settings class may add
checks between fields in a `validate(prefix)` method. `as_dict(settings)` is the realized
config (defaults filled in) that a run records and a saved detector reloads from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field, fields

from anomalygen.errors import RecipeError


def setting(default: int | float, lo: int | float, hi: int | float):
    """A numeric field; an integer default makes it integer-only (a bool is never a number)."""
    kind = int if isinstance(default, int) and not isinstance(default, bool) else (int, float)
    return field(default=default, metadata={"kind": kind, "range": (lo, hi)})


def flag(default: bool):
    return field(default=default, metadata={"kind": bool})


def section(cls):
    """A nested settings dataclass, defaults from its own fields."""
    return field(default_factory=cls, metadata={"section": cls})


def from_section(cls, given, prefix: str):
    """`cls` with the recipe mapping `given` laid over its defaults, every field checked.
    RecipeError on an unknown key, a non-mapping section or a bad value."""
    settings = _overlay(cls, given, prefix)
    check(settings, prefix)
    return settings


def as_dict(settings) -> dict:
    return dataclasses.asdict(settings)


def _overlay(cls, given, prefix: str):
    if not isinstance(given, dict):
        raise RecipeError(f"{prefix} must be a mapping, got {given!r}")
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in given.items():
        if key not in known:
            raise RecipeError(f"unknown setting {prefix}.{key}; known: {', '.join(sorted(known))}")
        sub = known[key].metadata.get("section")
        values[key] = _overlay(sub, value, f"{prefix}.{key}") if sub else value
    return cls(**values)


def check(settings, prefix: str) -> None:
    """Type and range of every field (nested sections included), then the class's own `validate`."""
    for f in fields(settings):
        value, name = getattr(settings, f.name), f"{prefix}.{f.name}"
        kind = f.metadata.get("kind")
        if "section" in f.metadata:
            check(value, name)
        elif kind is bool:
            if not isinstance(value, bool):
                raise RecipeError(f"{name} must be true or false")
        elif "range" in f.metadata:
            lo, hi = f.metadata["range"]
            if isinstance(value, bool) or not isinstance(value, kind) or not lo <= value <= hi:
                raise RecipeError(f"{name} = {value!r}: expected {'an integer' if kind is int else 'a number'} "
                                  f"in [{lo}, {hi}]")
    validate = getattr(settings, "validate", None)
    if validate is not None:
        validate(prefix)
