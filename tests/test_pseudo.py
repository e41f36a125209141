"""Random-CNN points of interest and the adding / removing pseudo-anomalous patches (anomalygen.pseudo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from anomalygen.pseudo import (ADDING, REMOVING, RIM_NEIGHBOURS, PatchSettings, adding_patch, points_of_interest,
                               pseudo_patches, removing_patch, soft_mask)


def _dome_with_crease(rng, size=64, where=(20, 40)):
    """A smooth, gently curved disc seen from 0.5 m (organized, camera coordinates), background 0, with a
    sharp 6 mm step planted (a 5 x 5 pixel block raised toward the camera) and 0.2 mm noise."""
    v, u = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    r2 = u ** 2 + v ** 2
    inside = r2 < 0.42 ** 2
    z = 0.5 - 0.05 * (0.42 ** 2 - r2) + 0.0002 * rng.normal(size=r2.shape)
    planted = np.zeros((size, size), bool)
    i, j = where
    planted[i - 2:i + 3, j - 2:j + 3] = True
    z = z - 0.006 * planted  # a sharp step toward the camera
    xyz = np.stack([u * 0.2, v * 0.2, z], -1).astype(np.float32)
    xyz[~inside] = 0
    return xyz, planted & inside


def test_random_cnn_picks_the_planted_feature_more_often_than_random_points():
    rng = np.random.default_rng(0)
    clouds = [_dome_with_crease(rng, where=w) for w in [(20, 40), (40, 22), (32, 32), (25, 25)]]
    masks, softs = points_of_interest(np.stack([x for x, _ in clouds]), tau=0.01, seed=0)  # one batch
    hits, chance = [], []
    for (xyz, planted), mask, soft in zip(clouds, masks, softs):
        valid = np.any(xyz != 0, axis=-1)
        near = planted | np.roll(planted, 2, 0) | np.roll(planted, -2, 0) | np.roll(planted, 2, 1) | np.roll(planted, -2, 1)
        hits.append((mask & near).sum() / mask.sum())
        chance.append((near & valid).sum() / valid.sum())
        assert soft.shape == xyz.shape[:2] and 0 <= soft.min() and soft.max() <= 1
        assert mask.sum() == int(np.ceil(0.01 * valid.sum())) and not (mask & ~valid).any()
    assert np.mean(hits) > 3 * np.mean(chance), (hits, chance)


def test_soft_mask_is_batched_and_seeded():
    rng = np.random.default_rng(1)
    xyz = np.stack([_dome_with_crease(rng, size=48, where=w)[0] for w in [(15, 30), (30, 15)]])
    batch = soft_mask(torch.from_numpy(xyz), seed=3)
    one = soft_mask(torch.from_numpy(xyz[1]), seed=3)
    assert batch.shape == (2, 48, 48)
    assert torch.allclose(batch[1], one, atol=1e-5)
    assert not torch.allclose(soft_mask(torch.from_numpy(xyz[1]), seed=4), one)


def _plane(rng, n=3000):
    p = rng.uniform(-1, 1, (n, 3))
    p[:, 2] = 0.02 * rng.normal(size=n)
    return p.astype(np.float32)


def test_adding_patch_labels_exactly_the_attached_points():
    rng = np.random.default_rng(2)
    normal = _plane(rng)
    interest = rng.normal(size=(80, 3)).astype(np.float32) * 0.05 + [5.0, 5.0, 5.0]
    pts, lab, anchor = adding_patch(normal, interest, rng, PatchSettings(k=64))
    assert pts.shape == (64, 3) and lab.shape == (64,)
    d_normal, _ = cKDTree(normal).query(pts)
    assert np.all((d_normal == 0) == (lab == 0))          # label 0 = a point of the normal sample
    assert 0 < lab.sum() < 64                             # the patch holds both
    # the attached cluster sits at the anchor
    assert np.linalg.norm(pts[lab == 1].mean(0) - anchor) < 0.2


def _flat_plane(rng, n=4000, z=0.5):
    """A flat square at depth z seen from a camera at the origin (camera coordinates)."""
    p = np.c_[rng.uniform(-0.1, 0.1, (n, 2)), np.full(n, z)]
    return p.astype(np.float32)


def test_adding_clusters_sit_on_the_surface_facing_the_camera():
    """Fig. 3: an added cluster is a bump ON the object, on the side the scan sees, not half sunk into it."""
    rng = np.random.default_rng(5)
    normal = _flat_plane(rng)
    interest = [rng.normal(size=(60, 3)).astype(np.float32) * 0.01 + [1.0, -2.0, 3.0]]
    out = pseudo_patches(normal, interest, 40, rng, PatchSettings(k=64, viewpoint=(0.0, 0.0, 0.0)), (ADDING,))
    for p in out:
        added = p["points"][p["labels"] == 1]
        assert len(added)
        assert np.all(added[:, 2] <= 0.5 + 1e-6)              # no added point behind the surface (z > 0.5)
        assert added[:, 2].min() < 0.5 - 1e-3                  # the cluster stands out toward the camera
    # without a viewpoint: outside a closed surface (away from its centroid)
    sphere = rng.normal(size=(4000, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    for p in pseudo_patches(sphere, interest, 20, rng, PatchSettings(k=64), (ADDING,)):
        r = np.linalg.norm(p["points"][p["labels"] == 1], axis=1)
        assert np.all(r > 1 - 0.02), r.min()                   # on or outside the sphere, never sunk into it
        assert r.max() > 1.01


def test_batched_patches_have_the_single_patch_form_and_every_anchor_is_used():
    rng = np.random.default_rng(6)
    normal = _plane(rng)
    interest = [rng.normal(size=(50, 3)).astype(np.float32) * 0.05]
    anchors = normal[[10, 20, 30, 40, 50, 60]]
    out = pseudo_patches(normal, interest, 6, rng, PatchSettings(k=48), anchors=anchors)
    assert [p["anchor"].tolist() for p in out] == anchors.tolist()
    for p in out:
        assert p["points"].shape == (48, 3) and p["labels"].shape == (48,)
        # the patch lies around its anchor: its points are among the anchor's nearest few hundred
        assert np.linalg.norm(p["points"] - p["anchor"], axis=1).max() < 0.6


def test_removing_patch_surrounds_a_hole_and_labels_its_rim():
    rng = np.random.default_rng(3)
    normal = _plane(rng)
    tree = cKDTree(normal)
    for _ in range(5):
        pts, lab, anchor = removing_patch(normal, rng, PatchSettings(k=64))
        d, idx = tree.query(pts)
        assert np.all(d == 0)                              # only points of the normal sample
        radius = np.linalg.norm(pts - anchor, axis=1).max()
        ball = set(tree.query_ball_point(anchor, radius * (1 - 1e-9)))
        missing = ball - set(idx.tolist())
        assert missing                                     # points nearer than the patch's farthest were removed
        _, nb = tree.query(pts, k=RIM_NEIGHBOURS + 1)
        in_patch = set(idx.tolist())
        absent = np.array([any(j not in in_patch for j in row[1:]) for row in nb])
        borders_hole = np.array([bool(set(row[1:].tolist()) & missing) for row in nb])
        assert lab.sum() > 0 and np.all(absent[lab == 1])  # every labeled point has a removed neighbour
        assert borders_hole[lab == 1].any()                # and the rim is the hole's inside the patch


@pytest.mark.parametrize("n", [10, 11])
def test_adding_and_removing_come_one_to_one(n):
    rng = np.random.default_rng(4)
    normal = _plane(rng)
    interest = [rng.normal(size=(40, 3)).astype(np.float32) * 3.0]  # far wider than a patch
    out = pseudo_patches(normal, interest, n, rng, PatchSettings(k=32))
    kinds = [p["kind"] for p in out]
    assert abs(kinds.count(ADDING) - kinds.count(REMOVING)) <= n % 2
    assert all(p["points"].shape == (32, 3) and p["labels"].shape == (32,) for p in out)
    assert all(0 < p["labels"].sum() < 32 for p in out)  # every patch holds normal and anomalous points
    assert pseudo_patches(normal, interest, 4, np.random.default_rng(9), PatchSettings(k=32))[0]["points"].tobytes() == \
        pseudo_patches(normal, interest, 4, np.random.default_rng(9), PatchSettings(k=32))[0]["points"].tobytes()
    with pytest.raises(ValueError, match="task-irrelevant"):
        pseudo_patches(normal, [], 2, rng)
