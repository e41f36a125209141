"""Background removal and resizing as the field does them (BTF / M3DM / DAS3D)."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygen.depth import das3d_normalize
from anomalygen.scans import BackgroundConfig, remove_background, resize_sample


def _plane_scene(h=80, w=96):
    """Tilted plane at ~0.6 m, a 12 mm-high box on it, and a 5x5-pixel speck floating 20 mm above it."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    z = 0.6 + 0.0004 * (xx - w / 2) + 0.0002 * (yy - h / 2)
    obj = (np.abs(yy - 40) < 15) & (np.abs(xx - 45) < 18)
    speck = (np.abs(yy - 10) <= 2) & (np.abs(xx - 85) <= 2)  # 25 points: a DBSCAN cluster of its own
    z = np.where(obj, z - 0.012, z)
    z = np.where(speck, z - 0.02, z)
    f = 300.0
    xyz = np.stack([(xx - w / 2) * z / f, (yy - h / 2) * z / f, z], -1).astype(np.float32)
    xyz[0:3, 40:60] = 0  # missing measurements
    return xyz, obj, speck


def test_background_removal_keeps_exactly_the_object():
    xyz, obj, speck = _plane_scene()
    fg = remove_background(xyz, BackgroundConfig(), np.random.default_rng(0))
    assert (fg == obj).all()  # plane removed (within 5 mm), the speck is a smaller DBSCAN cluster


def test_background_removal_same_rng_same_mask():
    xyz, _, _ = _plane_scene()
    a = remove_background(xyz, BackgroundConfig(ransac_iterations=30), np.random.default_rng(1))
    b = remove_background(xyz, BackgroundConfig(ransac_iterations=30), np.random.default_rng(1))
    assert np.array_equal(a, b)


def test_resize_keeps_invalid_pixels_all_zero_and_values_from_the_input():
    xyz, obj, _ = _plane_scene()
    rgb = np.random.default_rng(0).integers(0, 256, xyz.shape, dtype=np.uint8)
    x2, r2, m2 = resize_sample(xyz, rgb, obj.astype(np.uint8), 40)
    assert x2.shape == (40, 40, 3) and r2.shape == (40, 40, 3) and m2.shape == (40, 40)
    valid = np.any(x2 != 0, -1)
    assert ((x2 == 0).all(-1) | valid).all()
    src = {tuple(p) for p in xyz.reshape(-1, 3)}
    assert all(tuple(p) in src for p in x2.reshape(-1, 3))  # nearest neighbour: no blended coordinates
    assert set(np.unique(m2)) <= {0, 1}
    same = resize_sample(xyz, rgb, None, 0)
    assert same[0] is xyz


def test_das3d_normalization():
    z = np.array([[0.5, 0.6], [0.55, 0.9]], np.float32)
    fg = np.array([[True, True], [True, False]])
    d, rgb, (lo, hi) = das3d_normalize(z, fg, np.full((2, 2, 3), 255, np.uint8))
    np.testing.assert_allclose(d, [[0, 1], [0.5, 1]], atol=1e-6)
    assert lo == pytest.approx(0.5) and hi == pytest.approx(0.6)
    assert rgb[1, 1].sum() == 0 and rgb[0, 0].min() == 1.0


def test_no_visible_background_keeps_every_valid_point_of_the_largest_cluster():
    xyz = np.zeros((30, 30, 3), np.float32)
    yy, xx = np.mgrid[0:30, 0:30]
    disc = (yy - 15) ** 2 + (xx - 15) ** 2 < 10 ** 2  # valid pixels never reach the border ring
    xyz[disc] = np.stack([xx[disc] * 1e-3, yy[disc] * 1e-3, np.full(disc.sum(), 0.5)], -1)
    assert (remove_background(xyz) == disc).all()
