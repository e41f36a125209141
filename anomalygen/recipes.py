"""Recipes: YAML files that hold every default a command uses.

`load_recipe("anomaly-shapenet")` finds `recipes/anomaly-shapenet.yaml` (shipped
with the package); a path loads a user's own file. Each consumer turns its section
into typed settings and validates ranges (see `require`).
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from anomalygen.errors import RecipeError


def builtin_recipes() -> dict[str, Path]:
    """Names and paths of the recipes shipped in recipes/."""
    root = resources.files("anomalygen.recipe_files")
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file() or os.sep in str(name_or_path):
        if not p.is_file():
            raise RecipeError(f"recipe file {p} does not exist")
        return p
    known = builtin_recipes()
    if str(name_or_path) not in known:
        raise RecipeError(f"no recipe named {name_or_path!r}; built-in: {', '.join(sorted(known)) or 'none'}")
    return known[str(name_or_path)]


def load_recipe(name_or_path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> dict:
    """Load a recipe as a dict; `overrides` maps dotted keys ('defects.bulge.height') to values."""
    path = recipe_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping at the top level")
    data = copy.deepcopy(data)
    for key, value in (overrides or {}).items():
        set_key(data, key, value)
    data.setdefault("_source", str(path))
    return data


def parse_overrides(items) -> dict[str, Any]:
    """`--set KEY=VALUE` items -> {dotted key: YAML-parsed value} (what `load_recipe` takes as overrides)."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise RecipeError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
    return out


def get_key(recipe: dict, dotted: str, default: Any = ...) -> Any:
    node: Any = recipe
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is ...:
                raise RecipeError(f"recipe {recipe.get('_source', '')} lacks key {dotted!r}")
            return default
        node = node[part]
    return node


def set_key(recipe: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = recipe
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RecipeError(f"cannot set {dotted!r}: {part!r} is not a mapping")
    node[parts[-1]] = value


def require(recipe: dict, dotted: str, kind: type | tuple = (int, float), lo: float | None = None,
            hi: float | None = None) -> Any:
    """Fetch a key and check its type and (for numbers, or each item of a [lo, hi] pair) its range."""
    value = get_key(recipe, dotted)
    items = value if isinstance(value, list) else [value]
    for v in items:
        if not isinstance(v, kind) or isinstance(v, bool) and kind in ((int, float), int, float):
            raise RecipeError(f"recipe key {dotted!r}: expected {_kind_words(kind)}, got {v!r}")
        if lo is not None and v < lo or hi is not None and v > hi:
            raise RecipeError(f"recipe key {dotted!r}: {v!r} outside [{lo}, {hi}]")
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value) and value[0] > value[1]:
        raise RecipeError(f"recipe key {dotted!r}: range {value} has min > max")
    return value


def _kind_words(kind) -> str:
    """'a number', 'a whole number', 'text' ... for a type or tuple of types (never a Python class name)."""
    words = {int: "a whole number", float: "a number", str: "text", bool: "true or false", list: "a list",
             dict: "a mapping"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "a number"
    return " or ".join(words.get(k, getattr(k, "__name__", str(k))) for k in kinds)
