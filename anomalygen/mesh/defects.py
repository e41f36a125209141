"""The seven defect operators: pure functions of (mesh, params, rng).

    apply_defect(mesh, defect, params, rng) -> DefectResult

`params` may hold a value or a [lo, hi] range per key (a range is drawn with `rng`);
keys that are missing come from the built-in recipe `anomaly-shapenet`
(section `defects.<name>`), so no size constant lives in this file. Every length is
a fraction of the object's bounding-box diagonal. Extra keys the build driver passes:

    target_ratio   fraction of the surface the labels should cover (sizes the defect)
    size_scale     multiplier on that size, adjusted by the driver's retry loop
    tau, rim_distance   the labeler's thresholds (fractions of the diagonal), so the
                   operator can size the region where displacement exceeds tau

Displacement defects (bulge, concavity, bending) move vertices of a refined mesh;
removal defects (hole, break, crack) and the shallow scratch carve the mesh with a
manifold3d boolean, which keeps it watertight. Removal defects return `rim_points`:
points along the border between kept original surface and new cut surface, which
the engine-agnostic labeler (labels.label_points) needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import trimesh

from anomalygen.errors import AnomalygenError
from anomalygen.mesh import geometry as g

DEFECTS = ("bulge", "concavity", "hole", "break", "bending", "crack", "scratch")
REMOVAL = ("hole", "break", "crack")  # labels add the rim rule for these
CARVED = ("hole", "break", "crack", "scratch")  # made with a boolean


@dataclass
class DefectResult:
    """What an engine returns for one defect.

    mesh        the defective mesh (watertight where the operator can keep it so)
    defect      one of DEFECTS
    params      realized parameter values (JSON-serializable)
    rim_points  (M,3) points on the rim of the removed region (removal defects), else None
    moved       (V,) bool: vertices that moved (displacement defects), else None; vertex
                i of `mesh` is vertex i of the input mesh when this is given
    """

    mesh: trimesh.Trimesh
    defect: str
    params: dict[str, Any]
    rim_points: np.ndarray | None = None
    moved: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    changed_bounds: np.ndarray | None = None  # optional (2,3) box holding every changed face

    # `changed_bounds` is a speed hint for the labeler: a point outside it lies on surface the
    # defect did not touch (distance 0 to the original). Engines that cannot tell leave it None.

    @property
    def removal(self) -> bool:
        return self.defect in REMOVAL


@lru_cache(maxsize=1)
def _recipe_defaults() -> dict:
    from anomalygen.recipes import get_key, load_recipe

    return get_key(load_recipe("anomaly-shapenet"), "defects")


def default_params(defect: str) -> dict:
    """The built-in recipe's parameters (ranges) for one defect type."""
    return dict(_recipe_defaults().get(defect, {}))


def _realize(defect: str, params: dict, rng: np.random.Generator) -> dict:
    """Merge recipe defaults under `params` and draw every [lo, hi] range once, in key order."""
    merged = {**default_params(defect), **(params or {})}
    out = {}
    for k in sorted(merged):
        v = merged[k]
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
            lo, hi = float(v[0]), float(v[1])
            out[k] = int(rng.integers(int(lo), int(hi) + 1)) if all(isinstance(x, int) for x in v) else float(rng.uniform(lo, hi))
        else:
            out[k] = v
    out.setdefault("size_scale", 1.0)
    for k in ("target_ratio", "tau", "rim_distance"):
        if k not in out:
            out[k] = _recipe_root_default(k)
    return out


def _recipe_root_default(key: str) -> float:
    from anomalygen.recipes import get_key, load_recipe

    r = load_recipe("anomaly-shapenet")
    if key == "target_ratio":
        lo, hi = get_key(r, "labels.anomaly_ratio")
        return float(np.sqrt(lo * hi))
    return float(get_key(r, f"labels.{key}"))


def _falloff(s: np.ndarray) -> np.ndarray:
    """Smooth bump profile: 1 at the centre, 0 with zero slope and curvature at s = 1."""
    s = np.clip(s, 0.0, 1.0)
    return (1.0 - s * s) ** 3


