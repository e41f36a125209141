"""Per-point labels that are true to the geometry, whichever engine made the defect.

The rule (documented in the README):

    a point p of the defective sample is anomalous  iff
        dist(p, ORIGINAL surface) > tau
     or (the defect removed material: hole, break, crack)
        dist(p, rim of the removed region) < rim_distance

`tau` and `rim_distance` are absolute lengths here; the build driver scales the
recipe's fractions by the object's bounding-box diagonal. The first clause marks
everything that moved or was newly cut; the second marks the lip around a cut,
whose points lie on the original surface yet belong to the defect.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from anomalygen.mesh.result import DefectResult
from anomalygen.geometry import scene


def distance_to_surface(points: np.ndarray, mesh: trimesh.Trimesh) -> np.ndarray:
    """Unsigned distance of each point to the triangle surface (open3d/Embree, exact)."""
    import open3d as o3d

    q = o3d.core.Tensor(np.asarray(points, dtype=np.float32))
    return scene(mesh).compute_distance(q).numpy().astype(np.float64)


def label_points(points: np.ndarray, original_mesh: trimesh.Trimesh, result: DefectResult | None,
                 tau: float, rim_distance: float) -> np.ndarray:
    """(N,) uint8 labels for points sampled on `result.mesh` (see the module rule).

    `result=None` means a normal sample: every label is 0.
    """
    return label_parts(points, original_mesh, result, tau, rim_distance)[0]


def label_parts(points: np.ndarray, original_mesh: trimesh.Trimesh, result: DefectResult | None,
                tau: float, rim_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """((N,) uint8 labels, (N,) bool: farther than tau from the original surface). A label the
    second misses came from the rim rule alone: a point of the original surface beside a cut."""
    points = np.asarray(points, dtype=np.float64)
    beyond = np.zeros(len(points), bool)
    if result is None:
        return beyond.astype(np.uint8), beyond
    near = np.ones(len(points), bool)
    if result.changed_bounds is not None:  # the rest lies on untouched surface: distance 0
        lo, hi = np.asarray(result.changed_bounds, dtype=np.float64)
        pad = 2 * tau + 1e-6
        near = np.all((points >= lo - pad) & (points <= hi + pad), axis=1)
    beyond[near] = distance_to_surface(points[near], original_mesh) > tau
    lab = beyond.copy()
    if result.removal and result.rim_points is not None and len(result.rim_points):
        rim = np.asarray(result.rim_points, dtype=np.float64)
        # only points in the rim's box widened by rim_distance can lie within rim_distance of it
        box = np.all((points >= rim.min(0) - rim_distance) & (points <= rim.max(0) + rim_distance), axis=1)
        d, _ = cKDTree(rim).query(points[box], k=1, distance_upper_bound=rim_distance)
        lab[box] |= d < rim_distance
    return lab.astype(np.uint8), beyond


def beyond_share(labels: np.ndarray, beyond: np.ndarray) -> float:
    """Share of the labelled points that lie farther than tau from the original surface (0 when
    none is labelled): how much of a removal defect is missing material rather than its rim."""
    lab = np.asarray(labels).astype(bool)
    return float(beyond[lab].mean()) if lab.any() else 0.0
