"""Easy synthetic datasets in the public layouts, for smoke-testing detectors end to end.

Not a data generator for users (that is `anomalygen build-shapenet` / `depth-defects`):
these are spheres and tori with large smooth bulges/dents, and a dome on a plane seen by a
depth camera with a bump, small enough to write in a second and easy enough that any sound
detector must beat chance on them. Tests and the detector benchmark use them when no built
dataset is at hand. Written only through anomalygen.io writers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from anomalygen.io import GOOD, ImageSample, PointSample, anomaly_shapenet, mvtec3d

POINT_SHAPES = ("sphere", "torus")


def _sphere(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.copy(), v  # points, outward normals


def _torus(n: int, rng: np.random.Generator, big: float = 1.0, small: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    # Area-uniform sampling: accept the tube angle v with probability (R + r cos v) / (R + r).
    u, v = np.empty(0), np.empty(0)
    while len(u) < n:
        cu, cv = rng.uniform(0, 2 * np.pi, 2 * n), rng.uniform(0, 2 * np.pi, 2 * n)
        keep = rng.uniform(size=2 * n) < (big + small * np.cos(cv)) / (big + small)
        u, v = np.r_[u, cu[keep]], np.r_[v, cv[keep]]
    u, v = u[:n], v[:n]
    normals = np.stack([np.cos(v) * np.cos(u), np.cos(v) * np.sin(u), np.sin(v)], 1)
    centre = np.stack([big * np.cos(u), big * np.sin(u), np.zeros(n)], 1)
    return centre + small * normals, normals


def toy_point_cloud(shape: str, n: int, rng: np.random.Generator, defect: str = GOOD, height: float = 0.3,
                    width: float = 0.25, tau: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(points (n,3), labels (n,)) of a sphere/torus; 'bulge' / 'concavity' push a Gaussian bump of
    `height` and `width` along the normals around a random surface point; label = moved more than tau."""
    points, normals = (_sphere if shape == "sphere" else _torus)(n, rng)
    labels = np.zeros(n, np.uint8)
    if defect != GOOD:
        c = points[rng.integers(n)]
        disp = height * np.exp(-np.sum((points - c) ** 2, 1) / (2 * width ** 2))
        sign = -1.0 if defect == "concavity" else 1.0
        points = points + sign * disp[:, None] * normals
        labels = (disp > tau).astype(np.uint8)
    return points.astype(np.float32), labels


def write_toy_point_dataset(root: str | os.PathLike, shapes=POINT_SHAPES, n_train: int = 4, n_good: int = 4,
                            n_anomalous: int = 4, n_points: int = 2000, seed: int = 0,
                            defects=("bulge", "concavity")) -> Path:
    """Anomaly-ShapeNet layout: classes '<shape>0', 4 train templates, good and defective test clouds."""
    root = Path(root)
    for si, shape in enumerate(shapes):
        rng = np.random.default_rng([seed, si])
        cls = f"{shape}0"
        for k in range(n_train):
            pts, lab = toy_point_cloud(shape, n_points, rng)
            anomaly_shapenet.write_sample(root, PointSample(pts, lab, cls, "train", GOOD,
                                                            anomaly_shapenet.sample_name(cls, "train", k)))
        jobs = [GOOD] * n_good + [defects[i % len(defects)] for i in range(n_anomalous)]
        for i, d in enumerate(jobs):
            pts, lab = toy_point_cloud(shape, n_points, rng, d)
            anomaly_shapenet.write_sample(root, PointSample(pts, lab, cls, "test", d,
                                                            anomaly_shapenet.sample_name(cls, "test", i, d)))
    return root


def toy_depth_scan(size: int, rng: np.random.Generator, defect: str = GOOD, height: float = 0.04,
                   width: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyz (H,W,3) metres, rgb, mask) of a dome on a plane 1 m from a camera at the origin; a
    'bump' adds a Gaussian bump toward the camera on the dome. The image border is invalid (zeros)."""
    lin = np.linspace(-0.3, 0.3, size)
    x, y = np.meshgrid(lin, lin)
    r2 = x ** 2 + y ** 2
    z = 1.0 - 0.12 * np.clip(1 - r2 / 0.2 ** 2, 0, None) ** 0.5 + rng.normal(0, 2e-4, x.shape)
    mask = np.zeros(x.shape, np.uint8)
    if defect != GOOD:
        ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.1)
        cx, cy = rad * np.cos(ang), rad * np.sin(ang)
        bump = height * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width ** 2))
        z = z - bump
        mask = (bump > 0.004).astype(np.uint8)
    xyz = np.stack([x, y, z], -1).astype(np.float32)
    xyz[:2], xyz[-2:], xyz[:, :2], xyz[:, -2:] = 0, 0, 0, 0
    mask[~np.any(xyz != 0, -1)] = 0
    shade = np.clip((1.05 - z) * 900, 0, 255).astype(np.uint8)
    return xyz, np.repeat(shade[..., None], 3, -1), mask


def write_toy_image_dataset(root: str | os.PathLike, classes=("dome",), n_train: int = 4, n_good: int = 3,
                            n_anomalous: int = 3, size: int = 48, seed: int = 0) -> Path:
    """MVTec 3D-AD layout: <class>/train/good and <class>/test/{good,bump} with xyz, rgb and gt."""
    root = Path(root)
    for ci, cls in enumerate(classes):
        rng = np.random.default_rng([seed, 100 + ci])
        for k in range(n_train):
            xyz, rgb, mask = toy_depth_scan(size, rng)
            mvtec3d.write_sample(root, ImageSample(xyz, rgb, mask, cls, "train", GOOD, mvtec3d.sample_name(k)))
        for i in range(n_good):
            xyz, rgb, mask = toy_depth_scan(size, rng)
            mvtec3d.write_sample(root, ImageSample(xyz, rgb, mask, cls, "test", GOOD, mvtec3d.sample_name(i)))
        for i in range(n_anomalous):
            xyz, rgb, mask = toy_depth_scan(size, rng, "bump")
            mvtec3d.write_sample(root, ImageSample(xyz, rgb, mask, cls, "test", "bump", mvtec3d.sample_name(i)))
    return root
