"""Make a scanned/modelled mesh usable for defect synthesis: watertight, one scale.

ShapeNet meshes are often soups (open seams, duplicated or inner faces). We try the
cheap trimesh repairs first; if the mesh is still not a closed volume we rebuild it
by voxelizing at `pitch` (a fraction of the diagonal), filling, and running marching
cubes, which always yields a watertight surface of the same outer shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from anomalygen.errors import FormatError
from anomalygen import geometry as g
from anomalygen.shapes.catalog import normalize


def load_mesh(path) -> trimesh.Trimesh:
    """Read obj/ply/stl/off as one mesh (scenes are concatenated); FormatError if none."""
    try:
        m = trimesh.load(str(path), force="mesh", process=False, skip_materials=True)
    except Exception:  # trimesh raises many kinds for corrupt files
        kind = Path(str(path)).suffix.lstrip(".").upper() or "mesh"
        raise FormatError(f"{path}: cannot read it as a {kind} mesh file (expected vertices and triangles)") from None
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise FormatError(f"{path}: no triangles in file")
    # checked before processing, which would silently drop such vertices and open the mesh
    bad = ~np.isfinite(np.asarray(m.vertices, np.float64)).all(axis=1)
    if bad.any():
        raise FormatError(f"{path}: {int(bad.sum())} of {len(bad)} vertices have NaN or infinite coordinates")
    m.process()
    return m


def make_watertight(mesh: trimesh.Trimesh, pitch: float = 0.008) -> tuple[trimesh.Trimesh, str]:
    """(watertight unit-diagonal mesh, how: 'as-is' | 'repaired' | 'voxel-remeshed'); FormatError if hopeless."""
    m = normalize(mesh)
    if m.is_watertight and m.is_volume:
        return g.canonical(m), "as-is"
    m = m.copy()
    m.merge_vertices()
    m.update_faces(m.nondegenerate_faces())
    m.update_faces(m.unique_faces())
    trimesh.repair.fill_holes(m)
    trimesh.repair.fix_normals(m)
    if m.is_watertight and m.is_volume:
        return g.canonical(normalize(m)), "repaired"
    try:
        vox = m.voxelized(pitch).fill()
        if vox.filled_count == 0:
            raise ValueError("empty voxel grid")
        mc = vox.marching_cubes  # in voxel index units
        mc.apply_transform(vox.transform)
        mc = max(mc.split(only_watertight=True), key=lambda x: x.volume) if mc.body_count > 1 else mc
    except Exception:
        raise FormatError("mesh cannot be made watertight (the voxel remesh found no closed volume)") from None
    if not (mc.is_watertight and mc.is_volume):
        raise FormatError("mesh cannot be made watertight (voxel remesh still open)")
    return g.canonical(normalize(mc)), "voxel-remeshed"
