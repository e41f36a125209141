"""How big a defect is and where it goes: the sizing every engine shares.

Both engines (numpy operators in this package, Blender in anomalygen.blender) size a
defect with these functions, so a recipe means the same thing whichever engine runs it.
Every length is a fraction of the object's bounding-box diagonal. The keys a driver
passes besides the recipe's own:

    target_ratio   fraction of the surface the labels should cover (sizes the defect)
    size_scale     multiplier on that size, adjusted by the driver's retry loop
    tau, rim_distance   the labeler's thresholds (fractions of the diagonal), so a defect
                   can be sized by the region where its displacement exceeds tau
"""

from __future__ import annotations

import numpy as np
import trimesh

from anomalygen import geometry as g
from anomalygen.errors import AnomalygenError
from anomalygen.mesh.result import REMOVAL

# keys the driver controls; they come after the drawn recipe keys in a realized parameter set
CONTROL_KEYS = ("size_scale", "tau", "rim_distance")


class DefectParams(dict):
    """Realized parameters; a missing key is a clear error naming it instead of a KeyError."""

    defect = ""

    def __missing__(self, key):
        raise self.missing(key)

    def missing(self, key: str) -> AnomalygenError:
        return AnomalygenError(f"defect {self.defect!r} needs the parameter {key!r}; the recipe's "
                               f"defects.{self.defect} section holds every one (anomalygen.builds.settings.defect_params)")


def realize_params(defect: str, params: dict, rng: np.random.Generator) -> DefectParams:
    """Draw every [lo, hi] range of `params` once, in key order; keep plain values as they are.

    `params` is complete: a recipe's `defects.<defect>` section plus `tau` and `rim_distance`
    (drivers load recipes; operators never do). `size_scale` defaults to 1."""
    out = DefectParams()
    out.defect = defect
    for k in sorted(k for k in params if k not in CONTROL_KEYS):
        v = params[k]
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
            lo, hi = float(v[0]), float(v[1])
            out[k] = int(rng.integers(int(lo), int(hi) + 1)) if all(isinstance(x, int) for x in v) else float(rng.uniform(lo, hi))
        else:
            out[k] = v
    out["size_scale"] = params.get("size_scale", 1.0)
    for k in ("tau", "rim_distance"):
        if k not in params:
            raise out.missing(k)
        out[k] = params[k]
    if "target_ratio" not in out:
        raise out.missing("target_ratio")
    return out


def target_area(mesh: trimesh.Trimesh, p: dict) -> float:
    """Surface area the labels of this defect should cover."""
    return float(p["target_ratio"]) * float(p["size_scale"]) * float(mesh.area)


# a bump or dent is at least this many tau high unless its parameters say otherwise (the difficulty
# dial lowers it): lower ones label only a small core of a wide, flat footprint
MIN_HEIGHT_TAU = 2.5


def bump_plan(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator, sign: float):
    """Where a bulge (sign +1) or dent (-1) goes and how high: (centre, normal, height, tau,
    labeled radius). Draws only the surface point from `rng`. A dent is never deeper than
    `max_wall_fraction` of the local wall; the labeled radius holds the target area. Each
    engine then widens its falloff so the displacement equals tau exactly at that radius."""
    D = g.diagonal(mesh)
    c, n, _ = g.pick_surface_point(mesh, rng)
    h = float(p["height"] if sign > 0 else p["depth"]) * D
    if sign < 0:  # never push through the wall: keep a fraction of the local thickness
        h = min(h, float(p["max_wall_fraction"]) * g.wall_thickness(mesh, c, n))
    tau = float(p["tau"]) * D
    h = max(h, float(p.get("min_height_tau", MIN_HEIGHT_TAU)) * tau)
    r_lab = g.region_radius(mesh, c, n, target_area(mesh, p))
    return c, n, h, tau, r_lab


def bending_frame(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator):
    """Where a bend happens, shared by every engine: direction u, plane offset s0 (the part
    beyond it holds the target area x region_factor), transition width w, a pivot on the
    plane and a hinge axis in it. Draws u then the axis from `rng`."""
    D = g.diagonal(mesh)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    u = rng.normal(size=3)
    u /= np.linalg.norm(u)
    s_face = mesh.triangles_center @ u
    order = np.argsort(-s_face)
    cum = np.cumsum(mesh.area_faces[order])
    want = min(target_area(mesh, p) * float(p["region_factor"]), 0.45 * mesh.area)
    s0 = float(s_face[order][min(int(np.searchsorted(cum, want)), len(order) - 1)])
    w = float(p["transition"]) * D
    s = v @ u
    band = (s >= s0) & (s <= s0 + w)
    pivot = v[band].mean(axis=0) if band.any() else v[np.argmin(np.abs(s - s0))]
    pivot = pivot - ((pivot @ u) - s0) * u  # on the plane
    a = np.cross(u, rng.normal(size=3))
    a /= np.linalg.norm(a)
    return u, s0, w, pivot, a


