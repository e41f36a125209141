"""FPFH features (Rusu et al., ICRA 2009) through open3d, the field's implementation.

Radii are given in the cloud's units; callers scale them to the object (see btf).
Normals are estimated by open3d and oriented away from the cloud's centroid, which is
consistent on the closed, roughly star-shaped objects of our datasets and costs
nothing (open3d's tangent-plane orientation is far slower); FPFH depends on the sign.
"""

from __future__ import annotations

import numpy as np

FPFH_DIM = 33


def estimate_normals(points: np.ndarray, radius: float, max_nn: int = 30, toward: np.ndarray | None = None):
    """An open3d PointCloud of `points` with normals; oriented away from the centroid,
    or toward the point `toward` when given (a camera, for organized scans)."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=max_nn))
    n = np.asarray(pcd.normals)
    p = np.asarray(pcd.points)
    ref = (p - p.mean(0)) if toward is None else (np.asarray(toward, np.float64) - p)
    flip = np.sum(n * ref, axis=1) < 0
    n[flip] *= -1
    pcd.normals = o3d.utility.Vector3dVector(n)
    return pcd


def fpfh(points: np.ndarray, normal_radius: float, feature_radius: float, normal_max_nn: int = 30,
         feature_max_nn: int = 100, toward: np.ndarray | None = None) -> np.ndarray:
    """(N,33) float32 FPFH descriptors of an (N,3) cloud."""
    import open3d as o3d

    points = np.asarray(points)
    if len(points) == 0:
        return np.zeros((0, FPFH_DIM), np.float32)
    pcd = estimate_normals(points, normal_radius, normal_max_nn, toward)
    feat = o3d.pipelines.registration.compute_fpfh_feature(
        pcd, o3d.geometry.KDTreeSearchParamHybrid(radius=feature_radius, max_nn=feature_max_nn))
    return np.asarray(feat.data, dtype=np.float32).T.copy()
