"""The `difficulty` recipe key: the default level keeps the data as it was, every level keeps the
label rule exact and the anomaly ratio in bounds, harder levels move the surface less, the same
seed writes the same bytes at any level, and the same dial scales depth-defects and render-mvtec3d."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.spatial.distance import cdist

from anomalygen.builds.difficulty import DEPTH_HARD_FACTOR, LEVELS, MAX_LEVEL, difficulty_value
from anomalygen.builds.settings import das3d_config, render_config
from anomalygen.builds.shapenet import (Job, _anomalous_sample, build_dataset, class_mesh, defect_params,
                                        sample_seed, settings_from_recipe)
from anomalygen.depth.synth import depth_defect, draw_params
from anomalygen.errors import AnomalygenError
from anomalygen.io import open_dataset
from anomalygen.mesh import DEFECTS, REMOVAL, apply_defect
from anomalygen.mesh.refine import refine
from anomalygen.recipes import load_recipe
from anomalygen.shapes.catalog import make_shape

SMALL = {"dataset.points": [3000, 5000]}
TINY = dict(classes="eraser0", train_per_class=1, test_per_class=4, workers=1)
DISPLACEMENT = ("bulge", "concavity", "bending")

# sha256 over (relative path, points float32 bytes, labels) of every sample of the TINY build of
# the built-in recipe with SMALL, computed with the code as it was before the difficulty key existed
EASY_DATA_SHA256 = "70ffc58c98b344cf0eb19b696910c2d313403be8dbbdd41d1f4c30461c7b7aca"


def recipe(level=None, **over):
    r = load_recipe("anomaly-shapenet", {**SMALL, **over})
    if level is None:
        r.pop("difficulty", None)
    else:
        r["difficulty"] = level
    return r


def data_digest(root: Path) -> str:
    """Digest of the samples' data (points and labels), independent of the text formatting."""
    h = hashlib.sha256()
    ds = open_dataset(root)
    for cls in ds.classes():
        for split in ("train", "test"):
            for ref in ds.samples(cls, split):
                s = ref.load()
                h.update(f"{cls}/{split}/{ref.name}".encode())
                h.update(np.ascontiguousarray(s.points, np.float32).tobytes())
                h.update(np.ascontiguousarray(s.labels, np.uint8).tobytes())
    return h.hexdigest()


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".anomalygen" not in p.parts}


def test_levels_and_user_errors():
    assert difficulty_value("easy") == 0.0 < difficulty_value("paper") < difficulty_value("hard")
    assert difficulty_value(0.3) == 0.3 and LEVELS["hard"] == difficulty_value("hard")
    for bad in ("medium", -0.1, MAX_LEVEL + 0.1, True, None):
        with pytest.raises(AnomalygenError, match="difficulty"):
            difficulty_value(bad)
    with pytest.raises(AnomalygenError, match="difficulty"):
        settings_from_recipe(recipe("impossible"))


def test_easy_hands_the_recipe_over_unchanged():
    r = recipe()
    for d in DEFECTS:
        assert defect_params(recipe("easy"), d) == defect_params(r, d) == {
            **r["defects"][d], "tau": r["labels"]["tau"], "rim_distance": r["labels"]["rim_distance"]}
    assert settings_from_recipe(recipe("easy")) == settings_from_recipe(r)
    assert load_recipe("anomaly-shapenet")["difficulty"] == "easy"  # the shipped default


def test_default_level_reproduces_the_data_from_before_the_key(tmp_path):
    easy = build_dataset(tmp_path / "easy", recipe("easy"), **TINY).out
    none = build_dataset(tmp_path / "none", recipe(None), **TINY).out
    a, b = tree_bytes(easy), tree_bytes(none)
    assert a.keys() == b.keys()
    assert {k: v for k, v in a.items() if k != "manifest.json"} == {k: v for k, v in b.items() if k != "manifest.json"}
    ma, mb = (json.loads(x["manifest.json"]) for x in (a, b))
    assert ma["recipe"].pop("difficulty") == "easy" and ma == mb  # the recipe copy names its level
    assert data_digest(easy) == EASY_DATA_SHA256


