"""Vectorized Perlin noise must equal the `noise` package's pnoise2 value for value."""

from __future__ import annotations

import numpy as np
import pytest

from anomalygen.perlin import perlin_grid_np, perlin_grid_torch, pnoise2_np, pnoise2_torch

noise = pytest.importorskip("noise")

CASES = [
    {},
    {"octaves": 4},
    {"octaves": 3, "persistence": 0.7, "lacunarity": 2.5},
    {"repeatx": 8, "repeaty": 4},
    {"octaves": 2, "repeatx": 16, "repeaty": 32},
    {"base": 1},
]


def _reference(x, y, **kw):
    return np.array([noise.pnoise2(float(a), float(b), **kw) for a, b in zip(x.ravel(), y.ravel())]).reshape(x.shape)


@pytest.mark.parametrize("kw", CASES, ids=[str(c) or "default" for c in CASES])
def test_numpy_and_torch_equal_pnoise2_on_a_grid(kw):
    # a grid that crosses negative coordinates, lattice lines and the repeat period
    ys, xs = np.meshgrid(np.linspace(-9.3, 40.7, 41), np.linspace(-3.1, 70.9, 53), indexing="ij")
    ref = _reference(xs, ys, **kw)
    assert np.abs(ref).max() > 0.3  # a real noise field, not zeros
    np.testing.assert_allclose(pnoise2_np(xs, ys, **kw), ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(pnoise2_torch(xs, ys, **kw).numpy(), ref, atol=1e-5, rtol=0)


def test_random_points_far_from_origin():
    rng = np.random.default_rng(3)
    x = rng.uniform(-500, 3000, 4000)
    y = rng.uniform(-500, 3000, 4000)
    np.testing.assert_allclose(pnoise2_np(x, y, octaves=2), _reference(x, y, octaves=2), atol=1e-5, rtol=0)


def test_grid_helper_is_pnoise2_at_pixel_coordinates():
    img = perlin_grid_np((16, 24), (2, 3), offset=(0.25, 5.5))
    ys = (np.arange(16) * 2 / 16 + 0.25)[:, None] * np.ones((1, 24))
    xs = (np.arange(24) * 3 / 24 + 5.5)[None, :] * np.ones((16, 1))
    np.testing.assert_allclose(img, _reference(xs, ys), atol=1e-5, rtol=0)


def test_own_permutation_gives_another_field_and_torch_batches_agree():
    rng = np.random.default_rng(0)
    perms = np.stack([rng.permutation(256) for _ in range(3)])
    res = np.array([[2, 4], [8, 8], [1, 16]])
    off = rng.uniform(0, 50, (3, 2))
    batch = perlin_grid_torch(3, (32, 40), res, perm=perms, offset=off).numpy()
    for i in range(3):
        ref = perlin_grid_np((32, 40), tuple(res[i]), perms[i], offset=tuple(off[i]))
        np.testing.assert_allclose(batch[i], ref, atol=1e-6, rtol=0)
    default = perlin_grid_np((32, 40), (8, 8), offset=tuple(off[1]))
    assert np.abs(batch[1] - default).max() > 0.1


@pytest.mark.parametrize("octaves", [1, 3])
def test_grid_helpers_equal_pnoise2_with_octaves(octaves):
    res, off = (3, 5), (2.7, 1019.2)  # crosses the repeat period 1024 of pnoise2
    ys = (np.arange(20) * res[0] / 20 + off[0]).astype(np.float32)[:, None] * np.ones((1, 28))
    xs = (np.arange(28) * res[1] / 28 + off[1]).astype(np.float32)[None, :] * np.ones((20, 1))
    ref = _reference(xs, ys, octaves=octaves)
    np.testing.assert_allclose(perlin_grid_np((20, 28), res, octaves=octaves, offset=off), ref, atol=1e-5, rtol=0)
    got = perlin_grid_torch(2, (20, 28), [res, res], octaves=octaves, offset=[off, off]).numpy()
    np.testing.assert_allclose(got[0], ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got[1], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("res,offset", [((8, 2), (0.0, 0.0)), ((2, 8), (0.0, 0.0)), ((3, 5), (0.3, 0.7))],
                         ids=["rows-first", "equal-column-cells", "unequal-cells"])
def test_every_grid_evaluation_order_equals_pnoise2(res, offset):
    """The separable grid picks its contraction order by cell layout; each order must be pnoise2."""
    h, w = 32, 40
    ys = (np.arange(h) * res[0] / h + offset[0]).astype(np.float32)[:, None] * np.ones((1, w))
    xs = (np.arange(w) * res[1] / w + offset[1]).astype(np.float32)[None, :] * np.ones((h, 1))
    perm_free = _reference(xs, ys)
    np.testing.assert_allclose(perlin_grid_np((h, w), res, offset=offset), perm_free, atol=1e-5, rtol=0)
