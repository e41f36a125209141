"""Outputs shaped as the consumers' own tools expect: the Real3D-AD layout from build-shapenet
(same draws as the Anomaly-ShapeNet layout, only names and delimiters differ), a mesh per
train template for PO3AD-style loaders, and rendered defects that BTF's background-plane
removal does not erase."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from anomalygen.builds.point_layouts import REAL3D_TYPE
from anomalygen.builds.settings import render_config
from anomalygen.builds.shapenet import build_dataset
from anomalygen.cli import cli
from anomalygen.io import open_dataset
from anomalygen.recipes import load_recipe
from anomalygen.render.sample import plane_height, render_scene
from anomalygen.scans import BackgroundConfig, fit_plane_ransac
from anomalygen.validate import validate_dataset

SMALL = {"dataset.points": [3000, 4000], "dataset.write_meshes": "all"}
KW = dict(classes="eraser0", train_per_class=2, test_per_class=8, defects=["bulge", "concavity", "hole", "crack"])


@pytest.fixture(scope="module")
def two_layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    asn = build_dataset(root / "asn", load_recipe("anomaly-shapenet", SMALL), workers=1, **KW)
    r3d = build_dataset(root / "r3d", load_recipe("anomaly-shapenet", SMALL), workers=1, layout="real3d-ad", **KW)
    return root / "asn", root / "r3d", asn, r3d


def test_real3d_layout_holds_the_same_samples_under_real3d_names(two_layouts):
    asn_root, r3d_root, _, _ = two_layouts
    a, r = open_dataset(asn_root), open_dataset(r3d_root)
    assert a.layout == "anomaly-shapenet" and r.layout == "real3d-ad"
    assert (r3d_root / "eraser0" / "train" / "0_template.pcd").is_file()
    assert not (r3d_root / "pcd").exists()
    a_refs, r_refs = a.samples("eraser0"), r.samples("eraser0")
    assert len(a_refs) == len(r_refs) == 10
    manifest = json.loads((r3d_root / "manifest.json").read_text())
    assert manifest["layout"] == "real3d-ad"
    ours = {s["name"]: s["defect"] for s in manifest["samples"]}
    for ra, rr in zip(a_refs, r_refs):
        sa, sr = ra.load(), rr.load()
        assert sa.split == sr.split
        np.testing.assert_array_equal(sa.points, sr.points)  # same draws, only the file layout differs
        np.testing.assert_array_equal(sa.labels, sr.labels)
        assert sr.defect == ("good" if sa.defect == "good" else REAL3D_TYPE.get(sa.defect, sa.defect))
        assert ours[rr.name] == sa.defect  # the manifest keeps our defect name
        if sr.anomalous:  # Real3D-AD's gt rows are space-delimited "x y z label"
            row = (r3d_root / "eraser0" / "gt" / f"{rr.name}.txt").read_text().splitlines()[0].split(" ")
            assert len(row) == 4 and row[3] in ("0", "1")
    # Real3D-AD's own type names where ours map (concavity -> sink, hole -> cut); crack has none and keeps its name
    assert {r.defect for r in r_refs if r.anomalous} == {"bulge", "sink", "cut", "crack"}
    assert validate_dataset(r3d_root).ok


def test_every_train_template_has_its_mesh(two_layouts):
    asn_root, _, asn, _ = two_layouts
    templates = sorted(p.name for p in (asn_root / "obj" / "eraser0").glob("*template*.obj"))
    assert templates == ["eraser0_template0.obj", "eraser0_template1.obj"]
    train = sorted(p.stem for p in (asn_root / "pcd" / "eraser0" / "train").glob("*.pcd"))
    assert [t[:-4] for t in templates] == train


def test_layout_cli_and_resume_in_real3d_layout(tmp_path):
    args = ["build-shapenet", "--layout", "real3d-ad", "--classes", "eraser0", "--train-per-class", "1",
            "--test-per-class", "2", "--defects", "bulge", "--workers", "1", "--quiet", "--out", str(tmp_path / "r")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    before = {p: p.read_bytes() for p in sorted((tmp_path / "r").rglob("*.pcd"))}
    res = CliRunner().invoke(cli, args)  # a finished build resumes to nothing new: same files
    assert res.exit_code == 0 and {p: p.read_bytes() for p in sorted((tmp_path / "r").rglob("*.pcd"))} == before
    bad = CliRunner().invoke(cli, [*args[:2], "mvtec3d-ad", *args[3:]])
    assert bad.exit_code == 2 and "layout" in bad.output


def _object_gt_near_fitted_plane(bad, gt, band: float) -> int:
    """Object gt pixels that BTF's plane step removes: within `band` of the RANSAC plane fitted to
    the border ring (our anomalygen.scans fit, as 3D-ADS's preprocessing does it)."""
    cfg = BackgroundConfig()
    valid = np.any(bad.xyz != 0, axis=-1)
    ring = np.zeros_like(valid)
    b = max(1, int(round(valid.shape[0] * cfg.border)))
    ring[:b], ring[-b:], ring[:, :b], ring[:, -b:] = True, True, True, True
    plane = fit_plane_ransac(bad.xyz[ring & valid], cfg.plane_distance, cfg.ransac_iterations, np.random.default_rng(0))
    dist = np.abs(bad.xyz.astype(np.float64) @ plane[:3] + plane[3])
    return int((gt.astype(bool) & (bad.geometry == 0) & (dist < band)).sum())


def test_rendered_defects_keep_clear_of_the_support_plane():
    # cookie (a flat disc) with a hole at 96 px, seed 0: drawn without the clearance rule, one gt pixel of
    # the hole's rim lies within BTF's 0.005 m plane band; with the recipe's clearance it is redrawn.
    cfg = render_config({**load_recipe("render-mvtec3d"), "size": 96})
    assert cfg.plane_clearance > BackgroundConfig().plane_distance  # BTF's 0.005 m band, plus a margin
    _, bad, _, rec, gt = render_scene("cookie", dataclasses.replace(cfg, plane_clearance=0.0),
                                      np.random.default_rng(0), "hole")
    assert _object_gt_near_fitted_plane(bad, gt, 0.005) >= 1
    for cls, defect, seed in [("cookie", "hole", 0), ("cookie", "hole", 1), ("tire", "concavity", 2), ("dowel", "bulge", 3)]:
        _, bad, _, rec, gt = render_scene(cls, cfg, np.random.default_rng(seed), defect)
        on_object = gt.astype(bool) & (bad.geometry == 0)
        assert on_object.any()
        assert (plane_height(bad.xyz[on_object], cfg.distance, tuple(rec["plane_tilt"])) > cfg.plane_clearance).all()
        assert _object_gt_near_fitted_plane(bad, gt, 0.005) == 0, (cls, defect, seed)
        band = gt.astype(bool) & (plane_height(bad.xyz, cfg.distance, tuple(rec["plane_tilt"])) <= cfg.plane_clearance)
        assert rec["gt_pixels_in_plane_band"] == int(band.sum())  # only where removed material shows the plane


def test_plane_height_is_the_distance_to_the_tilted_plane():
    from anomalygen.render.raycast import plane_mesh

    plane = plane_mesh(0.45, 0.2, (0.03, -0.02))
    assert np.allclose(plane_height(np.asarray(plane.vertices), 0.45, (0.03, -0.02)), 0.0, atol=1e-12)
    up = np.asarray(plane.vertices) + 0.01 * np.array([0.03, -0.02, -1.0]) / np.linalg.norm([0.03, -0.02, -1.0])
    assert np.allclose(plane_height(up, 0.45, (0.03, -0.02)), 0.01)