def test_same_seed_same_bytes_at_a_harder_level(tmp_path):
    one = build_dataset(tmp_path / "a", recipe("hard"), **TINY).out
    two = build_dataset(tmp_path / "b", recipe("hard"), **{**TINY, "workers": 2}).out
    assert tree_bytes(one) == tree_bytes(two)
    m = json.loads((one / "manifest.json").read_text())
    assert all(0.01 <= s["anomaly_ratio"] <= 0.10 for s in m["samples"] if s["defect"] != "good")


@pytest.fixture(scope="module")
def mesh():
    return refine(make_shape("eraser0", np.random.default_rng([0, 1])), 0.03)


@pytest.mark.parametrize("defect", DISPLACEMENT)
def test_harder_levels_displace_the_surface_less(mesh, defect):
    medians = []
    for level in ("easy", "paper", "hard"):
        per_draw = []
        for seed in range(6):
            res = apply_defect(mesh, defect, defect_params(recipe(level), defect), np.random.default_rng(seed))
            disp = np.linalg.norm(np.asarray(res.mesh.vertices) - np.asarray(mesh.vertices), axis=1)
            per_draw.append(np.median(disp[disp > 0.003]))  # the labeled part (moved farther than tau)
        medians.append(float(np.median(per_draw)))
    assert medians[0] > medians[1] > medians[2], medians


@pytest.mark.parametrize("level", ["paper", "hard"])
def test_label_rule_exact_and_ratio_in_bounds(level):
    """Every defect through the build driver's resize-and-retry path; labels recomputed with
    trimesh's closest point and a brute-force rim distance."""
    settings = settings_from_recipe(recipe(level))
    fine, _ = class_mesh(settings, "cup1")
    for i, defect in enumerate(DEFECTS):
        seed = sample_seed(settings.seed, "cup1", "test", 100 + i)
        res, pts, lab = _anomalous_sample(settings, fine, Job("cup1", "test", 100 + i, defect, "x"), seed, 3000)[:3]
        p = pts.astype(np.float64)
        d = trimesh.proximity.closest_point(fine, p)[1]
        want = d > settings.tau
        if defect in REMOVAL:
            want |= cdist(p, np.asarray(res.rim_points)).min(axis=1) < settings.rim_distance
        ok = np.abs(d - settings.tau) > 1e-6  # float32 round-off at the threshold itself
        assert np.array_equal(lab.astype(bool)[ok], want[ok]), defect
        assert 0.01 <= lab.mean() <= 0.10, (defect, float(lab.mean()))


def test_depth_defects_dial_shrinks_the_change_and_keeps_the_mask():
    easy, hard = das3d_config(load_recipe("das3d")), das3d_config(load_recipe("das3d", {"difficulty": "hard"}))
    f = DEPTH_HARD_FACTOR ** LEVELS["hard"]
    assert hard.p_z == pytest.approx(tuple(f * v for v in easy.p_z), rel=1e-5) and hard.t_h == pytest.approx(f * easy.t_h, rel=1e-5)
    z = np.full((64, 64), 0.4, np.float32)
    fg = np.zeros((64, 64), bool)
    fg[8:56, 8:56] = True
    for seed in range(4):
        a = depth_defect(z, fg, draw_params(np.random.default_rng(seed), easy, z.shape), easy, 0.1)
        b = depth_defect(z, fg, draw_params(np.random.default_rng(seed), hard, z.shape), hard, 0.1)
        assert np.mean(a.mask == b.mask) > 0.999
        if a.mask.any():
            ratio = np.abs(b.z_a - z).max() / np.abs(a.z_a - z).max()
            assert ratio == pytest.approx(f, rel=1e-3)


def test_render_dial_scales_the_rendered_mesh_defects():
    easy = render_config(load_recipe("render-mvtec3d")).mesh_defect_params
    hard = render_config(load_recipe("render-mvtec3d", {"difficulty": "hard"})).mesh_defect_params
    assert max(hard["bulge"]["height"]) < min(easy["bulge"]["height"])
    assert max(hard["scratch"]["width"]) < min(easy["scratch"]["width"])
    assert easy["bulge"] == defect_params(load_recipe("anomaly-shapenet"), "bulge")

