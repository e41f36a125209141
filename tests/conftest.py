"""Shared fixtures: tiny datasets written in the exact public layouts."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygen.io import ImageSample, PointSample, anomaly_shapenet, mvtec3d, real3d


def sphere_points(rng: np.random.Generator, n: int, dtype=np.float32) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(dtype)


def bulge_sample(rng, n=500, cls="bowl0", name="0_bulge", split="test"):
    pts = sphere_points(rng, n)
    labels = (pts[:, 2] > 0.8).astype(np.uint8)
    pts[labels == 1] *= 1.2
    return PointSample(points=pts, labels=labels, cls=cls, split=split, defect="bulge", name=name)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def shapenet_dir(tmp_path, rng):
    """Anomaly-ShapeNet layout: 2 classes, 2 train, 1 normal + 2 anomalous test each."""
    root = tmp_path / "shapenet"
    for cls in ("bowl0", "vase1"):
        for k in range(2):
            anomaly_shapenet.write_sample(root, PointSample(sphere_points(rng, 300), np.zeros(300, np.uint8), cls, "train",
                                                            name=anomaly_shapenet.sample_name(cls, "train", k)))
        anomaly_shapenet.write_sample(root, PointSample(sphere_points(rng, 300), np.zeros(300, np.uint8), cls, "test",
                                                        name=anomaly_shapenet.sample_name(cls, "test", 0)))
        for i, d in ((1, "bulge"), (2, "hole")):
            s = bulge_sample(rng, 400, cls, anomaly_shapenet.sample_name(cls, "test", i, d))
            s.defect = d
            anomaly_shapenet.write_sample(root, s)
    return root


def image_sample(rng, cls="bagel", split="test", defect="crack", name="000", hw=(24, 32)):
    h, w = hw
    xyz = np.zeros((h, w, 3), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    valid = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 2.5) ** 2
    xyz[valid] = np.stack([xx[valid] * 1e-3, yy[valid] * 1e-3, 0.5 + rng.random(valid.sum()) * 1e-3], -1)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if defect != "good":
        mask[h // 2 - 2:h // 2 + 2, w // 2 - 3:w // 2 + 3] = 1
    return ImageSample(xyz=xyz, rgb=rgb, mask=mask, cls=cls, split=split, defect=defect, name=name)


@pytest.fixture
def mvtec_dir(tmp_path, rng):
    root = tmp_path / "mvtec"
    for i in range(2):
        mvtec3d.write_sample(root, image_sample(rng, split="train", defect="good", name=mvtec3d.sample_name(i)))
    mvtec3d.write_sample(root, image_sample(rng, split="validation", defect="good", name="000"))
    mvtec3d.write_sample(root, image_sample(rng, split="test", defect="good", name="000"))
    mvtec3d.write_sample(root, image_sample(rng, split="test", defect="crack", name="000"))
    mvtec3d.write_sample(root, image_sample(rng, split="test", defect="hole", name="000"))
    return root


@pytest.fixture
def real3d_dir(tmp_path, rng):
    root = tmp_path / "real3d"
    for k in range(2):
        real3d.write_sample(root, PointSample(sphere_points(rng, 200), np.zeros(200, np.uint8), "duck", "train",
                                              name=real3d.sample_name("duck", "train", k)))
    real3d.write_sample(root, PointSample(sphere_points(rng, 200), np.zeros(200, np.uint8), "duck", "test",
                                          name=real3d.sample_name("duck", "test", 0)))
    s = bulge_sample(rng, 250, "duck", real3d.sample_name("duck", "test", 1, "sink"))
    s.defect = "sink"
    real3d.write_sample(root, s)
    return root
