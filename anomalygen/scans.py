"""Organized scans (H x W x 3 xyz images, zeros where nothing was measured): the
preprocessing the field applies to MVTec 3D-AD before anything else (BTF, M3DM, DAS3D).

    remove_plane        RANSAC plane on the border pixels, drop points within 0.005 of it
                        (numpy only)  -> foreground mask
    remove_background   remove_plane, then keep the largest DBSCAN cluster (open3d)  -> foreground mask
    resize_sample       xyz and masks by nearest neighbour (an invalid pixel never blends
                        into a valid one), rgb bilinear

Shared by the depth-defect synthesizer, the build drivers and the detectors, so it sits
below all of them. The plane fit is a vectorized numpy RANSAC driven by our seeded
Generator instead of open3d's segment_plane, whose global random state would make
outputs depend on the worker that ran them; DBSCAN is open3d's (deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from anomalygen.errors import AnomalygenError


@dataclass(frozen=True)
class BackgroundConfig:
    border: float = 0.1
    plane_distance: float = 0.005
    ransac_iterations: int = 200
    dbscan_eps: float = 4.0
    dbscan_min_points: int = 10


def fit_plane_ransac(pts: np.ndarray, distance: float, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """(4,) plane (a, b, c, d), unit normal, with the most inliers within `distance`, refined by least squares."""
    if len(pts) < 3:
        raise AnomalygenError("fewer than 3 border points: cannot fit a background plane")
    pts = pts.astype(np.float64)
    sub = pts if len(pts) <= 20000 else pts[rng.choice(len(pts), 20000, replace=False)]
    tri = sub[rng.integers(0, len(sub), (iterations, 3))]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-12
    if not ok.any():
        raise AnomalygenError("border points are collinear: cannot fit a background plane")
    n = n[ok] / norm[ok, None]
    d = -np.einsum("ij,ij->i", n, tri[ok, 0])
    counts = (np.abs(sub @ n.T + d) < distance).sum(axis=0)
    best = int(np.argmax(counts))
    inl = pts[np.abs(pts @ n[best] + d[best]) < distance]
    c = inl.mean(axis=0)
    normal = np.linalg.svd(inl - c, full_matrices=False)[2][-1]
    return np.append(normal, -normal @ c)


def pixel_spacing(xyz: np.ndarray, valid: np.ndarray) -> float:
    """Median 3-D distance between horizontally adjacent valid pixels."""
    both = valid[:, 1:] & valid[:, :-1]
    if not both.any():
        return 1.0
    return float(np.median(np.linalg.norm(xyz[:, 1:][both] - xyz[:, :-1][both], axis=-1)))


def remove_plane(xyz: np.ndarray, cfg: BackgroundConfig = BackgroundConfig(),
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """(H, W) bool: valid pixels farther than cfg.plane_distance from the border-fitted RANSAC plane
    (numpy only; DAS3D's Section 4.1 preprocessing is this step alone).

    With fewer than 3 valid border pixels there is no plane to fit and every valid pixel is kept.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    valid = np.any(xyz != 0, axis=-1)
    h, w = valid.shape
    bh, bw = max(1, int(round(h * cfg.border))), max(1, int(round(w * cfg.border)))
    ring = np.zeros_like(valid)
    ring[:bh], ring[-bh:], ring[:, :bw], ring[:, -bw:] = True, True, True, True
    if (ring & valid).sum() >= 3:
        plane = fit_plane_ransac(xyz[ring & valid], cfg.plane_distance, cfg.ransac_iterations, rng)
        dist = np.abs(xyz.astype(np.float64) @ plane[:3] + plane[3])
        return valid & (dist >= cfg.plane_distance)
    return valid.copy()  # no background visible on the border (a cropped or pre-cleaned scan)


def remove_background(xyz: np.ndarray, cfg: BackgroundConfig = BackgroundConfig(),
                      rng: np.random.Generator | None = None) -> np.ndarray:
    """(H, W) bool foreground: valid pixels off the border-fitted plane (remove_plane), largest DBSCAN cluster.

    With fewer than 3 valid border pixels there is no plane to fit and only DBSCAN applies.
    """
    import open3d as o3d

    cand = remove_plane(xyz, cfg, rng)
    valid = np.any(xyz != 0, axis=-1)
    h, w = valid.shape
    if not cand.any():
        return cand
    idx = np.flatnonzero(cand)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.reshape(-1, 3)[idx].astype(np.float64)))
    eps = cfg.dbscan_eps * pixel_spacing(xyz, valid)
    labels = np.asarray(pcd.cluster_dbscan(eps=eps, min_points=cfg.dbscan_min_points, print_progress=False))
    fg = np.zeros(h * w, bool)
    if (labels >= 0).any():
        biggest = np.bincount(labels[labels >= 0]).argmax()
        fg[idx[labels == biggest]] = True
    return fg.reshape(h, w)


def _resize_nearest(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of (H, W[, C]) to size (h, w), pixel centres aligned."""
    h, w = a.shape[:2]
    ys = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    xs = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return a[ys][:, xs]


def resize_sample(xyz: np.ndarray, rgb: np.ndarray | None, mask: np.ndarray | None, size: int):
    """Resize to size x size (size 0 or equal: unchanged). Returns (xyz, rgb, mask)."""
    if not size or xyz.shape[:2] == (size, size):
        return xyz, rgb, mask
    xyz2 = np.ascontiguousarray(_resize_nearest(xyz, (size, size)))
    rgb2 = None if rgb is None else np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))
    mask2 = None if mask is None else np.ascontiguousarray(_resize_nearest(mask, (size, size)))
    return xyz2, rgb2, mask2
