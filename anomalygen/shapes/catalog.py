"""Procedural stand-ins for the 40 Anomaly-ShapeNet classes (the offline default).

No ShapeNet download exists offline, so each class is a parametric family built
with manifold3d (revolved profiles for vessels, unions of primitives and swept
tubes for the rest). `make_shape(cls, rng)` returns a watertight mesh, centred,
bounding-box diagonal 1 (ShapeNetCore's `model_normalized` convention). Instances
of a family look alike and differ by the Generator's draws; the build driver
seeds it from (recipe seed, class), so one class is one object, as in the paper.
These are NOT ShapeNet models: the manifest and README say so.
"""

from __future__ import annotations

import re

import manifold3d as mf
import numpy as np
import trimesh

from anomalygen.errors import AnomalygenError
from anomalygen import geometry as g

SEG = 96  # circular segments of revolved shapes (refinement adds the rest)
Add = mf.OpType.Add


def _union(parts) -> mf.Manifold:
    return mf.Manifold.batch_boolean(list(parts), Add)


def _revolve(poly: np.ndarray, degrees: float = 360.0) -> mf.Manifold:
    """Revolve a closed (r, z) polygon about the z axis."""
    return mf.Manifold.revolve(mf.CrossSection([np.asarray(poly, dtype=np.float64)]), SEG, degrees)


def _smooth_profile(rng: np.random.Generator, n_ctrl: int, lo: float, hi: float, n: int = 48) -> np.ndarray:
    """A smooth random function on [0, 1] with values in [lo, hi] (cosine-interpolated knots)."""
    knots = rng.uniform(lo, hi, size=n_ctrl)
    x = np.linspace(0, n_ctrl - 1, n)
    i = np.minimum(np.floor(x).astype(int), n_ctrl - 2)
    t = (1 - np.cos(np.pi * (x - i))) / 2
    return knots[i] * (1 - t) + knots[i + 1] * t


def _vessel(r_out: np.ndarray, height: float, wall: float, bottom: float, closed_top: bool = False) -> mf.Manifold:
    """Open (or lidded) thick-walled vessel from an outer radius profile sampled bottom->top."""
    z = np.linspace(0, height, len(r_out))
    outer = np.column_stack([r_out, z])
    if closed_top:
        poly = np.vstack([[0, 0], outer, [0, height]])
        return _revolve(poly)
    zi = z[z > bottom + 1e-9]
    r_in = np.interp(zi, z, r_out) - wall
    inner = np.column_stack([np.maximum(r_in, wall * 0.5), zi])[::-1]
    poly = np.vstack([[0, 0], outer, inner, [np.maximum(r_in[0], wall), bottom], [0, bottom]])
    return _revolve(poly)


def _tube_arc(R: float, r: float, degrees: float) -> mf.Manifold:
    """Part of a torus (major R, minor r) in the xy plane, starting on +x, capped ends."""
    circ = mf.CrossSection.circle(r, 24).translate([R, 0.0])
    return mf.Manifold.revolve(circ, SEG, degrees)


def _rounded_box(size, radius: float) -> mf.Manifold:
    sx, sy, sz = (np.asarray(size) / 2 - radius)
    corners = [mf.Manifold.sphere(radius, 24).translate([x, y, z])
               for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)]
    return mf.Manifold.batch_hull(corners)


def _rot(m: mf.Manifold, axis, deg: float) -> mf.Manifold:
    R = g.rotation_matrix(np.asarray(axis, float), np.deg2rad(deg))
    return m.transform(np.column_stack([R, np.zeros(3)]))


# --------------------------------------------------------------------------- families

def bottle(rng):
    H = 1.0
    rb = rng.uniform(0.16, 0.24)
    rn = rb * rng.uniform(0.3, 0.45)
    zs = rng.uniform(0.45, 0.65)  # shoulder height
    z = np.linspace(0, 1, 64)
    body = rb * (1 + 0.06 * np.sin(np.pi * z / zs * rng.uniform(0.5, 1.5)))
    shoulder = rn + (rb - rn) * 0.5 * (1 + np.cos(np.pi * np.clip((z - zs) / rng.uniform(0.15, 0.25), 0, 1)))
    r = np.where(z < zs, body, shoulder)
    r[0] = rb * 0.92
    r[-1] = rn * 1.1  # lip
    m = _vessel(r, H, 0, 0, closed_top=True)
    return m