def hole_size(mesh: trimesh.Trimesh, c: np.ndarray, n: np.ndarray, p: dict) -> tuple[float, float, bool]:
    """Radius, depth and through-ness of a hole at (c, n) whose labels (wall or pit + rim
    bands) cover the target area; shared by every engine. Draws nothing."""
    D = g.diagonal(mesh)
    thick = g.wall_thickness(mesh, c, n)
    depth = float(p["depth"]) * D
    through = thick < depth
    depth = thick * float(p["through_margin"]) if through else depth
    rim = float(p["rim_distance"]) * D
    A = target_area(mesh, p)
    a = 0.0 if through else np.pi
    b = 2 * np.pi * ((thick if through else depth) + 2 * rim)
    r = A / b if a == 0 else (-b + np.sqrt(b * b + 4 * a * A)) / (2 * a)
    r = float(np.clip(r, 0.004 * D, float(p["max_radius"]) * D))  # a drilled hole, not a missing wall
    return r, depth, bool(through)


def break_site(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An outlying surface point and its normal: area-weighted among faces in the top
    `extremity_quantile` along a random direction. Shared by every engine."""
    u = rng.normal(size=3)
    u /= np.linalg.norm(u)
    s = mesh.triangles_center @ u
    weights = (s >= np.quantile(s, 1 - float(p["extremity_quantile"]))).astype(float)
    c, n, _ = g.pick_surface_point(mesh, rng, weights)
    return c, n


def break_size(mesh: trimesh.Trimesh, c: np.ndarray, n: np.ndarray, p: dict) -> float:
    """Radius of the chunk broken off at (c, n) so its labels cover the target area; shared
    by every engine. Draws nothing."""
    D = g.diagonal(mesh)
    A = target_area(mesh, p) * float(p["region_factor"])
    r_solid = g.region_radius(mesh, c, n, A, min_cos=-1.0)  # labels ~ the fracture face
    thick = g.wall_thickness(mesh, c, n)
    if thick < r_solid:  # a thin wall: labels ~ the cut's perimeter x (wall + rim band on both sides)
        r_solid = A / (2 * np.pi * (thick + 2 * float(p["rim_distance"]) * D)) / 0.9
    return float(np.clip(r_solid, 0.01 * D, 0.35 * D))


def groove_plan(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator, defect: str, strokes: int,
                through_ok: bool) -> tuple[np.ndarray, np.ndarray, float, float, int, float]:
    """Where a crack/scratch goes and how big: (centre, normal, width, depth, strokes, stroke
    length) so that its labels cover the target area. Shared by every engine; draws only the
    surface point from `rng`. Too much area for the strokes at their longest widens a crack
    (at most x2) or adds parallel scratch strokes (at most 6)."""
    D = g.diagonal(mesh)
    width = float(p["width"]) * D
    depth = float(p["depth"]) * D
    rim = float(p["rim_distance"]) * D if defect in REMOVAL else 0.0
    c, n, _ = g.pick_surface_point(mesh, rng)
    thick = g.wall_thickness(mesh, c, n)
    if through_ok and thick < depth:
        depth = thick * float(p.get("through_margin", 1.3))
    else:
        depth = min(depth, 0.8 * thick)
    lateral = depth if defect in REMOVAL else 0.5 * depth
    total = target_area(mesh, p) / (width + 2 * rim + 2 * lateral)
    max_len = float(p["max_length"]) * D
    if total > strokes * max_len:  # too much for the drawn strokes at their longest
        if defect in REMOVAL:  # a crack stays one line: widen it (at most x2)
            width *= min(2.0, total / (strokes * max_len))
            total = target_area(mesh, p) / (width + 2 * rim + 2 * lateral)
        else:  # scratches: more parallel strokes
            strokes = int(min(6, np.ceil(total / max_len)))
    length = float(np.clip(total / strokes, 0.03 * D, max_len))
    return c, n, width, depth, strokes, length
