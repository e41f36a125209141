"""Point ops, memory bank and score spreading against brute-force numpy / scipy references."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from anomalygen.detectors.common import (MemoryBank, chamfer_distance, farthest_point_sample, gaussian_blur,
                                         greedy_coreset, group, knn, spread_to_pixels, spread_to_points)
from anomalygen.detectors.common.fpfh import FPFH_DIM, fpfh

RNG = np.random.default_rng(7)


def _fps_numpy(x, n, start=0):
    chosen = [start]
    d = np.full(len(x), np.inf)
    for _ in range(n - 1):
        d = np.minimum(d, ((x - x[chosen[-1]]) ** 2).sum(1))
        chosen.append(int(np.argmax(d)))
    return np.array(chosen)


def test_fps_matches_bruteforce_batched_and_any_dimension():
    x = RNG.normal(size=(3, 200, 5))
    got = farthest_point_sample(torch.from_numpy(x), 17, start=torch.tensor([0, 5, 9]))
    for b, s in enumerate((0, 5, 9)):
        np.testing.assert_array_equal(got[b].numpy(), _fps_numpy(x[b], 17, s))
    single = farthest_point_sample(torch.from_numpy(x[0]), 17)
    np.testing.assert_array_equal(single.numpy(), _fps_numpy(x[0], 17))
    assert len(set(single.tolist())) == 17
    with pytest.raises(ValueError):
        farthest_point_sample(torch.from_numpy(x[0]), 201)


def test_knn_matches_bruteforce_and_chunking_is_invisible():
    q, r = RNG.normal(size=(50, 3)), RNG.normal(size=(300, 3))
    d_ref = np.sqrt(((q[:, None] - r[None]) ** 2).sum(-1))
    i_ref = np.argsort(d_ref, 1)[:, :6]
    d, i = knn(torch.from_numpy(q), torch.from_numpy(r), 6, chunk=7)
    np.testing.assert_array_equal(i.numpy(), i_ref)
    np.testing.assert_allclose(d.numpy(), np.take_along_axis(d_ref, i_ref, 1), rtol=1e-6, atol=1e-9)


def test_group_returns_fps_centers_and_their_nearest_neighbours():
    x = RNG.normal(size=(2, 120, 3))
    centers, idx, neigh = group(torch.from_numpy(x), 8, 5)
    assert centers.shape == (2, 8, 3) and idx.shape == (2, 8, 5) and neigh.shape == (2, 8, 5, 3)
    for b in range(2):
        ci = _fps_numpy(x[b], 8)
        np.testing.assert_allclose(centers[b].numpy(), x[b][ci])
        d = ((x[b][ci][:, None] - x[b][None]) ** 2).sum(-1)
        np.testing.assert_array_equal(idx[b].numpy(), np.argsort(d, 1)[:, :5])
        np.testing.assert_allclose(neigh[b].numpy(), x[b][idx[b].numpy()] - x[b][ci][:, None], atol=1e-12)
    np.testing.assert_allclose(neigh[:, :, 0].numpy(), 0, atol=1e-12)  # each center is its own nearest point


def test_chamfer_l1_l2_match_bruteforce():
    a, b = RNG.normal(size=(2, 40, 3)), RNG.normal(size=(2, 55, 3))
    for k in range(2):
        d = np.sqrt(((a[k][:, None] - b[k][None]) ** 2).sum(-1))
        l2 = (d.min(1) ** 2).mean() + (d.min(0) ** 2).mean()
        l1 = (d.min(1).mean() + d.min(0).mean()) / 2
        assert chamfer_distance(torch.from_numpy(a), torch.from_numpy(b), "l2")[k].item() == pytest.approx(l2, rel=1e-6)
        assert chamfer_distance(torch.from_numpy(a), torch.from_numpy(b), "l1")[k].item() == pytest.approx(l1, rel=1e-6)
    same = torch.from_numpy(a[0])
    assert chamfer_distance(same, same).item() == pytest.approx(0.0, abs=1e-12)


def _coverage(x, chosen):
    """Max over all points of the distance to the nearest chosen point (k-center radius)."""
    return np.sqrt(((x[:, None] - x[chosen][None]) ** 2).sum(-1)).min(1).max()


def test_coreset_keeps_fraction_and_covers_better_than_random():
    # Clustered cloud: random subsampling misses the small clusters, k-center must not.
    x = np.concatenate([RNG.normal(0, 1, (900, 8)), RNG.normal(6, 0.3, (60, 8)), RNG.normal(-6, 0.3, (40, 8))])
    for frac in (0.05, 0.1, 0.3):
        idx = greedy_coreset(torch.from_numpy(x), frac, projection_dim=None).numpy()
        assert len(idx) == math.ceil(frac * len(x)) and len(set(idx)) == len(idx)
        rand = [_coverage(x, RNG.choice(len(x), len(idx), replace=False)) for _ in range(5)]
        assert _coverage(x, idx) <= min(rand)
    # With the random projection (PatchCore's speed-up) coverage is measured in the ORIGINAL space.
    # Features of low intrinsic dimension (like real patch features): a clustered 3-D cloud embedded in 96-D.
    z = np.concatenate([RNG.normal(0, 1, (900, 3)), RNG.normal(6, 0.3, (60, 3)), RNG.normal(-6, 0.3, (40, 3))])
    y = z @ RNG.normal(size=(3, 96)) + RNG.normal(0, 0.01, (1000, 96))
    proj = greedy_coreset(torch.from_numpy(y), 0.1, projection_dim=32, seed=1).numpy()
    assert len(proj) == 100
    assert _coverage(y, proj) <= min(_coverage(y, RNG.choice(len(y), 100, replace=False)) for _ in range(5))


def test_memory_bank_scores_and_patchcore_reweighting_by_hand():
    bank = RNG.normal(size=(30, 4))
    test = RNG.normal(size=(6, 4)) * 2
    mb = MemoryBank(torch.from_numpy(bank), reweight_k=3)
    obj, patch = mb.score(torch.from_numpy(test))
    d = np.sqrt(((test[:, None] - bank[None]) ** 2).sum(-1))
    np.testing.assert_allclose(patch.numpy(), d.min(1), rtol=1e-6)
    s_idx = np.argmax(d.min(1))
    s_star, m_star = d.min(1)[s_idx], np.argmin(d[s_idx])
    nb = np.argsort(np.sqrt(((bank[m_star] - bank) ** 2).sum(-1)))[1:3]  # m*'s neighbours, m* itself excluded
    dk = np.sqrt(((test[s_idx] - bank[nb]) ** 2).sum(-1))
    w = 1 - np.exp(s_star / 2) / np.exp(dk / 2).sum()  # sqrt(D) = 2
    assert obj == pytest.approx(w * s_star, rel=1e-6)
    assert 0.5 * s_star <= obj < s_star


def test_memory_bank_save_load_roundtrip(tmp_path):
    mb = MemoryBank.fit(torch.from_numpy(RNG.normal(size=(200, 6))).float(), 0.2)
    assert len(mb) == 40
    mb.save(tmp_path / "bank.npy")
    back = MemoryBank.load(tmp_path / "bank.npy")
    assert torch.equal(back.features, mb.features)


def test_spread_to_points_takes_nearest_center_score():
    pts, centers = RNG.normal(size=(400, 3)), RNG.normal(size=(20, 3))
    s = RNG.uniform(size=20)
    got = spread_to_points(torch.from_numpy(pts), torch.from_numpy(centers), torch.from_numpy(s))
    nearest = np.argmin(((pts[:, None] - centers[None]) ** 2).sum(-1), 1)
    np.testing.assert_allclose(got.numpy(), s[nearest])
    smooth = spread_to_points(torch.from_numpy(pts), torch.from_numpy(centers), torch.from_numpy(s), k=3).numpy()
    assert smooth.min() >= s.min() and smooth.max() <= s.max()


def test_gaussian_blur_matches_scipy_and_spread_to_pixels_keeps_the_peak():
    img = RNG.uniform(size=(40, 33))
    got = gaussian_blur(torch.from_numpy(img).float(), 2.0).numpy()
    np.testing.assert_allclose(got, ndimage.gaussian_filter(img, 2.0, mode="mirror", truncate=4.0), atol=1e-5)
    grid = torch.zeros(8, 8)
    grid[2, 5] = 1.0
    up = spread_to_pixels(grid, (64, 64), sigma=2.0).numpy()
    assert up.shape == (64, 64)
    r, c = np.unravel_index(np.argmax(up), up.shape)
    assert abs(r - 2.5 * 8) <= 2 and abs(c - 5.5 * 8) <= 2  # the cell's centre in pixels


def test_fpfh_shape_normalization_and_rigid_invariance():
    v = RNG.normal(size=(1500, 3))
    pts = v / np.linalg.norm(v, axis=1, keepdims=True)
    pts[:, 2] *= 0.6  # an ellipsoid: curvature varies, so features are not all equal
    f = fpfh(pts, 0.2, 0.5)
    assert f.shape == (1500, FPFH_DIM) and f.dtype == np.float32
    np.testing.assert_allclose(f.sum(1), 600.0, rtol=1e-3)  # open3d: 3 sub-histograms, each own 100 + neighbours 100
    q, _ = np.linalg.qr(RNG.normal(size=(3, 3)))
    moved = pts @ q.T + np.array([3.0, -1.0, 2.0])
    g = fpfh(moved, 0.2, 0.5)
    assert np.abs(f - g).mean() < 0.5  # same surface, same descriptors (up to float noise)
    assert np.abs(f - f[RNG.permutation(1500)]).mean() > 2  # ... and they do differ between points


def test_knn_distances_exact_and_identical_batched_or_alone():
    """FPFH-like features (33-D, values ~100): cdist's matrix-product form loses ~1e-6 relative and
    depends on the batch shape, which made batched object scores differ from one-by-one scores."""
    g = torch.Generator().manual_seed(0)
    bank = torch.rand(5000, 33, generator=g) * 200
    q = torch.rand(300, 33, generator=g) * 200
    full = knn(q, bank, 3)[0]
    for i in range(0, 300, 30):
        assert torch.equal(knn(q[i:i + 1], bank, 3)[0], full[i:i + 1])
    exact = torch.cdist(q.double(), bank.double()).topk(3, largest=False).values
    assert float(((full.double() - exact).abs() / exact).max()) < 5e-7
