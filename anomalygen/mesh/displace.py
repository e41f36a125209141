"""Displacement defects: bulge, concavity and bending move vertices of a refined mesh.

Pure functions of (mesh, realized params, rng); the input mesh is not changed. Vertex i
of the result is vertex i of the input (`DefectResult.moved` says which moved), so the
labeler can compare each point against the original surface.
"""

from __future__ import annotations

import numpy as np
import trimesh

from anomalygen import geometry as g
from anomalygen.mesh.result import DefectResult
from anomalygen.mesh.sizing import bending_frame, bump_plan


def _falloff(s: np.ndarray) -> np.ndarray:
    """Smooth bump profile: 1 at the centre, 0 with zero slope and curvature at s = 1."""
    s = np.clip(s, 0.0, 1.0)
    t = 1.0 - s * s
    return t * t * t  # not ** 3: numpy's power takes a CPU-specific (AVX-512) path whose last bits differ


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


def _bump(mesh: trimesh.Trimesh, p: dict, rng: np.random.Generator, sign: float) -> DefectResult:
    D = g.diagonal(mesh)
    c, n, h, tau, r_lab = bump_plan(mesh, p, rng, sign)
    # radius of the (1 - s^2)^3 falloff so that the displacement equals tau exactly at r_lab
    s_star = np.sqrt(max(1e-6, 1.0 - (tau / h) ** (1.0 / 3.0)))
    R = max(r_lab / s_star, 1e-6)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    vn = np.asarray(mesh.vertex_normals, dtype=np.float64)
    d = np.linalg.norm(v - c, axis=1)
    facing = _smoothstep(g.dot3(vn, n) / 0.5)  # only the sheet facing like n (not the far wall)
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
