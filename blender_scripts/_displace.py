"""Defects that deform the surface without cutting it: bulge, concavity, scratch, bending.

Runs INSIDE Blender. Sculpt brush strokes cannot run in background mode, so these
use what does: proportional-edit transforms (bulge, concavity, bending) and
Displace modifiers masked by vertex-group weights, with a procedural Clouds
texture for surface roughness (scratch, roughness on a bump). They move vertices
only; the mesh's connectivity changes only where `refine_near` first subdivides
the faces near a narrow defect.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from _params import Params, object_scale, path_start, site
from _scene import apply_modifier, bvh_of, select_vertices, vertices, weight_group
from _surface import polyline_distance, refine_near, surface_path, tangent_basis, unit

# proportional-edit falloffs that `profile` reproduces; a bump draws from the first four
FALLOFFS = ("SMOOTH", "SPHERE", "ROOT", "SHARP", "LINEAR", "INVERSE_SQUARE")


def add_roughness(ob, weights: np.ndarray, amplitude: float, size: float, rng) -> None:
    """Sculpt-like irregularity: Displace with a Clouds texture, masked by a weight group."""
    if amplitude <= 0 or not (weights > 0).any():
        return
    weight_group(ob, "rough", weights)
    tex = bpy.data.textures.new("clouds", "CLOUDS")
    tex.noise_scale = max(size, 1e-6)
    tex.noise_depth = 2
    empty = bpy.data.objects.new("noise_origin", None)   # a seeded offset of the texture space
    bpy.context.scene.collection.objects.link(empty)
    empty.location = tuple(rng.uniform(-100, 100, 3))
    mod = ob.modifiers.new("rough", "DISPLACE")
    mod.texture, mod.texture_coords, mod.texture_coords_object = tex, "OBJECT", empty
    mod.direction, mod.vertex_group, mod.strength, mod.mid_level = "NORMAL", "rough", 2 * amplitude, 0.5
    apply_modifier(ob, mod)


def profile(t: np.ndarray, falloff: str) -> np.ndarray:
    """Blender's proportional-edit falloff curves, t = distance / radius (0 at centre)."""
    t = np.clip(t, 0, 1)
    s = 1 - t
    return {"SMOOTH": 3 * s ** 2 - 2 * s ** 3, "SPHERE": np.sqrt(np.clip(2 * s - s * s, 0, 1)),
            "ROOT": np.sqrt(s), "SHARP": s * s, "LINEAR": s,
            "INVERSE_SQUARE": s * (2 - s)}[falloff]


def do_bump(ob, P: Params, sign: float) -> dict:
    """Bulge (sign +1) / concavity (-1): proportional-edit translate of the centre along its normal."""
    L, _, _ = object_scale(ob)
    c, n = site(ob, P)
    radius = P.length("radius", 0.06, 0.12)
    height = P.length("height", 0.015, 0.035)
    falloff = P.choice("falloff", FALLOFFS[:4])
    roughness = P.number("roughness", 0.0, 0.25)
    refine_near(ob, c[None], radius * 1.1, radius / 8)
    co = vertices(ob)
    d = np.linalg.norm(co - c, axis=1)
    centre = int(np.argmin(d))
    # move the centre vertex so the apex lands where the job says: c + sign*height*n
    select_vertices(ob, np.arange(len(co)) == centre)
    # hidden vertices are outside the transform: connected falloff then walks only the
    # neighbourhood (40x faster on 50k vertices) and cannot leak past the radius
    ob.data.vertices.foreach_set("hide", (d > 1.5 * radius).astype(np.int32))
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.transform.translate(value=tuple(sign * height * n), orient_type="GLOBAL",
                                use_proportional_edit=True, proportional_edit_falloff=falloff,
                                proportional_size=radius, use_proportional_connected=True)
    bpy.ops.mesh.reveal(select=False)
    bpy.ops.object.mode_set(mode="OBJECT")
    add_roughness(ob, profile(d / radius, "SMOOTH") * (d < radius), roughness * height, radius / 3, P.rng)
    moved = np.linalg.norm(vertices(ob)[: len(co)] - co, axis=1) > 1e-7 * L
    return {"moved_vertices": int(moved.sum())}


