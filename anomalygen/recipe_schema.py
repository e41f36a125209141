"""Check a whole recipe before anything is written: every key's type and range.

The schema is DERIVED from the shipped recipe files (recipes/*.yaml), so a key that ships
in them is known and typed without touching this module: a `difficulty` key added to
anomaly-shapenet.yaml, or a detector section added to detectors.yaml, is picked up
automatically. From each shipped value:

    bool / int / float / str      the same kind (an int is accepted where a float ships)
    [lo, hi] of numbers           a range pair: two numbers, lo <= hi (ints stay ints)
    list of strings               a list of strings
    mapping                       its keys, checked recursively; a key not shipped is an
                                  error naming the closest known key (difflib)
    a number >= 0                 must stay >= 0 (negative sizes, ratios, counts are errors)
    null                          anything (see NULLABLE for the kinds that replace it)

On top of that, RULES adds what a shipped value cannot say (ratios in [0, 1], seeds that
numpy accepts, keys that take one of several kinds). Every number must be finite.

Sections of typed detector settings (anomalygen.detectors.settings, checked by the
detector itself, which names unknown keys the same way) are skipped here by name:
`check_recipe(rec, "detectors", typed_sections=available_detectors())`.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from functools import lru_cache
from typing import Any

import yaml

from anomalygen.errors import RecipeError
from anomalygen.recipes import builtin_recipes

ANY = object()
SEED = ("int", 0, 2 ** 32 - 1)
UNIT = ("num", 0.0, 1.0)
POSITIVE_UNIT = ("num", 0.0, 1.0, "above")  # "above": the lower bound itself is not allowed

# recipe kind -> {dotted key pattern (fnmatch): rule}. A rule is ("int"|"num", lo, hi) for numbers
# (each item of a pair), ("oneof", values...), or ("kinds", kind, ...) for keys that take several kinds.
RULES: dict[str, dict[str, tuple]] = {
    "anomaly-shapenet": {
        "seed": SEED, "workers": ("int", 1, 1024),
        "dataset.classes": ("kinds", "int>=1", "strlist"),
        "dataset.train_per_class": ("int", 0, 100000), "dataset.test_per_class": ("int", 0, 100000),
        "dataset.normal_test_fraction": UNIT, "dataset.points": ("int", 1, 10 ** 7),
        "dataset.write_meshes": ("oneof", "normal", "all", "none", True, False),
        "shapes.source": ("kinds", "str", "null"),
        "shapes.max_edge": ("num", 1e-4, 1.0), "shapes.voxel_pitch": ("num", 1e-4, 1.0),
        "shapes.max_repair_tau": ("num", 0.0, 1e6),
        "labels.tau": POSITIVE_UNIT, "labels.rim_distance": POSITIVE_UNIT, "labels.anomaly_ratio": UNIT,
        "labels.max_retries": ("int", 0, 50), "labels.accept_factor": ("num", 1.0, 1e6),
        "defects.*.target_ratio": POSITIVE_UNIT, "defects.*.segments": ("int", 3, 10000),
        "defects.*.max_wall_fraction": UNIT, "defects.*.extremity_quantile": UNIT,
        "defects.*.min_share_beyond_tau": UNIT,
    },
    "das3d": {
        "seed": SEED, "size": ("int", 0, 4096), "per_image": ("int", 1, 1000),
        "perlin.t_p": UNIT, "perlin.persistence": UNIT, "perlin.octaves": ("int", 1, 8),
        "depth.p_z": UNIT, "depth.t_h": UNIT, "depth.anomaly_ratio": UNIT, "depth.max_tries": ("int", 1, 1000),
        "kernel.alpha": ("num", -10.0, 10.0), "kernel.sigma": ("num", 0.3, 64.0),
        "rgb.beta": UNIT, "dropout.p_d": UNIT, "foreground.border": ("num", 0.01, 0.5),
    },
    "render-mvtec3d": {
        "seed": SEED, "size": ("int", 16, 4096), "max_tries": ("int", 1, 100), "gt_tau": UNIT,
        "min_gt_pixels": ("int", 1, 10 ** 6), "counts.train": ("int", 1, 10000),
        "object.size": ("num", 1e-4, 100.0), "camera.fov_deg": ("num", 5.0, 120.0),
        "camera.distance": ("num", 0.01, 100.0), "background.tilt": ("num", 0.0, 0.5),
    },
    "detectors": {
        "run.threads": ("kinds", "int>=1", "null"), "run.aupro_thresholds": ("kinds", "int>=1", "null"),
        "run.aupro_fpr_limit": POSITIVE_UNIT, "run.device": ("kinds", "str"),
        "run.precision": ("oneof", "auto", "32-true", "bf16-mixed"),
    },
}
# a free mapping in one recipe that overrides another recipe (checked as a partial recipe of that kind)
NESTED = {("das3d", "render"): "render-mvtec3d"}


def shipped(kind: str) -> dict:
    """The shipped recipe `kind` as a dict (the schema's source)."""
    paths = builtin_recipes()
    if kind not in paths:
        raise RecipeError(f"no shipped recipe {kind!r}; shipped: {', '.join(sorted(paths))}")
    return _load(str(paths[kind]))


@lru_cache(maxsize=None)
def _load(path: str) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def known_keys(kind: str) -> list[str]:
    """Every dotted key of the shipped recipe `kind` (leaves and sections)."""
    out: list[str] = []

    def walk(node, prefix):
        for k, v in node.items():
            out.append(prefix + str(k))
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
    walk(shipped(kind), "")
    return out


def closest_key(key: str, known: list[str]) -> str:
    """The known key most like `key` (difflib): among its siblings when its parent section is
    known, else among every dotted key."""
    parent = key.rpartition(".")[0]
    siblings = [k for k in known if k.rpartition(".")[0] == parent]
    pool = siblings if siblings and (not parent or parent in known) else known
    best = difflib.get_close_matches(key, pool, n=1, cutoff=0.0)
    return best[0] if best else ""


def check_recipe(recipe: dict, kind: str, typed_sections=(), schema_from: str | None = None) -> dict:
    """Raise RecipeError naming the first key whose type or range is wrong or that the shipped
    recipe `kind` does not have; returns `recipe`. `typed_sections` are skipped (their owners
    check them); missing keys are left to the code that reads them. `schema_from` names another
    shipped recipe to take the keys from (a command run with `--recipe <a shipped variant>`, e.g.
    a tiny one), while the range RULES stay those of `kind`."""
    source = schema_from if schema_from in builtin_recipes() else kind
    _walk(recipe, shipped(source), kind, "", set(typed_sections), known_keys(source))
    return recipe


def _walk(node: dict, schema: dict, kind: str, prefix: str, typed: set, known: list[str], shown: str = "") -> None:
    """`prefix`: the dotted path inside recipe `kind`; `shown`: what precedes it in messages (a nested recipe)."""
    for key, value in node.items():
        if str(key).startswith("_"):
            continue  # bookkeeping (`_source`)
        try:
            _key(key, value, schema, kind, prefix, typed, known)
        except RecipeError as exc:
            if shown:
                msg = str(exc).replace("recipe key '", f"recipe key '{shown}", 1).replace("mean '", f"mean '{shown}")
                raise RecipeError(msg) from None
            raise


def _key(key, value, schema: dict, kind: str, prefix: str, typed: set, known: list[str]) -> None:
    path = prefix + str(key)
    if not prefix and key in typed:
        if value is not None and not isinstance(value, dict):
            raise RecipeError(f"recipe key {path!r}: expected a mapping of settings, got {_show(value)}")
        return
    if key not in schema:
        names = known + (sorted(typed) if not prefix else [])
        raise RecipeError(f"unknown recipe key '{path}'; did you mean '{closest_key(path, names)}'?")
    nested = NESTED.get((kind, path))
    if nested is not None:
        if not isinstance(value, dict):
            raise RecipeError(f"recipe key {path!r}: expected a mapping (overrides of the {nested} recipe), "
                              f"got {_show(value)}")
        _walk(value, shipped(nested), nested, "", set(), known_keys(nested), shown=path + ".")
        return
    _check_value(value, schema[key], kind, path, typed, known)


def _rule(kind: str, path: str):
    rules = RULES.get(kind, {})
    if path in rules:
        return rules[path]
    for pattern, rule in rules.items():
        if fnmatch.fnmatchcase(path, pattern):
            return rule
    return None


def _check_value(value: Any, ship: Any, kind: str, path: str, typed: set, known: list[str]) -> None:
    rule = _rule(kind, path)
    if rule is not None and rule[0] == "kinds":
        for k in rule[1:]:
            if _is_kind(value, k):
                return
        raise RecipeError(f"recipe key {path!r}: expected {' or '.join(_KIND_WORDS[k] for k in rule[1:])}, "
                          f"got {_show(value)}")
    if rule is not None and rule[0] == "oneof":
        if not any(value == r and type(value) is type(r) for r in rule[1:]):
            words = [str(r).lower() if isinstance(r, bool) else str(r) for r in rule[1:]]
            raise RecipeError(f"recipe key {path!r}: expected one of {', '.join(words)}, got {_show(value)}")
        return
    if isinstance(ship, dict):
        if not isinstance(value, dict):
            raise RecipeError(f"recipe key {path!r}: expected a section (mapping of keys), got {_show(value)}")
        if ship:
            _walk(value, ship, kind, path + ".", typed, known)
        return
    if ship is None:
        return  # shipped as null: no kind to hold it to
    if isinstance(ship, bool):
        if not isinstance(value, bool):
            raise RecipeError(f"recipe key {path!r}: expected true or false, got {_show(value)}")
        return
    if isinstance(ship, str):
        if not isinstance(value, str):
            raise RecipeError(f"recipe key {path!r}: expected a word (text), got {_show(value)}")
        return
    if isinstance(ship, (int, float)):
        _number(value, isinstance(ship, int), ship >= 0, rule, path)
        return
    if isinstance(ship, list):
        if ship and all(isinstance(v, str) for v in ship):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RecipeError(f"recipe key {path!r}: expected a list of names, got {_show(value)}")
            if not value:
                raise RecipeError(f"recipe key {path!r}: expected at least one name, got an empty list")
            return
        if len(ship) == 2 and all(_is_number(v) for v in ship):
            if not isinstance(value, list) or len(value) != 2:
                raise RecipeError(f"recipe key {path!r}: expected a range [min, max] of two numbers, got {_show(value)}")
            ints = all(isinstance(v, int) for v in ship)
            for v in value:
                _number(v, ints, min(ship) >= 0, rule, path)
            if value[0] > value[1]:
                raise RecipeError(f"recipe key {path!r}: range {value} has min > max; write it as [{value[1]}, {value[0]}]")
            return
        if not isinstance(value, list):
            raise RecipeError(f"recipe key {path!r}: expected a list, got {_show(value)}")


def _number(v: Any, integer: bool, nonneg: bool, rule, path: str) -> None:
    want = "a whole number" if integer or (rule and rule[0] == "int") else "a number"
    if not _is_number(v) or (integer or rule and rule[0] == "int") and not isinstance(v, int):
        raise RecipeError(f"recipe key {path!r}: expected {want}, got {_show(v)}")
    if not math.isfinite(v):
        raise RecipeError(f"recipe key {path!r}: expected a finite number, got {v!r}")
    if rule is not None and rule[0] in ("int", "num"):
        lo, hi = rule[1], rule[2]
        above = len(rule) > 3 and rule[3] == "above"
        if not (lo < v if above else lo <= v) or not v <= hi:
            low = f"above {lo:g}" if above else f"at least {lo:g}" if isinstance(lo, float) else f"at least {lo}"
            raise RecipeError(f"recipe key {path!r}: {v!r} is out of range; it must be {low} and at most "
                              f"{hi:g}" if isinstance(hi, float) else f"recipe key {path!r}: {v!r} is out of range; "
                              f"it must be {low} and at most {hi}")
    elif nonneg and v < 0:
        raise RecipeError(f"recipe key {path!r}: {v!r} is negative; it must be 0 or more")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_KIND_WORDS = {"int>=1": "a whole number >= 1", "strlist": "a list of names", "str": "a word (text)", "null": "null"}


def _is_kind(v: Any, k: str) -> bool:
    if k == "int>=1":
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1
    if k == "strlist":
        return isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)
    if k == "str":
        return isinstance(v, str)
    if k == "null":
        return v is None
    raise ValueError(k)


def _show(v: Any) -> str:
    """A value as the user wrote it in YAML, with its kind in words (never a Python class name)."""
    words = {bool: "true/false", int: "a whole number", float: "a number", str: "text", list: "a list",
             dict: "a mapping", type(None): "null"}
    return f"{v!r} ({words.get(type(v), 'a value')})" if not isinstance(v, (dict, list)) else f"{words[type(v)]} {v!r}"