def _moved_bounds(before: trimesh.Trimesh, after: trimesh.Trimesh, moved: np.ndarray) -> np.ndarray | None:
    """Box around every face that touches a moved vertex, before and after the move."""
    f = np.asarray(before.faces)
    touched = f[moved[f].any(axis=1)].ravel()
    if len(touched) == 0:
        return None
    pts = np.concatenate([np.asarray(before.vertices)[touched], np.asarray(after.vertices)[touched]])
    return np.stack([pts.min(0), pts.max(0)])


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _target_area(mesh: trimesh.Trimesh, p: dict) -> float:
    return float(p["target_ratio"]) * float(p["size_scale"]) * float(mesh.area)


# ---------------------------------------------------------------- displacement defects

def _bump(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator, sign: float) -> DefectResult:
    D = g.diagonal(mesh)
    c, n, _ = g.pick_surface_point(mesh, rng)
    h = float(p["height"] if sign > 0 else p["depth"]) * D
    if sign < 0:  # never push through the wall: keep a fraction of the local thickness
        h = min(h, float(p["max_wall_fraction"]) * g.wall_thickness(mesh, c, n))
    tau = float(p["tau"]) * D
    h = max(h, 2.5 * tau)
    r_lab = g.region_radius(mesh, c, n, _target_area(mesh, p))
    # radius of the falloff so that the displacement equals tau exactly at r_lab
    s_star = np.sqrt(max(1e-6, 1.0 - (tau / h) ** (1.0 / 3.0)))
    R = max(r_lab / s_star, 1e-6)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    vn = np.asarray(mesh.vertex_normals, dtype=np.float64)
    d = np.linalg.norm(v - c, axis=1)
    facing = _smoothstep((vn @ n) / 0.5)  # only the sheet facing like n (not the far wall)
    w = _falloff(d / R) * facing
    moved = w > 0
    disp = h * w
    if sign < 0 and moved.any():
        # the wall thins across a wide dent: cap each vertex by ITS wall, so the dented sheet never
        # comes within 2 tau of the opposite wall (it would read as unmoved there and leave an
        # unlabeled crescent inside the dent) and never pierces it
        thick = g.wall_thicknesses(mesh, v[moved], vn[moved])
        cap = np.maximum(0.0, np.minimum(float(p["max_wall_fraction"]) * thick, thick - 2.0 * tau))
        disp[moved] = np.minimum(disp[moved], cap)
    new = v + sign * disp[:, None] * vn
    out = trimesh.Trimesh(new, mesh.faces.copy(), process=False)
    bounds = _moved_bounds(mesh, out, moved)
    params = {"height" if sign > 0 else "depth": h / D, "radius": R / D, "center": c.tolist(), "normal": n.tolist()}
    return DefectResult(out, "bulge" if sign > 0 else "concavity", params, moved=moved, changed_bounds=bounds)


def bulge(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator) -> DefectResult:
    """Smooth outward normal displacement with a (1 - s^2)^3 falloff."""
    return _bump(mesh, p, rng, +1.0)


def concavity(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator) -> DefectResult:
    """Smooth inward dent; depth capped by the local wall thickness."""
    return _bump(mesh, p, rng, -1.0)


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
    want = min(_target_area(mesh, p) * float(p["region_factor"]), 0.45 * mesh.area)
    s0 = float(s_face[order][min(int(np.searchsorted(cum, want)), len(order) - 1)])
    w = float(p["transition"]) * D
    s = v @ u
    band = (s >= s0) & (s <= s0 + w)
    pivot = v[band].mean(axis=0) if band.any() else v[np.argmin(np.abs(s - s0))]
    pivot = pivot - ((pivot @ u) - s0) * u  # on the plane
    a = np.cross(u, rng.normal(size=3))
    a /= np.linalg.norm(a)
    return u, s0, w, pivot, a