def do_scratch(ob, P: Params) -> dict:
    """Shallow narrow grooves along wavy surface paths (Displace masked by the paths' weight group).

    `strokes` parallel strokes `spacing` widths apart; the groove profile is a smooth
    V of half-width `width` and depth `depth`, tapered at both ends.
    """
    L, c, n, d0 = path_start(ob, P)
    side = np.cross(n, d0)
    length = P.length("length", 0.15, 0.35)
    width = P.length("width", 0.006, 0.012)
    depth = P.length("depth", 0.006, 0.012)
    waviness = P.number("waviness", 0.0, 0.15)
    step = P.length("step", 0, 0) or max(width / 2, length / 200)
    P.out["step"] = step
    strokes = int(P.number("strokes", 1, 1))
    spacing = P.number("spacing", 2.5, 2.5)
    bvh = bvh_of(ob)
    paths = []
    for k in range(strokes):
        start = c - 0.5 * length * d0 + side * (k - (strokes - 1) / 2) * spacing * width
        path, _ = surface_path(bvh, start, d0, length, step, waviness, P.rng)
        paths.append(path)
    P.out["paths"] = [p.round(6).tolist() for p in paths]
    for path in paths:
        refine_near(ob, path, 3 * width, width / 3)
    co = vertices(ob)
    w = np.zeros(len(co))
    for path in paths:
        d = polyline_distance(co, path, width)
        # taper: full depth in the middle of the stroke, fading over the last 15% at each end
        s = np.linalg.norm(co - path[0], axis=1) / max(length, 1e-12)
        ends = np.clip(np.minimum(s, 1 - s) / 0.15, 0.3, 1.0)
        w = np.maximum(w, profile(d / width, "SMOOTH") * (d < width) * ends)
    if not (w > 0).any():
        raise RuntimeError("scratch path touches no vertex; mesh too coarse for this width")
    weight_group(ob, "groove", w)
    mod = ob.modifiers.new("groove", "DISPLACE")
    mod.direction, mod.vertex_group, mod.strength, mod.mid_level = "NORMAL", "groove", -depth, 0.0
    apply_modifier(ob, mod)
    return {"moved_vertices": int((w > 0).sum())}


def do_bending(ob, P: Params) -> dict:
    """Rotate the part beyond a cut plane rigidly; proportional editing blends a transition band."""
    L, mid, co = object_scale(ob)
    # the bent part is an end of the object along a random direction
    direction = unit(P.vector("direction", unit(P.rng.normal(size=3))))
    proj = co @ direction
    frac = P.number("fraction", 0.15, 0.35)   # share of the extent along `direction` that bends
    lo, hi = proj.min(), proj.max()
    pivot_level = hi - frac * (hi - lo)
    near = np.abs(proj - pivot_level) < 0.05 * (hi - lo)
    base = co[near].mean(0) if near.any() else mid
    pivot = P.vector("pivot", base + (pivot_level - base @ direction) * direction)
    axis = P.vector("axis", unit(np.cross(direction, unit(P.rng.normal(size=3)))))
    axis = unit(axis - np.dot(axis, direction) * direction)
    angle = P.number("angle", 8.0, 20.0)          # degrees
    transition = P.length("transition", 0.05, 0.12)
    rigid_from = P.length("rigid_from", 0.0, 0.0)  # rigid part starts this far past the pivot plane
    sel = (co - pivot) @ direction > rigid_from
    if sel.sum() == 0 or sel.all():
        raise RuntimeError("bending plane selects no vertex or all of them")
    select_vertices(ob, sel)
    e1, e2 = tangent_basis(axis)
    orient = (tuple(e1), tuple(e2), tuple(axis))   # Blender reads the third ROW as the rotation axis (measured)
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.transform.rotate(value=math.radians(angle), orient_axis="Z", orient_type="GLOBAL",
                             orient_matrix=orient, orient_matrix_type="GLOBAL",
                             center_override=tuple(pivot), use_proportional_edit=True,
                             proportional_edit_falloff="SMOOTH", proportional_size=transition,
                             use_proportional_connected=False)
    bpy.ops.object.mode_set(mode="OBJECT")
    return {"moved_vertices": int((np.linalg.norm(vertices(ob) - co, axis=1) > 1e-7 * L).sum()),
            "rigid_vertices": int(sel.sum())}
