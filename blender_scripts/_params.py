"""A defect's parameters and where on the object it goes.

Runs INSIDE Blender. Every parameter of a job is optional: `Params` takes a
given value or draws a missing one from the job's seed (lengths relative to the
object's bounding-box diagonal L) and records what it used, so the result
reports every realized value. `site` and `path_start` place the defect the same
way: given, or drawn from the seed.
"""

from __future__ import annotations

import math

import bpy  # noqa: F401,I001  (first: the bpy module provides mathutils)
import numpy as np
from mathutils import Vector

from _scene import bvh_of, vertices
from _surface import surface_point, tangent_basis, unit


class Params:
    """Realized parameters: given values win, missing ones are drawn from the seed."""

    def __init__(self, given: dict, rng: np.random.Generator, scale: float):
        self.given, self.rng, self.scale, self.out = dict(given or {}), rng, scale, {}

    def length(self, key: str, lo_rel: float, hi_rel: float) -> float:
        """A length: given absolute value, or given '<key>_rel' fraction of L, or drawn in [lo, hi]*L."""
        if key in self.given:
            v = float(self.given[key])
        elif key + "_rel" in self.given:
            v = float(self.given[key + "_rel"]) * self.scale
        else:
            v = float(self.rng.uniform(lo_rel, hi_rel)) * self.scale
        self.out[key] = v
        return v

    def number(self, key: str, lo: float, hi: float) -> float:
        v = float(self.given[key]) if key in self.given else float(self.rng.uniform(lo, hi))
        self.out[key] = v
        return v

    def choice(self, key: str, options) -> str:
        v = str(self.given[key]) if key in self.given else str(options[self.rng.integers(len(options))])
        if v not in options:
            raise ValueError(f"{key}={v!r}: expected one of {', '.join(options)}")
        self.out[key] = v
        return v

    def vector(self, key: str, default) -> np.ndarray:
        v = np.asarray(self.given[key], float) if key in self.given else np.asarray(default, float)
        self.out[key] = [float(x) for x in v]
        return v


def object_scale(ob) -> tuple[float, np.ndarray, np.ndarray]:
    co = vertices(ob)
    lo, hi = co.min(0), co.max(0)
    return float(np.linalg.norm(hi - lo)), (lo + hi) / 2, co


def site(ob, P: Params) -> tuple[np.ndarray, np.ndarray]:
    """Defect centre on the surface and its outward normal (given or drawn)."""
    p, n = surface_point(ob, P.rng)
    c = P.vector("center", p)
    if "center" in P.given:   # snap a given centre onto the surface
        loc, nrm, _, _ = bvh_of(ob).find_nearest(Vector(c))
        c, n = np.array(loc), np.array(nrm)
        P.out["center"] = [float(x) for x in c]
    return c, unit(P.vector("normal", n))


def path_start(ob, P: Params):
    """Object scale, a surface site, its normal and a tangent start direction for a surface path
    (drawn from the job's angle unless it gives a direction)."""
    L, _, _ = object_scale(ob)
    c, n = site(ob, P)
    t1, t2 = tangent_basis(n)
    ang = P.number("angle", 0, 2 * math.pi)
    d0 = unit(P.vector("direction", math.cos(ang) * t1 + math.sin(ang) * t2))
    d0 = unit(d0 - np.dot(d0, n) * n)
    return L, c, n, d0
