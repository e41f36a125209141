"""The renderer's geometry is exact: points on the surface, zeros where nothing was hit."""

from __future__ import annotations

import numpy as np
import trimesh

from anomalygen.recipes import load_recipe
from anomalygen.builds.settings import render_config
from anomalygen.render.sample import defect_gt, render_sample, render_scene
from anomalygen.render.raycast import Camera, plane_mesh, raycast


def test_rendered_sphere_points_lie_on_the_sphere():
    center, radius = np.array([0.01, -0.02, 0.5]), 0.1
    sphere = trimesh.creation.icosphere(5, radius=radius)
    sphere.apply_translation(center)
    cam = Camera.from_fov(64, 48, 40.0)
    r = raycast([sphere], cam)
    hit = r.geometry == 0
    assert 300 < hit.sum() < 64 * 48
    d = np.linalg.norm(r.xyz[hit] - center, axis=1)
    # an icosphere(5) of radius r is within 0.1 % of the true sphere
    assert np.abs(d - radius).max() < 1e-3 * radius
    assert (r.xyz[~hit] == 0).all() and (r.normals[~hit] == 0).all()
    # each point projects back onto its own pixel
    v, u = np.nonzero(hit)
    uv = cam.project(r.xyz[hit].astype(np.float64))
    np.testing.assert_allclose(uv, np.stack([u + 0.5, v + 0.5], -1), atol=1e-3)
    # normals face the camera and are the sphere's
    n = r.normals[hit]
    assert (np.sum(n * r.xyz[hit], axis=1) < 0).all()
    np.testing.assert_allclose(np.abs(np.sum(n * (r.xyz[hit] - center) / radius, axis=1)), 1, atol=0.02)


def test_plane_behind_object_fills_the_rest():
    cam = Camera.from_fov(32, 32, 30.0)
    box = trimesh.creation.box([0.05, 0.05, 0.05])
    box.apply_translation([0, 0, 0.5])
    r = raycast([box, plane_mesh(0.6, 1.0)], cam)
    assert r.valid.all()
    np.testing.assert_allclose(r.xyz[r.geometry == 1][:, 2], 0.6, atol=1e-5)
    np.testing.assert_allclose(r.xyz[r.geometry == 0][:, 2], 0.475, atol=1e-5)


def test_rendered_defect_has_gt_where_depth_changed_and_seed_reproduces():
    cfg = render_config({**load_recipe("render-mvtec3d"), "size": 64, "defect_engine": "builtin"})
    a, rec = render_sample("peach", "test", "concavity", 0, 7, cfg)
    b, _ = render_sample("peach", "test", "concavity", 0, 7, cfg)
    good, _ = render_sample("peach", "test", "good", 0, 7, cfg)
    normal, bad, _, rec2, gt = render_scene("peach", cfg, np.random.default_rng(5), "concavity")
    dz = bad.xyz[..., 2] - normal.xyz[..., 2]
    tau = cfg.gt_tau * rec2["object_size"]
    assert gt.sum() >= cfg.min_gt_pixels * (64 / 256) ** 2 and (dz[gt.astype(bool)] > tau).all()  # a dent: farther from the camera
    assert (np.abs(dz[~gt.astype(bool)]) <= tau).all()                          # nothing else moved by more
    assert np.array_equal(a.xyz, b.xyz) and np.array_equal(a.rgb, b.rgb) and np.array_equal(a.mask, b.mask)
    assert a.mask.any() and good.mask.sum() == 0
    assert rec["anomaly_ratio"] == round(float(a.mask.mean()), 6)
    valid = np.any(a.xyz != 0, -1)
    assert ((a.rgb == 0).all(-1) | valid).all()


def test_defect_gt_rule():
    from anomalygen.render.raycast import Render

    z0 = np.full((4, 4), 0.5, np.float32)
    geo = np.zeros((4, 4), np.int64)
    xyz0 = np.zeros((4, 4, 3), np.float32)
    xyz0[..., 2] = z0
    xyz1 = xyz0.copy()
    xyz1[1, 1, 2] += 0.01   # dent deeper than tau
    xyz1[2, 2, 2] += 0.0001  # below tau
    geo1 = geo.copy()
    geo1[3, 3] = 1           # now sees the background through a hole
    n = np.zeros_like(xyz0)
    gt = defect_gt(Render(xyz0, n, geo, geo), Render(xyz1, n, geo1, geo1), tau=0.001)
    assert gt.sum() == 2 and gt[1, 1] == 1 and gt[3, 3] == 1 and gt[2, 2] == 0


def test_mesh_engine_hole_gt_covers_the_missing_material():
    cfg = render_config({**load_recipe("render-mvtec3d"), "size": 96})
    assert cfg.engine() == "mesh"
    normal, bad, _, rec, gt = render_scene("bowl0", cfg, np.random.default_rng(3), "hole")
    assert rec["defect_engine"] == "mesh" and gt.sum() >= cfg.min_gt_pixels * (96 / 256) ** 2
    changed = np.abs(bad.xyz[..., 2] - normal.xyz[..., 2]) > 1e-4
    # every pixel whose surface changed visibly is labeled (material removed or the cut's walls) ...
    assert changed.any() and (changed & ~gt.astype(bool)).sum() <= 0.05 * changed.sum()
    # ... and labels stay near the change (the labeler's rim band, a few pixels at most)
    from scipy import ndimage

    assert (gt.astype(bool) <= ndimage.binary_dilation(changed, iterations=6)).all()
