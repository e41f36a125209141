"""Checks a user's source mesh must pass before any defect is made on it.

A mesh that would silently give a wrong dataset is rejected with the reason (FormatError):
non-finite vertex coordinates (a NaN vertex made a double-walled hollow shell), no
triangle with area, a mesh no repair closes, one far too thin for the defect sizes (a
two-triangle sheet voxel-remeshed into a slab whose "anomalous" samples had no
anomalous point), or one the repair moved farther from the user's surface than the
recipe allows (anomalygen.shapes.repair). Zero-area faces are removed (a repair,
recorded). What was done, how far it moved the surface, and the scale and centre that
bring the file's coordinates to the class mesh (unit bounding-box diagonal) are returned
for the manifest.
"""

from __future__ import annotations

import numpy as np
import trimesh

from anomalygen import geometry as g
from anomalygen.errors import FormatError
from anomalygen.shapes.catalog import normalize
from anomalygen.shapes.repair import RepairSettings, refusal, repair

# 2 x volume / area: the wall thickness of a thin shell, a third of a sphere's diameter.
# The catalog's thinnest procedural objects sit well above this (bowls, helmets: ~0.02);
# at unit diagonal a wall this thin cannot hold a dent or groove deeper than tau.
MIN_THICKNESS = 0.006
# thinnest side of the oriented bounding box, as a fraction of the diagonal: a flat sheet
# (voxel-remeshed into a slab one or two voxels thick) sits near 0.008; the catalog's
# flattest objects (ashtray0, eraser0) near 0.1. Defect depths reach 0.07 of the diagonal.
MIN_EXTENT = 0.03


def prepare_source_mesh(mesh: trimesh.Trimesh, settings: RepairSettings = RepairSettings()) -> tuple[trimesh.Trimesh, dict]:
    """(watertight unit-diagonal mesh, info for the manifest) or FormatError saying why not."""
    v = np.asarray(mesh.vertices, np.float64)
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        raise FormatError(f"{int(bad.sum())} of {len(v)} vertices have NaN or infinite coordinates")
    faces = np.asarray(mesh.faces)
    area = np.asarray(mesh.area_faces)
    keep = area > 1e-12 * max(float(area.max(initial=0.0)), 1e-300)
    info: dict = {}
    if not keep.any():
        raise FormatError("every triangle has zero area")
    if not keep.all():
        info["removed_degenerate_faces"] = int((~keep).sum())
        mesh = trimesh.Trimesh(v, faces[keep], process=True)
    lo, hi = mesh.bounds
    diagonal = float(np.linalg.norm(hi - lo))
    if not diagonal > 0:
        raise FormatError("the mesh has no extent (all vertices at one point)")
    info["original_diagonal"] = float(f"{diagonal:.6g}")
    r = repair(mesh, settings)
    # the class mesh is the repaired one at unit diagonal: file coordinates -> (x - center) * scale
    rlo, rhi = r.mesh.bounds
    rdiag = float(np.linalg.norm(rhi - rlo))
    info["scale"] = float(f"{1.0 / (diagonal * rdiag):.6g}")
    info["center"] = [float(f"{x:.6g}") for x in (lo + hi) / 2 + diagonal * (rlo + rhi) / 2]
    fixed = g.canonical(normalize(r.mesh)) if r.steps else r.mesh
    how = r.how
    info["repair"] = how
    if r.steps:
        info["repair_steps"] = list(r.steps)
        d = r.distance
        info["repair_distance_tau"] = {"user_to_repaired": float(f"{d.user_to_repaired / settings.tau:.3g}"),
                                       "repaired_to_user": float(f"{d.repaired_to_user / settings.tau:.3g}")}
        info["repair_share_beyond_tau"] = {"user_to_repaired": float(f"{d.user_share_beyond:.3g}"),
                                           "repaired_to_user": float(f"{d.repaired_share_beyond:.3g}")}
    if r.pitch is not None:
        info["voxel_pitch"] = float(f"{r.pitch:.4g}")
        info["thinnest_feature"] = None if r.thinnest is None else float(f"{r.thinnest:.4g}")
    thickness = 2.0 * float(fixed.volume) / max(float(fixed.area), 1e-12)
    info["thickness"] = float(f"{thickness:.4g}")
    extents = np.sort(np.asarray(fixed.bounding_box_oriented.primitive.extents, np.float64))
    flat = float(extents[0] / max(np.linalg.norm(extents), 1e-12))
    info["thinnest_side"] = float(f"{flat:.4g}")
    if flat < MIN_EXTENT:
        raise FormatError(f"too thin for the defect sizes: its thinnest side is {flat:.4f} of the bounding-box "
                          f"diagonal (needs >= {MIN_EXTENT}); a flat sheet cannot hold a dent, hole or crack"
                          + (" (voxel remeshing made a slab of an open surface)" if how == "voxel-remeshed" else ""))
    if thickness < MIN_THICKNESS:
        raise FormatError(f"too thin for the defect sizes: mean wall {thickness:.4f} of the bounding-box diagonal "
                          f"(needs >= {MIN_THICKNESS}); an open sheet or a single wall cannot be made a solid"
                          + (" (voxel remeshing made a slab of it)" if how == "voxel-remeshed" else ""))
    why = refusal(r, settings)
    if why:
        raise FormatError(why)
    return fixed, info
