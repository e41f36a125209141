"""Carved defects: hole, break, crack and scratch, cut with manifold3d booleans.

A boolean keeps the mesh watertight. Removal defects (hole, break, crack) return
`rim_points` along the border between kept original surface and the new cut surface:
the engine-agnostic labeler (anomalygen.mesh.labels) needs them for its rim rule.
"""

from __future__ import annotations

import numpy as np
import trimesh

from anomalygen import geometry as g
from anomalygen.mesh.result import REMOVAL, DefectResult
from anomalygen.mesh.sizing import break_site, break_size, groove_plan, hole_size


def _carve(mesh: trimesh.Trimesh, cutter, defect: str, params: dict, rim_step: float) -> DefectResult:
    """Subtract `cutter` (a manifold3d.Manifold) and find the rim where cut meets original."""
    body = g.to_manifold(mesh)
    cutter = cutter.as_original()
    cut_id = cutter.original_id()
    res = body - cutter
    if res.is_empty() or res.num_tri() == 0:
        raise ValueError("the cut removed the whole object")
    mm = res.to_mesh()
    origin = g.face_origin(res, mm)
    out = g.from_manifold(res, mm)
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

    # an edge shared with a cut face has both ends on cut faces: only original faces touching one can hold it
    on_cut = np.zeros(len(v), bool)
    on_cut[f[new_face].ravel()] = True
    near = ~new_face & on_cut[f].any(axis=1)
    shared = np.intersect1d(edge_keys(f[new_face]), edge_keys(f[near]))
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
        d = d - g.dot3(d, n) * n
        d /= np.linalg.norm(d) + 1e-12
        d = g.rotation_about(n, np.array([turns[k]]), d[None])[0]
        q = scene.compute_closest_points(o3d.core.Tensor((pts[-1] + step * d)[None].astype(np.float32)))
        pts.append(q["points"].numpy()[0].astype(np.float64))
        nrm.append(mesh.face_normals[int(q["primitive_ids"].numpy()[0])])
    return np.array(pts), np.array(nrm)


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
        prof = g.power(np.sin(np.pi * (np.arange(k) + 0.5) / k), float(p["taper"]))
        wk = width * (0.25 + 0.75 * prof) * rng.uniform(0.8, 1.2, size=k)
        for i in range(k):  # one box per path step
            a, b = pts[i], pts[i + 1]
            x = b - a
            L = np.linalg.norm(x)
            if L < 1e-9:
                continue
            x /= L
            z = nrm[i] + nrm[i + 1]
            z = z - g.dot3(z, x) * x
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
