"""Procedural stand-ins for the MVTec 3D-AD classes the renderer's built-in six lack.

MVTec 3D-AD has ten classes; the renderer draws bagel, cookie, dowel, peach, potato and
tire itself (anomalygen.render.scene). These four complete the set so the zero-shot
protocol of 3DzAL (train on one class, test on each other, the rest task-irrelevant) runs
on the offline default:

    cable_gland  a threaded shank, a hex nut and a domed cap with a cable bore, lying on its side
    carrot       a tapered, slightly bent root with transverse growth rings and a stem stub
    foam         a flat rounded block whose top is pitted with pores
    rope         three strands twisted about a gently curved axis, capped ends

Each is built with manifold3d (watertight booleans; `catalog.normalize` and
`geometry.canonical` make the bytes independent of its threading), Z up, bounding-box
diagonal 1, a pure function of the Generator's draws. These are NOT MVTec scans.
"""

from __future__ import annotations

import manifold3d as mf
import numpy as np
import trimesh

from anomalygen import geometry as g
from anomalygen.shapes.catalog import _rot, _rounded_box, _union, normalize

SEG = 64  # circular segments of revolved parts


def _revolve(poly: np.ndarray) -> mf.Manifold:
    return mf.Manifold.revolve(mf.CrossSection([np.asarray(poly, dtype=np.float64)]), SEG, 360.0)


def _capsule_chain(points: np.ndarray, radius: float) -> list[mf.Manifold]:
    """Hulls of spheres at consecutive points: a round tube along a polyline, ends capped."""
    balls = [mf.Manifold.sphere(radius, 12).translate(p.tolist()) for p in points]
    return [mf.Manifold.batch_hull([a, b]) for a, b in zip(balls[:-1], balls[1:])]


def cable_gland(rng: np.random.Generator) -> mf.Manifold:
    r = rng.uniform(0.26, 0.3)                      # shank radius
    pitch = rng.uniform(0.045, 0.06)
    n_threads = int(rng.integers(6, 9))
    z = np.linspace(0, n_threads * pitch, 8 * n_threads + 1)
    ridge = r + 0.02 * (1 - np.abs(((z / pitch) % 1) * 2 - 1))   # sawtooth thread profile
    shank = _revolve(np.vstack([[0, 0], np.column_stack([ridge, z]), [0, z[-1]]]))
    top = float(z[-1])
    nut_h = rng.uniform(0.16, 0.22)
    nut = mf.Manifold.cylinder(nut_h, r * rng.uniform(1.55, 1.7), r * rng.uniform(1.55, 1.7), 6).translate([0, 0, top])
    top += nut_h
    cap_r, cap_h = r * rng.uniform(1.25, 1.4), rng.uniform(0.22, 0.3)
    a = np.linspace(0, np.pi / 2, 24)
    dome = np.column_stack([cap_r * np.cos(a) ** 0.6, top + cap_h * np.sin(a)])
    cap = _revolve(np.vstack([[0, top], dome, [0, top + cap_h]]))
    bore = mf.Manifold.cylinder(top + cap_h + 0.2, r * rng.uniform(0.35, 0.45), r * 0.4, 48).translate([0, 0, -0.1])
    body = _union([shank, nut, cap]) - bore
    return _rot(body, [0, 1, 0], 90)               # lying on its side: thread, nut and cap all visible


def carrot(rng: np.random.Generator) -> mf.Manifold:
    L = 1.0
    r0 = rng.uniform(0.13, 0.16)
    z = np.linspace(0, L, 160)
    taper = r0 * (1 - z / L) ** rng.uniform(0.6, 0.8)
    rings = 1 - 0.04 * np.abs(np.sin(np.pi * z * rng.uniform(14, 20))) ** 6
    r = np.maximum(taper * rings, 0.004)
    r[-1] = 0.0
    root = _revolve(np.vstack([[0, 0], np.column_stack([r, z])[1:-1], [0, L]]))
    stem = mf.Manifold.cylinder(0.05, r0 * 0.45, r0 * 0.35, 24).translate([0, 0, -0.045])
    body = _rot(_union([root, stem]), [0, 1, 0], 90)  # lying along x
    bend = rng.uniform(0.04, 0.1)
    return body.warp(lambda p: [p[0], p[1], p[2] + bend * (p[0] - 0.5) ** 2])


def foam(rng: np.random.Generator) -> mf.Manifold:
    size = np.array([rng.uniform(0.8, 0.95), rng.uniform(0.55, 0.7), rng.uniform(0.16, 0.22)])
    block = _rounded_box(size, 0.03)
    n = int(rng.integers(90, 130))
    xy = rng.uniform(-0.45, 0.45, (n, 2)) * size[:2]
    rad = rng.uniform(0.012, 0.03, n)
    pores = [mf.Manifold.sphere(float(s), 12).translate([float(x), float(y), size[2] / 2 + s * rng.uniform(-0.1, 0.4)])
             for (x, y), s in zip(xy, rad)]
    return block - _union(pores)


def rope(rng: np.random.Generator) -> mf.Manifold:
    n = 90
    t = np.linspace(0, 1, n)
    length, sag = 1.0, rng.uniform(0.05, 0.15)
    axis = np.column_stack([length * (t - 0.5), sag * np.sin(np.pi * t), np.zeros(n)])
    tangent = np.gradient(axis, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    up = np.array([0.0, 0.0, 1.0])
    side = np.cross(tangent, up)
    r_strand = rng.uniform(0.065, 0.08)
    r_helix = r_strand * 1.05
    turns = rng.uniform(2.5, 3.5)
    phase = rng.uniform(0, 2 * np.pi)
    parts = []
    for j in range(3):
        th = 2 * np.pi * turns * t + phase + 2 * np.pi * j / 3
        strand = axis + r_helix * (np.cos(th)[:, None] * side + np.sin(th)[:, None] * up)
        parts += _capsule_chain(strand, r_strand)
    return _union(parts)


SHAPES = {"cable_gland": cable_gland, "carrot": carrot, "foam": foam, "rope": rope}


def make_mvtec_shape(cls: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """A watertight, unit-diagonal, Z-up mesh of one of SHAPES, vertices in a data-defined order."""
    m = SHAPES[cls](rng)
    if m.status() != mf.Error.NoError or m.is_empty():
        raise RuntimeError(f"procedural {cls}: manifold3d status {m.status()}")
    return g.canonical(normalize(g.from_manifold(m)))
