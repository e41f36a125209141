"""Acquisition keys (pose, part variation, views, density, noise): each one alone from the command
line, recorded per sample so a user can undo or redo it, labels still exact at `paper` with pose,
variation and partial views on (recomputed here with trimesh and brute force), ratios held or the
sample rejected and listed, and the renderer's pose and noise."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from scipy.spatial.distance import cdist

from anomalygen.builds.settings import acquisition, render_config, shapenet_settings
from anomalygen.builds.shapenet import Job, _anomalous_sample, build_dataset, class_mesh, sample_part, sample_seed
from anomalygen.cli import cli
from anomalygen.errors import AnomalygenError
from anomalygen.io import open_dataset
from anomalygen.mesh import DEFECTS, REMOVAL
from anomalygen.mesh.acquire import Acquisition, scan_choice, vary_part
from anomalygen.mesh.sampling import sample_surface
from anomalygen.recipes import load_recipe
from anomalygen.render.sample import render_sample

SMALL = {"dataset.points": [3000, 5000]}
TINY = dict(classes="eraser0", train_per_class=2, test_per_class=8, workers=1)
OFF = {"pose": "none", "pose_shift": 0.0, "variation": 0.0, "views": 0, "density": 0.0, "noise": 0.0}


def recipe(**over):
    return load_recipe("anomaly-shapenet", {**SMALL, **over})


def samples_by_name(root: Path) -> dict:
    ds = open_dataset(root)
    return {(r.cls, r.name): r.load() for c in ds.classes() for split in ("train", "test") for r in ds.samples(c, split)}


def manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def own_part(nominal: trimesh.Trimesh, v: dict) -> trimesh.Trimesh:
    """A sample's own normal part from the class mesh and its manifest's variation record, by the
    formula the manifest states (written out here, not taken from the library)."""
    x = np.asarray(nominal.vertices, np.float64)
    c, s = np.array(v["center"]), np.array(v["scale"])
    wave = np.sin(x @ np.array(v["waves"]).T + np.array(v["phases"])) * np.array(v["amplitudes"])
    return trimesh.Trimesh(c + s * (x - c) + wave @ np.array(v["directions"]), nominal.faces, process=False)


def undo_pose(points: np.ndarray, pose: dict) -> np.ndarray:
    r, t = np.array(pose["rotation"]), np.array(pose["translation"])
    return (np.asarray(points, np.float64) - t) @ r


# ------------------------------------------------------------------ each key alone, from the command line

def test_pose_alone_from_the_command_line_is_recorded_and_undone(tmp_path):
    plain = build_dataset(tmp_path / "plain", recipe(), **TINY).out
    out = tmp_path / "posed"
    res = CliRunner().invoke(cli, ["build-shapenet", "--classes", "eraser0", "--train-per-class", "2",
                                   "--test-per-class", "8", "--workers", "1", "--quiet", "--set", "pose=any",
                                   "--set", "pose_shift=0.2", "--set", "dataset.points=[3000,5000]", "--out", str(out)])
    assert res.exit_code == 0, res.output
    m = manifest(out)
    assert m["acquisition"]["applied"] == ["pose"] and m["acquisition"]["pose"] == "any"
    before, after = samples_by_name(plain), samples_by_name(out)
    angles = []
    for s in m["samples"]:
        assert set(s["acquisition"]) == {"pose"}   # nothing else was applied
        pose = s["acquisition"]["pose"]
        r = np.array(pose["rotation"])
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-7) and np.linalg.det(r) == pytest.approx(1.0)
        assert np.abs(pose["translation"]).max() <= 0.2 * 1.01   # diagonal ~1
        a, b = before[s["cls"], s["name"]], after[s["cls"], s["name"]]
        assert np.array_equal(a.labels, b.labels)                # applied after labelling
        assert np.allclose(undo_pose(b.points, pose), a.points, atol=2e-6)
        angles.append(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))
    assert np.ptp(angles) > 30                                   # each sample its own pose


@pytest.mark.parametrize("key,value", [("variation", 4.0), ("views", 2), ("density", 3.0), ("noise", 0.5)])
def test_each_other_key_alone_changes_only_itself_and_is_recorded(tmp_path, key, value):
    out = build_dataset(tmp_path / key, recipe(**{key: value}), **TINY).out
    m = manifest(out)
    assert m["acquisition"]["applied"] == [key]
    for s in m["samples"]:
        got = set(s.get("acquisition", {}))
        want = {"variation": {"variation"}, "views": {"viewpoints", "seen_fraction"}, "density": {"density"},
                "noise": {"noise_std"}}[key]
        if key == "views" and s["split"] == "train":
            want = set()                                          # templates are whole scans
        assert got == want, (s["name"], got)
        assert 3000 <= s["points"] <= 5000
        if s["defect"] != "good":
            assert 0.01 <= s["anomaly_ratio"] <= 0.10


def test_noise_alone_moves_points_off_the_surface_and_keeps_every_label(tmp_path):
    plain = build_dataset(tmp_path / "plain", recipe(), **TINY).out
    noisy = build_dataset(tmp_path / "noisy", recipe(noise=1.0), **TINY).out
    a, b = samples_by_name(plain), samples_by_name(noisy)
    for s in manifest(noisy)["samples"]:
        sigma = s["acquisition"]["noise_std"]
        assert sigma == pytest.approx(0.003, rel=1e-3)           # 1 tau of a unit-diagonal part
        x, y = a[s["cls"], s["name"]], b[s["cls"], s["name"]]
        assert np.array_equal(x.labels, y.labels)                # labels are the surface point's
        off = np.linalg.norm(y.points.astype(np.float64) - x.points, axis=1)
        assert off.max() <= 3 * sigma * 1.001 and np.sqrt(np.mean(off ** 2)) == pytest.approx(sigma, rel=0.1)


def test_easy_applies_nothing_and_the_level_turns_keys_on_unless_the_recipe_sets_them():
    assert acquisition(recipe()) == Acquisition() and not Acquisition().applied()
    paper = acquisition(recipe(difficulty="paper"))
    assert paper.applied(), "paper turns acquisition keys on"
    alone = acquisition(recipe(difficulty="paper", **OFF))
    assert alone == Acquisition()
    assert acquisition(recipe(pose="z")).applied() == ["pose"]
    for bad in ({"pose": "sideways"}, {"views": -1}, {"noise": "loud"}, {"variation": True}):
        with pytest.raises(AnomalygenError, match=next(iter(bad))):
            shapenet_settings(recipe(**bad))


def test_bad_acquisition_values_are_one_line_and_exit_2(tmp_path):
    res = CliRunner().invoke(cli, ["build-shapenet", "--classes", "1", "--set", "pose=sideways", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "pose" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_easy_draws_each_sample_as_a_build_without_the_keys_did(tmp_path):
    """Keys off (easy): no acquisition draw enters a sample. Each normal sample's points are the uniform
    surface draw of the class mesh by the sample seed's own Generator right after its point count (what
    build-shapenet drew before the keys existed), recomputed here; no sample or manifest records an
    acquisition. (Compared with the same machine's draw, so no byte is pinned.)"""
    settings = shapenet_settings(recipe())
    out = build_dataset(tmp_path / "easy", recipe(), **TINY).out
    m, data = manifest(out), samples_by_name(out)
    assert "acquisition" not in m and not any("acquisition" in s for s in m["samples"])
    mesh = class_mesh(settings, "eraser0")[0]
    goods = [s for s in m["samples"] if s["defect"] == "good"]
    assert {s["split"] for s in goods} == {"train", "test"}
    for s in goods:
        rng = np.random.default_rng(s["seed"])
        n = int(rng.integers(settings.points[0], settings.points[1] + 1))
        pts = sample_surface(mesh, n, rng)[0].astype(np.float32)
        assert np.array_equal(data[s["cls"], s["name"]].points, pts), s["name"]


# ------------------------------------------------------------------ the pure functions

def test_variation_stays_within_its_tolerance_and_is_smooth():
    mesh = class_mesh(shapenet_settings(recipe()), "cup1")[0]
    amount = 5 * 0.003
    for seed in range(4):
        part, rec = vary_part(mesh, amount, np.random.default_rng(seed))
        move = np.linalg.norm(part.vertices - mesh.vertices, axis=1)
        assert move.max() <= amount + 1e-12 and rec["max_displacement"] == pytest.approx(move.max(), rel=1e-6)
        assert move.max() > amount / 10                              # it does deform
        edges = mesh.edges_unique
        # neighbours move alike: the change along an edge is a small share of the edge (no local dents)
        rel = np.linalg.norm((part.vertices - mesh.vertices)[edges[:, 0]] - (part.vertices - mesh.vertices)[edges[:, 1]], axis=1)
        assert rel.max() < 0.2 * mesh.edges_unique_length.max()
        assert np.allclose(own_part(mesh, rec).vertices, part.vertices, atol=1e-12)


def test_a_scan_sees_one_side_and_density_follows_its_weights():
    mesh = trimesh.creation.icosphere(4)
    rng = np.random.default_rng(0)
    pool, faces = trimesh.sample.sample_surface(mesh, 40000, seed=1)
    keep, rec = scan_choice(mesh, pool, faces, 4000, Acquisition(views=1), rng)
    eye = np.array(rec["viewpoints"][0])
    # a sphere seen from outside: exactly the cap facing the eye (incidence above 0.1)
    facing = ((eye - pool[keep]) * mesh.face_normals[faces[keep]]).sum(1) > 0
    assert facing.all() and 0.2 < rec["seen_fraction"] < 0.5
    keep, rec = scan_choice(mesh, pool, faces, 4000, Acquisition(density=8.0), rng)
    w = (np.sin(pool @ np.array(rec["density"]["waves"]).T + np.array(rec["density"]["phases"])).mean(1) + 1) / 2
    hi, lo = w > np.quantile(w, 0.8), w < np.quantile(w, 0.2)
    chosen = np.zeros(len(pool), bool)
    chosen[keep] = True
    assert chosen[hi].mean() > 2.5 * chosen[lo].mean()


# ------------------------------------------------------------------ labels at paper with pose, variation, views

PAPER_ACQ = {"difficulty": "paper", "pose": "any", "pose_shift": 0.1, "variation": 4.0, "views": 2, "noise": 0.0,
             "density": 0.0}


def test_labels_exact_against_each_samples_own_part_at_paper():
    """Every defect type through the driver's resize-and-retry path on a varied part seen from 1-2
    viewpoints; labels recomputed against the part rebuilt from its variation record (trimesh closest
    point, brute-force rim distance)."""
    settings = shapenet_settings(recipe(**PAPER_ACQ))
    assert settings.acquisition.variation and settings.acquisition.views
    nominal = class_mesh(settings, "cup1")[0]
    for i, defect in enumerate(DEFECTS):
        seed = sample_seed(settings.seed, "cup1", "test", 200 + i)
        part, rec = sample_part(settings, "cup1", seed)
        own = own_part(nominal, rec["variation"])
        assert np.allclose(own.vertices, part.vertices, atol=1e-12)
        res, pts, lab, _, _, _, _, _, scan = _anomalous_sample(settings, part, Job("cup1", "test", 200 + i, defect, "x"), seed, 3000)
        assert scan["viewpoints"] and scan["seen_fraction"] < 1
        p = pts.astype(np.float64)
        tau = settings.tau * float(np.linalg.norm(own.extents))
        d = trimesh.proximity.closest_point(own, p)[1]
        want = d > tau
        if defect in REMOVAL:
            want |= cdist(p, np.asarray(res.rim_points)).min(axis=1) < settings.rim_distance * float(np.linalg.norm(own.extents))
        ok = np.abs(d - tau) > 1e-6  # float32 round-off at the threshold itself
        assert np.array_equal(lab.astype(bool)[ok], want[ok]), defect
        assert 0.01 <= lab.mean() <= 0.10, (defect, float(lab.mean()))


def test_paper_build_with_pose_variation_and_views_writes_what_its_manifest_says(tmp_path):
    """The written files: undo each sample's pose, rebuild its part from its record, and the points
    farther than tau from that part are exactly the labelled ones (bumps, dents, bends, scratches), or
    labelled (removal types, whose rim lip is labelled too); ratios in 1-10 % or the sample is listed
    (with its reason: a ratio outside, or a cut the part is too thin to show beyond tau)."""
    r = recipe(**PAPER_ACQ)
    settings = shapenet_settings(r)
    out = build_dataset(tmp_path / "paper", r, classes="cup1", train_per_class=1, test_per_class=9, workers=1).out
    m = manifest(out)
    assert set(m["acquisition"]["applied"]) == {"pose", "variation", "views"}
    nominal = class_mesh(settings, "cup1")[0]
    data = samples_by_name(out)
    written = {s["name"] for s in m["samples"]}
    for s in m["samples"] + m.get("rejected_samples", []):
        acq = s["acquisition"] if s["name"] in written else None
        if acq is None:                                            # rejected: listed with its reason, no file
            assert s["rejected"] and (s["cls"], s["name"]) not in data
            continue
        own = own_part(nominal, acq["variation"])
        pts = undo_pose(data["cup1", s["name"]].points, acq["pose"])
        lab = data["cup1", s["name"]].labels.astype(bool)
        if s["defect"] == "good":
            assert not lab.any()
            d = trimesh.proximity.closest_point(own, pts)[1]
            assert d.max() < 1e-4                                  # on its own part, not on the nominal one
            continue
        assert 0.01 <= s["anomaly_ratio"] <= 0.10 and s["split"] == "test" and acq["viewpoints"]
        tau = settings.tau * float(np.linalg.norm(own.extents))
        d = trimesh.proximity.closest_point(own, pts)[1]
        far = d > tau + 1e-5
        near = d < tau - 1e-5
        assert lab[far].all(), s["name"]
        if s["defect"] not in REMOVAL:
            assert not lab[near].any(), s["name"]


# ------------------------------------------------------------------ the renderer

def test_renderer_noise_moves_points_along_their_rays_and_keeps_the_gt():
    cfg = render_config(load_recipe("render-mvtec3d", {"size": 64}))
    plain, rec0 = render_sample("bagel", "test", "bulge", 0, 0, cfg)
    noisy, rec1 = render_sample("bagel", "test", "bulge", 0, 0, dataclasses.replace(cfg, noise=1.0))
    assert np.array_equal(plain.mask, noisy.mask) and np.array_equal(plain.rgb, noisy.rgb)
    valid = np.any(plain.xyz != 0, axis=-1)
    assert np.array_equal(valid, np.any(noisy.xyz != 0, axis=-1))
    a, b = plain.xyz[valid].astype(np.float64), noisy.xyz[valid].astype(np.float64)
    cross = np.linalg.norm(np.cross(a / np.linalg.norm(a, axis=1, keepdims=True), b), axis=1)
    assert cross.max() < 1e-6                                     # along the ray through the pixel
    sigma = rec1["noise_std"]
    off = np.linalg.norm(b, axis=1) - np.linalg.norm(a, axis=1)
    assert np.std(off) == pytest.approx(sigma, rel=0.1) and np.abs(off).max() <= 3 * sigma * 1.001
    assert "noise_std" not in rec0


def test_renderer_pose_any_turns_the_object_and_none_keeps_it_unturned():
    cfg = render_config(load_recipe("render-mvtec3d", {"size": 64}))
    assert cfg.pose == "z" and cfg.noise == 0.0                  # easy: the spin every build had
    turned, rec = render_sample("dowel", "train", "good", 0, 0, dataclasses.replace(cfg, pose="any"))
    r = np.array(rec["pose_rotation"])
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-7)
    spun, _ = render_sample("dowel", "train", "good", 0, 0, cfg)
    upright, _ = render_sample("dowel", "train", "good", 0, 0, dataclasses.replace(cfg, pose="none"))
    assert not np.array_equal(spun.xyz, upright.xyz) and not np.array_equal(spun.xyz, turned.xyz)
    with pytest.raises(AnomalygenError, match="pose"):
        render_config(load_recipe("render-mvtec3d", {"pose": "upside"}))
