"""The last-resort repair: rebuild a surface that no cheaper repair could close from a voxel grid.

A signed distance field on a regular grid (open3d: exact point-to-triangle distance; inside or
outside by a majority vote of ray parities, which tolerates open seams) is contoured at zero by
marching cubes (scikit-image). Contouring the distance itself rather than a filled 0/1 voxel
grid puts the surface within a small fraction of the pitch of the user's on flat faces; only
edges and corners sharper than the pitch are rounded. A surface that encloses nothing (a sheet,
a single wall) has no inside: it becomes the shell at one pitch from it, a slab two pitches thick.

The pitch follows the part's thinnest feature (a wall, a lead, or the gap between two leads),
so a feature is at least `SAMPLES_ACROSS` voxels across, within a cap on the grid's size.
"""

from __future__ import annotations

import numpy as np
import trimesh

from anomalygen import geometry as g
from anomalygen.errors import FormatError

SAMPLES_ACROSS = 2.5     # grid samples across the thinnest feature
MAX_VOXELS = 6_000_000   # ~1 s of distance queries and ~150 MB of grid on one core
THIN_QUANTILE = 0.02     # the thinnest feature: this quantile of the local gaps (ignores a few grazing rays)
PROBES = 20_000          # surface points probed for the thinnest feature
VOTES = 7                # rays whose parities vote inside or outside
SPECK = 8                # voxels: a smaller island of inside or outside is noise of the vote


def thinnest_feature(mesh: trimesh.Trimesh) -> float | None:
    """The size of the part's thinnest feature: a low quantile, over points spread on the surface,
    of the distance to the next surface along the face normal, whichever side is nearer (so a
    thin wall, a thin lead and a narrow gap all count, and the file's winding does not matter).
    None when no ray meets another surface (a single sheet)."""
    import open3d as o3d

    pts, face = trimesh.sample.sample_surface(mesh, PROBES, seed=0)
    n = np.asarray(mesh.face_normals)[face]
    eps = 1e-5 * float(np.linalg.norm(mesh.extents))
    sc = g.scene(mesh)
    hits = []
    for s in (1.0, -1.0):
        rays = np.concatenate([pts + s * n * eps, s * n], axis=1).astype(np.float32)
        hits.append(sc.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy())
    t = np.minimum(*hits)
    t = t[np.isfinite(t) & (t > 10 * eps)]
    return float(np.quantile(t, THIN_QUANTILE)) if len(t) else None


def remesh_pitch(mesh: trimesh.Trimesh, coarsest: float) -> tuple[float, float | None]:
    """(pitch, thinnest feature): fine enough for the thinnest feature, never coarser than
    `coarsest`, never finer than MAX_VOXELS allows over the padded bounding box."""
    thin = thinnest_feature(mesh)
    pitch = coarsest if thin is None else min(coarsest, thin / SAMPLES_ACROSS)
    floor = (float(np.prod(np.asarray(mesh.extents) + 6 * coarsest)) / MAX_VOXELS) ** (1 / 3)
    return max(pitch, floor), thin


def _grid(mesh: trimesh.Trimesh, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower corner, (X, Y, Z, 3) float32 points): the bounding box padded by 3 pitches."""
    lo = np.asarray(mesh.bounds[0], np.float64) - 3 * pitch
    shape = np.ceil((np.asarray(mesh.bounds[1]) + 3 * pitch - lo) / pitch).astype(int) + 1
    axes = [lo[i] + pitch * np.arange(shape[i]) for i in range(3)]
    return lo, np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(np.float32)


def _inside(scene, grid: np.ndarray) -> np.ndarray:
    """(X, Y, Z) bool: grid points inside by a majority of ray parities. An open seam makes some
    rays miscount, so the outer layer is outside by definition and specks of a few voxels,
    inside or out, take the side around them."""
    import open3d as o3d
    from scipy import ndimage

    inside = scene.compute_occupancy(o3d.core.Tensor(grid), nsamples=VOTES).numpy() > 0.5
    inside[[0, -1], :, :] = inside[:, [0, -1], :] = inside[:, :, [0, -1]] = False
    for value in (True, False):
        lab, n = ndimage.label(inside == value)
        size = np.bincount(lab.ravel(), minlength=n + 1)
        speck = size < SPECK
        speck[0] = False
        if not value:  # the outside that reaches the box's border is never a speck
            speck[np.unique(np.concatenate([lab[[0, -1]].ravel(), lab[:, [0, -1]].ravel(), lab[:, :, [0, -1]].ravel()]))] = False
        inside[speck[lab]] = not value
    return inside


def voxel_remesh(mesh: trimesh.Trimesh, pitch: float) -> trimesh.Trimesh:
    """A watertight surface of the solid `mesh` encloses (open seams tolerated), contoured from its
    signed distance on a grid of `pitch`; FormatError when the grid holds no surface. Distances
    are queried only in the band where inside meets outside; elsewhere only the side matters."""
    import open3d as o3d
    from scipy import ndimage
    from skimage.measure import marching_cubes

    lo, grid = _grid(mesh, pitch)
    sc = g.scene(mesh)
    inside = _inside(sc, grid)
    if inside.any():
        band = ndimage.binary_dilation(inside, iterations=2) & ndimage.binary_dilation(~inside, iterations=2)
        dist = np.full(inside.shape, 2.0 * pitch, np.float32)
        query = np.ascontiguousarray(grid[band])
        dist[band] = sc.compute_distance(o3d.core.Tensor(query)).numpy()
        sdf = np.where(inside, -dist, dist)
    else:  # no inside anywhere: a sheet; its shell at one pitch is a slab the thinness checks can judge
        query = np.ascontiguousarray(grid.reshape(-1, 3))
        sdf = sc.compute_distance(o3d.core.Tensor(query)).numpy().reshape(grid.shape[:3]) - pitch
    if not (sdf.min() < 0 < sdf.max()):
        raise FormatError("mesh cannot be made watertight (the voxel remesh found no closed volume)")
    verts, faces, _, _ = marching_cubes(sdf, level=0.0, spacing=(pitch, pitch, pitch))
    out = trimesh.Trimesh(verts + lo, faces, process=True)
    bodies = [b for b in out.split(only_watertight=False, repair=False) if abs(b.volume) >= SPECK * pitch ** 3]
    out = trimesh.util.concatenate(bodies) if bodies else out
    if out.volume < 0:  # one orientation for every shell (an inner cavity stays a cavity)
        out.invert()
    if not (out.is_watertight and out.volume > 0):
        raise FormatError("mesh cannot be made watertight (voxel remesh still open)")
    return out