def bending(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator) -> DefectResult:
    """Rotate the part of the object beyond a plane about a hinge axis in that plane.

    Vertices farther than `transition` past the plane move rigidly by `angle_deg`;
    in the transition band the angle ramps up smoothly (smoothstep), so the surface
    stays connected.
    """
    D = g.diagonal(mesh)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    u, s0, w, pivot, a = bending_frame(mesh, p, rng)
    s = v @ u
    theta = np.deg2rad(float(p["angle_deg"])) * rng.choice([-1.0, 1.0])
    t = _smoothstep((s - s0) / w)
    moved = t > 0
    new = v.copy()
    new[moved] = pivot + g.rotation_about(a, theta * t[moved], v[moved] - pivot)
    out = trimesh.Trimesh(new, mesh.faces.copy(), process=False)
    params = {"angle_deg": float(np.rad2deg(theta)), "transition": w / D, "plane_normal": u.tolist(),
              "plane_offset": s0, "hinge_axis": a.tolist(), "pivot": pivot.tolist()}
    return DefectResult(out, "bending", params, moved=moved, changed_bounds=_moved_bounds(mesh, out, moved),
                        info={"rigid": s >= s0 + w, "rotation": (a, theta, pivot)})


# ---------------------------------------------------------------- carved defects

def _carve(mesh: trimesh.Trimesh, cutter, defect: str, params: dict, rim_step: float) -> DefectResult:
    """Subtract `cutter` (a manifold3d.Manifold) and find the rim where cut meets original."""
    body = g.to_manifold(mesh)
    cutter = cutter.as_original()
    cut_id = cutter.original_id()
    res = body - cutter
    if res.is_empty() or res.num_tri() == 0:
        raise ValueError("the cut removed the whole object")
    origin = g.face_origin(res)
    out = g.from_manifold(res)
    new_face = origin == cut_id
    if not new_face.any():
        raise ValueError("the cutter missed the object")
    rim = _rim_points(out, new_face, rim_step)
    lo, hi = cutter.bounding_box()[:3], cutter.bounding_box()[3:]
    bounds = np.array([lo, hi], dtype=np.float64)
    out = g.canonical(out)
    return DefectResult(out, defect, params, rim_points=rim, changed_bounds=bounds)


def _rim_points(mesh: trimesh.Trimesh, new_face: np.ndarray, step: float) -> np.ndarray:
    """Points every `step` along the edges shared by a cut face and an original face."""
    f = np.asarray(mesh.faces, dtype=np.int64)
    v = np.asarray(mesh.vertices)

    def edge_keys(faces):
        e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        return e[:, 0] * len(v) + e[:, 1]

    shared = np.intersect1d(edge_keys(f[new_face]), edge_keys(f[~new_face]))
    if len(shared) == 0:
        return v[np.unique(f[new_face])]
    a, b = v[shared // len(v)], v[shared % len(v)]
    k = np.maximum(1, np.ceil(np.linalg.norm(b - a, axis=1) / step)).astype(int)
    idx = np.repeat(np.arange(len(a)), k)
    t = (np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)) / np.repeat(k, k)
    return np.concatenate([a[idx] + t[:, None] * (b - a)[idx], b])


def _placed(m, origin: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray):
    """Move a manifold from its local frame to columns (x, y, z) at `origin`."""
    M = np.column_stack([x, y, z, origin]).astype(np.float64)
    return m.transform(M)


def hole_size(mesh: trimesh.Trimesh, c: np.ndarray, n: np.ndarray, p: dict) -> tuple[float, float, bool]:
    """Radius, depth and through-ness of a hole at (c, n) whose labels (wall or pit + rim
    bands) cover the target area; shared by every engine. Draws nothing."""
    D = g.diagonal(mesh)
    thick = g.wall_thickness(mesh, c, n)
    depth = float(p["depth"]) * D
    through = thick < depth
    depth = thick * float(p["through_margin"]) if through else depth
    rim = float(p["rim_distance"]) * D
    A = _target_area(mesh, p)
    a = 0.0 if through else np.pi
    b = 2 * np.pi * ((thick if through else depth) + 2 * rim)
    r = A / b if a == 0 else (-b + np.sqrt(b * b + 4 * a * A)) / (2 * a)
    r = float(np.clip(r, 0.004 * D, float(p["max_radius"]) * D))  # a drilled hole, not a missing wall
    return r, depth, bool(through)


