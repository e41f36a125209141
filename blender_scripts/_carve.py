"""Defects that remove material with a boolean cut: hole, break, crack.

Runs INSIDE Blender. Each builds an irregular closed cutter (a noisy tube, a
noisy blob, a chain of wedges) and subtracts it with the MANIFOLD boolean
solver, which keeps the output watertight when the input is. `boolean_cut` also
returns the rim points, where the cut meets the original surface: the labeler
needs them to mark the cut's edge on a point cloud sampled from the result.
"""

from __future__ import annotations

import math

import bpy  # noqa: I001  (first: the bpy module provides mathutils)
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from _params import Params, object_scale, path_start, site
from _scene import (
    apply_modifier, bvh_of, make_object, set_vertices, triangles, triangulate, vertex_normals, vertices,
)
from _surface import smooth_noise, surface_path, tangent_basis, unit


def outward(verts: np.ndarray, faces: list) -> list:
    """Faces of a closed cutter oriented outward (positive volume), else a boolean inverts."""
    tris = [(f[0], f[i], f[i + 1]) for f in faces for i in range(1, len(f) - 1)]
    t = np.asarray(verts, float)[np.array(tris)]
    volume = np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0
    return faces if volume > 0 else [tuple(reversed(f)) for f in faces]


def closed_tube(rings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of a closed tube through equal-size rings, capped at both ends, outward."""
    k, m = len(rings), len(rings[0])
    verts = np.concatenate(rings + [rings[0].mean(0, keepdims=True), rings[-1].mean(0, keepdims=True)])
    faces = []
    for r in range(k - 1):
        for j in range(m):
            a, b = r * m + j, r * m + (j + 1) % m
            faces.append((a, b, b + m, a + m))
    c0, c1 = k * m, k * m + 1
    faces += [(c0, (j + 1) % m, j) for j in range(m)]
    faces += [(c1, (k - 1) * m + j, (k - 1) * m + (j + 1) % m) for j in range(m)]
    return verts, outward(verts, faces)


def wall_depth(bvh: BVHTree, c: np.ndarray, n: np.ndarray, L: float) -> float | None:
    """Distance from a surface point inward to the next surface (wall thickness), or None."""
    hit = bvh.ray_cast(Vector(c - n * 1e-4 * L), Vector(-n))
    return None if hit[0] is None else float((Vector(c) - hit[0]).length)


def boolean_cut(ob, cutter, L: float) -> np.ndarray:
    """Difference with the MANIFOLD solver, triangulate; returns the rim points.

    `cutter` is one closed object, or a list of (overlapping, convex) closed objects
    that the boolean subtracts as one union (a Collection operand).
    """
    pieces = cutter if isinstance(cutter, list) else [cutter]
    orig_bvh = bvh_of(ob)
    cut_co = np.concatenate([vertices(c) for c in pieces])
    cut_tri = np.concatenate([triangles(c) + off for c, off in
                              zip(pieces, np.cumsum([0] + [len(c.data.vertices) for c in pieces[:-1]]))])
    cut_bvh = BVHTree.FromPolygons([tuple(v) for v in cut_co], [tuple(f) for f in cut_tri.tolist()])
    cut_lo, cut_hi = cut_co.min(0), cut_co.max(0)
    mod = ob.modifiers.new("cut", "BOOLEAN")
    mod.operation = "DIFFERENCE"
    mod.solver = "MANIFOLD" if "MANIFOLD" in {e.identifier for e in mod.bl_rna.properties["solver"].enum_items} else "EXACT"
    if len(pieces) == 1:
        mod.object = pieces[0]
    else:
        coll = bpy.data.collections.new("cutters")
        bpy.context.scene.collection.children.link(coll)
        for c in pieces:
            for other in list(c.users_collection):
                other.objects.unlink(c)
            coll.objects.link(c)
        mod.operand_type, mod.collection = "COLLECTION", coll
    apply_modifier(ob, mod)
    for c in pieces:
        bpy.data.objects.remove(c)
    triangulate(ob)
    co = vertices(ob)
    eps = 1e-4 * L
    lo, hi = cut_lo - 2 * eps, cut_hi + 2 * eps      # only vertices inside the cutter's box can be rim
    cand = np.nonzero(((co >= lo) & (co <= hi)).all(1))[0]
    on_both = np.zeros(len(co), bool)
    for i in cand:
        p = Vector(co[i])
        on_both[i] = orig_bvh.find_nearest(p, eps)[0] is not None and cut_bvh.find_nearest(p, eps)[0] is not None
    if not on_both.any():
        raise RuntimeError("the cutter did not cut the surface (no rim)")
    rim = co[on_both]
    # rim edges (both ends on the rim) add midpoints so the rim is dense
    tri = triangles(ob)
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    e = e[on_both[e].all(1)]
    if not len(e):
        return rim
    # points along rim edges, kept only where they lie on the original surface: an edge
    # joining the outer and inner rim of a through-cut crosses the cut face instead
    t = np.linspace(0.2, 0.8, 4)[None, :, None]
    pts = (co[e[:, 0]][:, None] * (1 - t) + co[e[:, 1]][:, None] * t).reshape(-1, 3)
    keep = [orig_bvh.find_nearest(Vector(p), eps)[0] is not None for p in pts]
    return np.concatenate([rim, pts[np.array(keep, bool)]])


def do_hole(ob, P: Params) -> dict:
    """An irregular roughly-cylindrical hole through the wall along the inward normal."""
    L, _, _ = object_scale(ob)
    c, n = site(ob, P)
    radius = P.length("radius", 0.03, 0.07)
    irregularity = P.number("irregularity", 0.05, 0.25)
    wall = wall_depth(bvh_of(ob), c, n, L)
    given = "depth" in P.given or "depth_rel" in P.given
    depth = P.length("depth", 0.05, 0.12)
    if not given and wall is not None and wall < depth:   # thin wall: through it, not into the far side
        depth = min(depth, wall * 1.05 + 1e-3 * L)
        P.out["depth"] = depth
    P.out["through_wall"] = bool(wall is not None and depth > wall)
    t1, t2 = tangent_basis(n)
    m = 40
    th = np.linspace(0, 2 * math.pi, m, endpoint=False)
    circle = np.stack([np.cos(th), np.sin(th)], 1)
    noise = smooth_noise(P.rng, 2)
    levels = np.linspace(0.3 * radius, -depth, 6)            # from outside to the bottom
    rings = []
    for lv in levels:
        r = radius * (1 + irregularity * noise(circle * 2.0 + lv / max(radius, 1e-9)))
        rings.append(c + np.outer(r * circle[:, 0], t1) + np.outer(r * circle[:, 1], t2) + lv * n)
    cv, cf = closed_tube(rings)
    cutter = make_object("cutter", cv, cf)
    rim = boolean_cut(ob, cutter, L)
    return {"rim_points": rim}


def do_break(ob, P: Params) -> dict:
    """A chunk bitten off an extremity by a jagged blob (fracture-like surface)."""
    L, mid, co = object_scale(ob)
    if "center" in P.given:
        c, n = site(ob, P)
    else:
        direction = unit(P.vector("direction", unit(P.rng.normal(size=3))))
        cands = np.argsort(co @ direction)[-max(1, len(co) // 50):]   # near the extreme along `direction`
        i = int(P.rng.choice(cands))
        c = P.vector("center", co[i])
        n = unit(P.vector("normal", vertex_normals(ob)[i]))
    radius = P.length("radius", 0.08, 0.16)
    irregularity = P.number("irregularity", 0.1, 0.3)
    offset = P.number("offset", 0.2, 0.5)            # cutter centre this many radii outside the surface
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=4, radius=1.0)
    cutter = bpy.context.active_object
    u = vertices(cutter)
    noise = smooth_noise(P.rng, 3, terms=10)
    r = radius * (1 + irregularity * noise(u * 3.0))
    set_vertices(cutter, c + n * offset * radius + u * r[:, None])
    rim = boolean_cut(ob, cutter, L)
    return {"rim_points": rim}


def do_crack(ob, P: Params) -> dict:
    """A thin, long, jagged wedge-shaped gap cut along a surface path."""
    L, c, n, d0 = path_start(ob, P)
    length = P.length("length", 0.15, 0.3)
    width = P.length("width", 0.008, 0.016)
    depth = P.length("depth", 0.03, 0.08)
    waviness = P.number("waviness", 0.15, 0.4)        # radians of turn per step (std)
    step = P.length("step", 0, 0) or max(width, length / 60)
    P.out["step"] = step
    path, nrms = surface_path(bvh_of(ob), c - 0.5 * length * d0, d0, length, step, waviness, P.rng)
    if len(path) < 3:
        raise RuntimeError("crack path too short on this surface")
    P.out["path"] = path.round(6).tolist()
    k = len(path)
    taper = np.sin(np.linspace(0.15, 1.0, k) * math.pi / 1.15) * (1 + 0.3 * P.rng.uniform(-1, 1, k))
    # one convex wedge prism per path step, overlapping its neighbours; the boolean
    # subtracts their union. (A single swept tube folds on itself at sharp turns and
    # where the surface normal swings, and a self-intersecting cutter breaks the cut.)
    pieces = []
    for i in range(k - 1):
        a, b = path[i], path[i + 1]
        x = unit(b - a)
        z = unit(nrms[i] + nrms[i + 1])
        z = unit(z - np.dot(z, x) * x)
        y = np.cross(z, x)
        w = 0.5 * width * max(0.5 * (taper[i] + taper[i + 1]), 0.25)
        dep = depth * max(0.5 * (taper[i] + taper[i + 1]), 0.3)
        ends = [a - x * w, b + x * w]
        ring = [np.stack([e + z * 0.5 * width + y * w, e + z * 0.5 * width - y * w, e - z * dep]) for e in ends]
        cv, cf = closed_tube(ring)
        pieces.append(make_object(f"crack{i}", cv, cf))
    rim = boolean_cut(ob, pieces, L)
    return {"rim_points": rim}
