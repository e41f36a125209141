"""Checks a user's source mesh must pass before any defect is made on it.

A mesh that would silently give a wrong dataset is rejected with the reason (FormatError):
non-finite vertex coordinates (a NaN vertex made a double-walled hollow shell), no
triangle with area, a mesh no repair closes, or one far too thin for the defect sizes (a
two-triangle sheet voxel-remeshed into a slab whose "anomalous" samples had no
anomalous point). Zero-area faces are removed (a repair, recorded). What was done and the
scale factor that brought the mesh to a unit bounding-box diagonal are returned for the
manifest.
"""

from __future__ import annotations

import numpy as np
import trimesh

from anomalygen.errors import FormatError
from anomalygen.shapes.repair import make_watertight

# 2 x volume / area: the wall thickness of a thin shell, a third of a sphere's diameter.
# The catalog's thinnest procedural objects sit well above this (bowls, helmets: ~0.02);
# at unit diagonal a wall this thin cannot hold a dent or groove deeper than tau.
MIN_THICKNESS = 0.006
# thinnest side of the oriented bounding box, as a fraction of the diagonal: a flat sheet
# (voxel-remeshed into a slab one or two voxels thick) sits near 0.008; the catalog's
# flattest objects (ashtray0, eraser0) near 0.1. Defect depths reach 0.07 of the diagonal.
MIN_EXTENT = 0.03


def prepare_source_mesh(mesh: trimesh.Trimesh, voxel_pitch: float) -> tuple[trimesh.Trimesh, dict]:
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
    extent = mesh.bounds[1] - mesh.bounds[0]
    diagonal = float(np.linalg.norm(extent))
    if not diagonal > 0:
        raise FormatError("the mesh has no extent (all vertices at one point)")
    info["original_diagonal"] = float(f"{diagonal:.6g}")
    info["scale"] = float(f"{1.0 / diagonal:.6g}")  # factor applied to reach a unit bounding-box diagonal
    fixed, how = make_watertight(mesh, voxel_pitch)
    info["repair"] = how
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
    return fixed, info