def hole(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator) -> DefectResult:
    """A round hole drilled along the surface normal: through the wall when the wall is
    thinner than `depth`, else a blind pit of that depth."""
    import manifold3d

    D = g.diagonal(mesh)
    c, n, _ = g.pick_surface_point(mesh, rng)
    r, depth, through = hole_size(mesh, c, n, p)
    rim = float(p["rim_distance"]) * D
    above = 0.25 * D
    t1, t2 = g.frame(n, rng)
    seg = int(p["segments"])
    cyl = manifold3d.Manifold.cylinder(depth + above, r, r, seg)
    cyl = _placed(cyl, c - n * depth, t1, t2, n)
    params = {"radius": r / D, "depth": depth / D, "through": bool(through), "center": c.tolist(), "normal": n.tolist()}
    return _carve(mesh, cyl, "hole", params, rim / 4)


def _noisy_sphere(rng: np.random.Generator, roughness: float, subdiv: int):
    """Unit icosphere with smooth random radial noise (sum of a few random plane waves)."""
    import manifold3d

    ico = trimesh.creation.icosphere(subdivisions=subdiv)
    d = ico.vertices
    k = rng.normal(size=(6, 3)) * rng.uniform(2.0, 6.0, size=(6, 1))
    ph = rng.uniform(0, 2 * np.pi, size=6)
    amp = rng.uniform(0.5, 1.0, size=6)
    noise = (np.sin(d @ k.T + ph) * amp).sum(1) / amp.sum()
    verts = d * (1.0 + roughness * noise)[:, None]
    return manifold3d.Manifold(manifold3d.Mesh(vert_properties=verts.astype(np.float32),
                                               tri_verts=ico.faces.astype(np.uint32)))


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
    A = _target_area(mesh, p) * float(p["region_factor"])
    r_solid = g.region_radius(mesh, c, n, A, min_cos=-1.0)  # labels ~ the fracture face
    thick = g.wall_thickness(mesh, c, n)
    if thick < r_solid:  # a thin wall: labels ~ the cut's perimeter x (wall + rim band on both sides)
        r_solid = A / (2 * np.pi * (thick + 2 * float(p["rim_distance"]) * D)) / 0.9
    return float(np.clip(r_solid, 0.01 * D, 0.35 * D))


def break_(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator) -> DefectResult:
    """A chunk broken off an extremity: an irregular (noisy ellipsoid) cutter centred just
    outside the surface near the most outlying point in a random direction."""
    D = g.diagonal(mesh)
    c, n = break_site(mesh, p, rng)
    r = break_size(mesh, c, n, p)
    t1, t2 = g.frame(n, rng)
    sph = _noisy_sphere(rng, float(p["roughness"]), int(p["subdivisions"]))
    aspect = rng.uniform(0.7, 1.0, size=3)
    sph = sph.scale((r * aspect).tolist())
    cutter = _placed(sph, c + n * r * float(p["offset"]), t1, t2, n)
    params = {"radius": r / D, "roughness": float(p["roughness"]), "center": c.tolist(), "normal": n.tolist()}
    return _carve(mesh, cutter, "break", params, float(p["rim_distance"]) * D / 4)


def _surface_path(mesh: trimesh.Trimesh, start: np.ndarray, direction: np.ndarray, length: float, step: float,
                  jitter: float, rng: np.random.Generator, scene=None):
    """A polyline walking on the surface: step along the tangent, turn by N(0, jitter) rad,
    snap back to the closest surface point. Returns points (K,3) and normals (K,3)."""
    import open3d as o3d

    scene = g.scene(mesh) if scene is None else scene
    nsteps = max(2, int(np.ceil(length / step)))
    pts = [start]
    nrm = [mesh.face_normals[int(scene.compute_closest_points(
        o3d.core.Tensor(start[None].astype(np.float32)))["primitive_ids"].numpy()[0])]]
    d = direction
    turns = rng.normal(0.0, jitter, size=nsteps)
    for k in range(nsteps):  # a loop over path steps (tens), not over points
        n = nrm[-1]
        d = d - (d @ n) * n
        d /= np.linalg.norm(d) + 1e-12
        d = g.rotation_about(n, np.array([turns[k]]), d[None])[0]
        q = scene.compute_closest_points(o3d.core.Tensor((pts[-1] + step * d)[None].astype(np.float32)))
        pts.append(q["points"].numpy()[0].astype(np.float64))
        nrm.append(mesh.face_normals[int(q["primitive_ids"].numpy()[0])])
    return np.array(pts), np.array(nrm)


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
    total = _target_area(mesh, p) / (width + 2 * rim + 2 * lateral)
    max_len = float(p["max_length"]) * D
    if total > strokes * max_len:  # too much for the drawn strokes at their longest
        if defect in REMOVAL:  # a crack stays one line: widen it (at most x2)
            width *= min(2.0, total / (strokes * max_len))
            total = _target_area(mesh, p) / (width + 2 * rim + 2 * lateral)
        else:  # scratches: more parallel strokes
            strokes = int(min(6, np.ceil(total / max_len)))
    length = float(np.clip(total / strokes, 0.03 * D, max_len))
    return c, n, width, depth, strokes, length


