"""Geometry on an object's surface: random sites, tangent frames, paths and distances.

Runs INSIDE Blender. Pure numpy except where the surface itself is queried (a
BVH for walking paths, bmesh for refining the mesh where a narrow defect acts):
the defect modules place their sites, strokes and cutters with these.
"""

from __future__ import annotations

import math

import bpy  # noqa: F401,I001  (first: the bpy module provides bmesh and mathutils)
import bmesh
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from _scene import triangles, vertices


def unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def tangent_basis(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = unit(n)
    a = np.array([1.0, 0, 0]) if abs(n[0]) < 0.9 else np.array([0, 1.0, 0])
    t = unit(np.cross(n, a))
    return t, np.cross(n, t)


def surface_point(ob, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An area-weighted random point of the surface and its face normal."""
    co, tri = vertices(ob), triangles(ob)
    a, b, c = co[tri[:, 0]], co[tri[:, 1]], co[tri[:, 2]]
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=1)
    i = rng.choice(len(tri), p=area / area.sum())
    r1, r2 = rng.random(2)
    s = math.sqrt(r1)
    p = (1 - s) * a[i] + s * (1 - r2) * b[i] + s * r2 * c[i]
    return p, unit(cross[i])


def polyline_distance(points: np.ndarray, line: np.ndarray, cutoff: float = np.inf) -> np.ndarray:
    """Distance of each point to a polyline (vectorized over points, chunked over segments).

    Points outside the polyline's box grown by `cutoff` get inf without being measured.
    """
    if np.isfinite(cutoff):
        inside = ((points >= line.min(0) - cutoff) & (points <= line.max(0) + cutoff)).all(1)
        out = np.full(len(points), np.inf)
        if inside.any():
            out[inside] = polyline_distance(points[inside], line)
        return out
    if len(line) == 1:
        return np.linalg.norm(points - line[0], axis=1)
    best = np.full(len(points), np.inf)
    a, b = line[:-1], line[1:]
    for s in range(0, len(a), 64):
        aa, bb = a[s:s + 64], b[s:s + 64]
        ab = bb - aa
        t = np.einsum("pk,sk->ps", points, ab) - np.einsum("sk,sk->s", aa, ab)[None]
        t = np.clip(t / np.maximum(np.einsum("sk,sk->s", ab, ab), 1e-30)[None], 0, 1)
        q = aa[None] + t[..., None] * ab[None]
        best = np.minimum(best, np.linalg.norm(points[:, None] - q, axis=2).min(1))
    return best


def refine_near(ob, line: np.ndarray, radius: float, target_edge: float, max_cuts: int = 4) -> int:
    """Subdivide the faces within `radius` of a polyline until edges are about `target_edge`.

    Narrow defects (scratch, crack rims, small bulges) need vertices where they act;
    the rest of the mesh keeps its resolution. Returns the number of cuts made.
    """
    co, tri = vertices(ob), triangles(ob)
    near = polyline_distance(co, line, radius) < radius
    if not near.any():
        return 0
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    e = e[near[e].any(1)]
    edge = float(np.linalg.norm(co[e[:, 0]] - co[e[:, 1]], axis=1).mean()) if len(e) else 0.0
    cuts = int(min(max_cuts, max(0, math.ceil(edge / max(target_edge, 1e-12)) - 1)))
    if cuts == 0:
        return 0
    bm = bmesh.new()
    bm.from_mesh(ob.data)
    bm.verts.ensure_lookup_table()
    edges = [e for e in bm.edges if near[e.verts[0].index] and near[e.verts[1].index]]
    bmesh.ops.subdivide_edges(bm, edges=edges, cuts=cuts, use_grid_fill=True)
    bmesh.ops.triangulate(bm, faces=[f for f in bm.faces if len(f.verts) > 3])
    bm.to_mesh(ob.data)
    bm.free()
    ob.data.update()
    return cuts


def surface_path(bvh: BVHTree, start, direction, length: float, step: float, waviness: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Walk on the surface: step along the tangent, turn a little (waviness, rad/step), project back."""
    loc, nrm, _, _ = bvh.find_nearest(Vector(start))
    p, n = np.array(loc), np.array(nrm)
    t = unit(direction - np.dot(direction, n) * n)
    pts, nrms = [p], [n]
    for _ in range(max(1, int(round(length / step)))):
        ang = rng.normal(0.0, waviness)
        b = np.cross(n, t)
        t = unit(math.cos(ang) * t + math.sin(ang) * b)
        loc, nrm, _, _ = bvh.find_nearest(Vector(p + step * t))
        q, n_new = np.array(loc), np.array(nrm)
        if np.linalg.norm(q - p) < 0.2 * step:       # stuck on an edge: stop early
            break
        t = unit(q - p)
        t = unit(t - np.dot(t, n_new) * n_new)
        p, n = q, n_new
        pts.append(p)
        nrms.append(n)
    return np.array(pts), np.array(nrms)


def smooth_noise(rng: np.random.Generator, dim: int, terms: int = 6):
    """A seeded smooth random function R^dim -> roughly [-1, 1] (sum of random sinusoids)."""
    freq = rng.normal(0, 1, (terms, dim)) * rng.uniform(1.0, 3.0, (terms, 1))
    phase = rng.uniform(0, 2 * math.pi, terms)
    amp = rng.uniform(0.5, 1.0, terms)
    amp /= amp.sum()

    def f(x):
        return (np.sin(np.asarray(x) @ freq.T + phase) * amp).sum(-1)
    return f
