"""FPFH features (Rusu et al., ICRA 2009) through open3d, the field's implementation, and the
neighbourhood settings every detector that computes them shares (btf, zal3d).

Radii are in units of the input's point spacing (`point_spacing`: the median distance from a
point to its nearest other point), measured on the training data at fit time and kept for
scoring, so that a neighbourhood holds about the same number of points whatever the resolution
or the object's size (3D-ADS sets them in voxels: voxel_size x 2 and x 5). Radii in object
units would hold ~3x fewer points at 128 px than at 224 px, where FPFH's normal radius nears
the spacing itself and the histograms degenerate.
Normals are estimated by open3d and oriented away from the cloud's centroid, which is
consistent on the closed, roughly star-shaped objects of our datasets and costs
nothing (open3d's tangent-plane orientation is far slower); FPFH depends on the sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from anomalygen.errors import AnomalygenError
from anomalygen.detectors.settings import bounded

FPFH_DIM = 33


@dataclass(frozen=True)
class FPFHSettings:
    """A recipe's `fpfh:` section. Radii in point spacings; max_nn caps each neighbourhood (3D-ADS: 30 / 100)."""

    normal_radius: float = bounded(3.75, 1.0, 10**4)
    feature_radius: float = bounded(9.35, 1.0, 10**4)
    normal_max_nn: int = bounded(30, 3, 10**5)
    feature_max_nn: int = bounded(100, 3, 10**5)

    def features(self, points: np.ndarray, spacing: float, toward: np.ndarray | None = None) -> np.ndarray:
        """(N,33) FPFH of an (N,3) cloud with these neighbourhoods at `spacing` (the training data's)."""
        return fpfh(points, self.normal_radius * spacing, self.feature_radius * spacing, self.normal_max_nn,
                    self.feature_max_nn, toward)


def point_spacing(points: np.ndarray) -> float:
    """Median distance from a point of an (N,3) cloud to its nearest other point; repeated points
    (a scan resized up repeats pixels) count once. 0 for fewer than two distinct points."""
    pts = np.unique(np.asarray(points, np.float64).reshape(-1, 3), axis=0)
    if len(pts) < 2:
        return 0.0
    d, _ = cKDTree(pts).query(pts, k=2)
    return float(np.median(d[:, 1]))


def training_spacing(clouds) -> float:
    """The spacing FPFH radii are measured in: the median `point_spacing` of the training clouds (1 when
    none has two distinct points)."""
    values = [s for s in (point_spacing(c) for c in clouds) if s > 0]
    return float(np.median(values)) if values else 1.0


def saved_spacing(state: dict, directory) -> float:
    """The spacing a saved model's FPFH radii were measured in (its state's "spacing")."""
    if "spacing" not in state:
        raise AnomalygenError(f"{directory}: the saved model records no point spacing (its FPFH radii were "
                              "fractions of the object size); train it again")
    return float(state["spacing"])


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
    """(N,33) float32 FPFH descriptors of an (N,3) cloud; radii in the cloud's units."""
    import open3d as o3d

    points = np.asarray(points)
    if len(points) == 0:
        return np.zeros((0, FPFH_DIM), np.float32)
    pcd = estimate_normals(points, normal_radius, normal_max_nn, toward)
    feat = o3d.pipelines.registration.compute_fpfh_feature(
        pcd, o3d.geometry.KDTreeSearchParamHybrid(radius=feature_radius, max_nn=feature_max_nn))
    return np.asarray(feat.data, dtype=np.float32).T.copy()