def _groove(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator, defect: str, strokes: int,
            through_ok: bool) -> DefectResult:
    """Carve thin boxes along surface paths: a crack (deep, wandering, tapered) or a
    scratch (shallow, nearly straight, parallel strokes)."""
    import manifold3d

    D = g.diagonal(mesh)
    c, n, width, depth, strokes, length = groove_plan(mesh, p, rng, defect, strokes, through_ok)
    rim = float(p["rim_distance"]) * D if defect in REMOVAL else 0.0
    step = float(p["step"]) * D
    t1, t2 = g.frame(n, rng)
    boxes, paths = [], []
    for si in range(strokes):  # a handful of strokes
        s0 = c + t2 * (si - (strokes - 1) / 2) * width * float(p.get("stroke_spacing", 3.0))
        pts, nrm = _surface_path(mesh, s0, t1, length, step, np.deg2rad(float(p["jitter_deg"])), rng)
        paths.append(pts.tolist())
        k = len(pts) - 1
        prof = np.sin(np.pi * (np.arange(k) + 0.5) / k) ** float(p["taper"])
        wk = width * (0.25 + 0.75 * prof) * rng.uniform(0.8, 1.2, size=k)
        for i in range(k):  # one box per path step
            a, b = pts[i], pts[i + 1]
            x = b - a
            L = np.linalg.norm(x)
            if L < 1e-9:
                continue
            x /= L
            z = nrm[i] + nrm[i + 1]
            z = z - (z @ x) * x
            z /= np.linalg.norm(z) + 1e-12
            y = np.cross(z, x)
            top = 0.3 * depth
            box = manifold3d.Manifold.cube([L + wk[i], wk[i], depth + top], True)
            boxes.append(_placed(box, (a + b) / 2 + z * (top - depth) / 2, x, y, z))
    cutter = manifold3d.Manifold.batch_boolean(boxes, manifold3d.OpType.Add)
    params = {"width": width / D, "depth": depth / D, "length": length / D, "strokes": strokes,
              "center": c.tolist(), "normal": n.tolist()}
    res = _carve(mesh, cutter, defect, params, max(rim, width) / 4)
    res.info["paths"] = paths
    if defect not in REMOVAL:
        res.rim_points = None
    return res


def crack(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator) -> DefectResult:
    """A thin, long, wandering gap; through the wall where the wall is thin."""
    return _groove(mesh, p, rng, "crack", 1, through_ok=True)


def scratch(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator) -> DefectResult:
    """One or more shallow, narrow, nearly straight parallel grooves."""
    return _groove(mesh, p, rng, "scratch", int(p["strokes"]), through_ok=False)


OPERATORS: dict[str, Callable[[trimesh.Trimesh, dict, np.random.Generator], DefectResult]] = {
    "bulge": bulge, "concavity": concavity, "hole": hole, "break": break_,
    "bending": bending, "crack": crack, "scratch": scratch,
}


def apply_defect(mesh: trimesh.Trimesh, defect: str, params: dict | None, rng: np.random.Generator) -> DefectResult:
    """Apply one defect to a (refined, watertight) mesh. Pure: the input mesh is not changed.

    Raises AnomalygenError for an unknown defect name; ValueError when this draw cannot
    produce the defect (the caller retries with another draw).
    """
    if defect not in OPERATORS:
        raise AnomalygenError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
    p = _realize(defect, params or {}, rng)
    res = OPERATORS[defect](mesh, p, rng)
    drawn = {k: v for k, v in p.items() if isinstance(v, (int, float, str, bool))}
    res.params = {**drawn, **res.params}
    return res