def _vessel_family(rng, h_range, r_range, n_ctrl, wall, flare=0.0, waist=0.0):
    H = rng.uniform(*h_range)
    prof = _smooth_profile(rng, n_ctrl, *r_range)
    z = np.linspace(0, 1, len(prof))
    prof = prof * (1 + flare * z ** 2) * (1 - waist * np.sin(np.pi * z) ** 2)
    prof[0] *= 0.9
    return _vessel(prof, H, wall, wall * 1.2)


def bowl(rng):
    H = rng.uniform(0.28, 0.4)
    R = rng.uniform(0.45, 0.6)
    z = np.linspace(0, 1, 48)
    k = rng.uniform(0.35, 0.6)
    r = R * (k + (1 - k) * np.sqrt(np.clip(z, 0, 1)) ** rng.uniform(0.8, 1.3))
    foot = _vessel(np.full(8, R * k * 0.9), H * 0.08, 0.025, 0.5, closed_top=True)
    return _union([_vessel(r, H, rng.uniform(0.02, 0.035), 0.03).translate([0, 0, H * 0.05]), foot])


def cup(rng):
    m = _vessel_family(rng, (0.55, 0.75), (0.22, 0.3), 3, rng.uniform(0.025, 0.035), flare=rng.uniform(0, 0.25))
    H = float(m.bounding_box()[5])
    R = m.bounding_box()[3]
    handle = _rot(_tube_arc(H * 0.22, 0.03, 200), [1, 0, 0], 90)
    handle = _rot(handle, [0, 1, 0], -100).translate([R - 0.01, 0, H * 0.5])
    return _union([m, handle])


def bucket(rng):
    H = rng.uniform(0.6, 0.8)
    r0, r1 = rng.uniform(0.25, 0.3), rng.uniform(0.32, 0.4)
    prof = np.linspace(r0, r1, 16)
    prof[-1] *= 1.04
    body = _vessel(prof, H, 0.025, 0.03)
    ring = _tube_arc(r1 * 1.02, 0.018, 360).translate([0, 0, H * 0.9])
    handle = _rot(_tube_arc(r1 * 1.0, 0.016, 180), [1, 0, 0], 90 + rng.uniform(-30, 30))
    handle = handle.translate([0, 0, H * 0.9])
    return _union([body, ring, handle])


def jar(rng):
    H = rng.uniform(0.7, 0.95)
    z = np.linspace(0, 1, 64)
    rb = rng.uniform(0.25, 0.33)
    rn = rb * rng.uniform(0.6, 0.8)
    zs = rng.uniform(0.65, 0.8)
    r = np.where(z < zs, rb * (1 + 0.05 * np.sin(np.pi * z / zs)),
                 rn + (rb - rn) * np.cos(np.pi / 2 * np.clip((z - zs) / 0.1, 0, 1)))
    body = _vessel(r, H, 0, 0, closed_top=True)
    lid = _vessel(np.full(8, rn * 1.08), 0.08, 0, 0, closed_top=True).translate([0, 0, H - 0.02])
    knob = mf.Manifold.sphere(rn * 0.25, 32).translate([0, 0, H + 0.07])
    return _union([body, lid, knob])


def vase(rng):
    H = rng.uniform(0.8, 1.2)
    z = np.linspace(0, 1, 64)
    belly = rng.uniform(0.2, 0.32)
    neck = belly * rng.uniform(0.35, 0.6)
    zb = rng.uniform(0.25, 0.45)
    r = neck + (belly - neck) * np.exp(-((z - zb) / rng.uniform(0.2, 0.32)) ** 2)
    r = r * (1 + rng.uniform(0.2, 0.7) * np.clip((z - 0.8) / 0.2, 0, 1) ** 2)  # flared lip
    r[:4] = np.maximum(r[:4], belly * 0.6)
    return _vessel(r, H, rng.uniform(0.02, 0.03), 0.04)


def ashtray(rng):
    R = rng.uniform(0.5, 0.6)
    H = rng.uniform(0.14, 0.2)
    z = np.linspace(0, 1, 16)
    r = R * (1 - 0.08 * z)
    wall = rng.uniform(0.1, 0.16)
    body = _vessel(r, H, wall, H * 0.35)
    k = int(rng.integers(3, 5))
    rests = [_rot(mf.Manifold.cylinder(R * 0.6, 0.035, 0.035, 32, True), [0, 1, 0], 90)
             .translate([R * 0.9, 0, H]) for _ in range(k)]
    rests = [_rot(c, [0, 0, 1], 360 * i / k) for i, c in enumerate(rests)]
    return body - _union(rests)


def _dome_poly(R: float, t: float, squash: float, span: float = np.pi / 2) -> np.ndarray:
    """Counter-clockwise (r, z) outline of a dome shell of radius R, thickness t."""
    a = np.linspace(np.pi / 2 - span, np.pi / 2, 48)[:-1]
    outer = np.column_stack([R * np.cos(a), R * squash * np.sin(a)])
    inner = np.column_stack([(R - t) * np.cos(a), (R - t) * squash * np.sin(a)])[::-1]
    return np.vstack([outer, [0, R * squash], [0, (R - t) * squash], inner])


def helmet(rng):
    R = rng.uniform(0.42, 0.5)
    t = rng.uniform(0.025, 0.045)
    dome = _revolve(_dome_poly(R, t, rng.uniform(0.9, 1.05), np.pi / 2 * rng.uniform(0.85, 1.0)))
    dome = dome.scale([1.0, rng.uniform(1.0, 1.2), 1.0])
    parts = [dome]
    if rng.random() < 0.7:  # a visor / rim ridge over the front
        deg = rng.uniform(60, 110)
        visor = _tube_arc(R * 1.0, t * 0.9, deg).scale([1, 1, 1.8])
        parts.append(_rot(visor, [0, 0, 1], -deg / 2).translate([0, 0, R * 0.08]))
    return _union(parts)


def cap(rng):
    R = rng.uniform(0.32, 0.4)
    t = rng.uniform(0.02, 0.03)
    squash = rng.uniform(0.7, 0.9)
    poly = _dome_poly(R, t, squash)
    dome = _revolve(poly)
    L = rng.uniform(0.45, 0.6) * R / 0.35 * 0.35
    brim = mf.Manifold.extrude(mf.CrossSection.circle(1.0, 64), t * 0.8).scale([L, R * 0.9, 1.0])
    brim = _rot(brim, [0, 1, 0], rng.uniform(-8, -2)).translate([R * 0.55, 0, 0])
    button = mf.Manifold.sphere(t * 1.2, 24).translate([0, 0, R * squash])
    return _union([dome, brim, button])


def eraser(rng):
    size = [rng.uniform(0.7, 0.85), rng.uniform(0.3, 0.42), rng.uniform(0.12, 0.2)]
    body = _rounded_box(size, rng.uniform(0.02, 0.05))
    if rng.random() < 0.5:  # a worn, slanted end
        cut = mf.Manifold.cube([0.4, 1.0, 1.0], True).translate([size[0] / 2 + 0.12, 0, 0])
        body = body - _rot(cut, [0, 1, 0], rng.uniform(20, 40))
    return body


def bag(rng):
    size = [rng.uniform(0.55, 0.7), rng.uniform(0.2, 0.28), rng.uniform(0.45, 0.6)]
    body = _rounded_box(size, 0.05)
    Rh = size[0] * rng.uniform(0.25, 0.35)
    handles = [_rot(_tube_arc(Rh, 0.022, 180), [1, 0, 0], 90).translate([0, y, size[2] / 2 - 0.03])
               for y in (-size[1] * 0.3, size[1] * 0.3)]
    flap = _rounded_box([size[0] * 0.98, 0.04, size[2] * 0.4], 0.015).translate([0, size[1] / 2, size[2] * 0.15])
    return _union([body, flap, *handles])


def headset(rng):
    R = rng.uniform(0.38, 0.45)
    band = _rot(_tube_arc(R, rng.uniform(0.025, 0.035), 180), [1, 0, 0], 90)  # arc in the xz plane, over the top
    cup_r = rng.uniform(0.12, 0.16)
    cups = []
    for sx in (-1, 1):
        c = mf.Manifold.cylinder(0.09, cup_r, cup_r * 0.9, 48, True)
        c = _union([c, mf.Manifold.cylinder(0.05, cup_r * 0.95, cup_r * 0.95, 48, True).translate([0, 0, 0.06 * -sx])])
        cups.append(_rot(c, [0, 1, 0], 90).translate([sx * R, 0, -cup_r * 0.6]))
    yokes = [mf.Manifold.cylinder(cup_r * 0.7, 0.02, 0.02, 16, False).translate([sx * R, 0, -cup_r * 0.6]) for sx in (-1, 1)]
    return _union([band, *cups, *yokes])


def microphone(rng):
    L = rng.uniform(0.7, 0.85)
    r0, r1 = rng.uniform(0.04, 0.055), rng.uniform(0.07, 0.09)
    handle = mf.Manifold.cylinder(L, r0, r1, 48)
    head_r = rng.uniform(0.13, 0.17)
    head = mf.Manifold.sphere(head_r, 64).scale([1, 1, rng.uniform(1.0, 1.3)]).translate([0, 0, L + head_r * 0.8])
    ring = mf.Manifold.cylinder(0.05, r1 * 1.25, r1 * 1.25, 48).translate([0, 0, L - 0.02])
    switch = mf.Manifold.cube([0.03, 0.05, 0.08], True).translate([r0 * 0.5 + (r1 - r0) * 0.6 + 0.02, 0, L * 0.6])
    return _union([handle, head, ring, switch])


def shelf(rng):
    W, D, H = rng.uniform(0.6, 0.8), rng.uniform(0.22, 0.3), rng.uniform(0.7, 1.0)
    t = rng.uniform(0.025, 0.035)
    n = int(rng.integers(3, 5))
    parts = [mf.Manifold.cube([t, D, H], True).translate([sx * (W - t) / 2, 0, H / 2]) for sx in (-1, 1)]
    parts += [mf.Manifold.cube([W, D, t], True).translate([0, 0, t / 2 + k * (H - t) / (n - 1)]) for k in range(n)]
    parts.append(mf.Manifold.cube([W, t, H], True).translate([0, -(D - t) / 2, H / 2]))
    return _union(parts)


def tap(rng):
    r = rng.uniform(0.04, 0.055)
    Hb = rng.uniform(0.45, 0.6)
    base = mf.Manifold.cylinder(0.06, r * 2.6, r * 2.4, 48)
    riser = mf.Manifold.cylinder(Hb, r, r, 48)
    R = rng.uniform(0.15, 0.22)
    bend = _rot(_tube_arc(R, r, 180), [1, 0, 0], 90).translate([R, 0, Hb])  # gooseneck over the top
    drop = mf.Manifold.cylinder(rng.uniform(0.1, 0.2), r, r * 1.1, 48)
    drop = drop.translate([2 * R, 0, Hb - float(drop.bounding_box()[5])])
    lever = _rot(mf.Manifold.cylinder(rng.uniform(0.18, 0.26), r * 0.45, r * 0.35, 24), [0, 1, 0], -75)
    lever = lever.translate([0, 0, Hb * rng.uniform(0.5, 0.8)])
    knob = mf.Manifold.sphere(r * 1.4, 32).translate([0, 0, Hb * rng.uniform(0.5, 0.8)])
    return _union([base, riser, bend, drop, lever, knob])


FAMILIES = {
    "ashtray": ashtray, "bag": bag, "bottle": bottle, "bowl": bowl, "bucket": bucket, "cap": cap,
    "cup": cup, "eraser": eraser, "headset": headset, "helmet": helmet, "jar": jar,
    "microphone": microphone, "shelf": shelf, "tap": tap, "vase": vase,
}


def family_of(cls: str) -> str:
    """'bowl3' -> 'bowl'; an unknown class raises with the known families."""
    base = re.sub(r"\d+$", "", cls)
    if base not in FAMILIES:
        raise AnomalygenError(f"no procedural family for class {cls!r}; families: {', '.join(sorted(FAMILIES))}")
    return base


def normalize(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Centre the bounding box at the origin and scale its diagonal to 1."""
    lo, hi = mesh.bounds
    v = (np.asarray(mesh.vertices) - (lo + hi) / 2) / float(np.linalg.norm(hi - lo))
    return trimesh.Trimesh(v, np.asarray(mesh.faces), process=False)


def make_shape(cls: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """A watertight, unit-diagonal procedural mesh of the family of `cls`."""
    m = FAMILIES[family_of(cls)](rng)
    if m.status() != mf.Error.NoError or m.is_empty():
        raise RuntimeError(f"procedural {cls}: manifold3d status {m.status()}")
    mesh = normalize(g.from_manifold(m))
    return g.canonical(mesh)
