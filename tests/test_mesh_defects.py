"""Defect operators and the label rule, checked independently of the generator.

Labels are recomputed here with trimesh's own closest-point query (not open3d, which the
labeler uses) and a brute-force rim distance, on two object kinds: a solid (eraser) and
a thin-walled vessel (cup), so through-holes and blind pits are both exercised.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.distance import cdist

from anomalygen.errors import AnomalygenError
from anomalygen.builds.settings import defect_params
from anomalygen.mesh import DEFECTS, REMOVAL, apply_defect
from anomalygen.mesh.labels import label_points
from anomalygen.mesh.refine import refine
from anomalygen.mesh.sampling import sample_surface
from anomalygen.recipes import load_recipe
from anomalygen.shapes.catalog import make_shape

RECIPE = load_recipe("anomaly-shapenet")


def P(defect: str, **over) -> dict:
    """The built-in recipe's parameters for `defect` (what the build driver passes), with overrides."""
    return {**defect_params(RECIPE, defect), **over}

TAU, RIM = 0.003, 0.012  # fractions of the diagonal (= absolute: shapes have diagonal 1)


@pytest.fixture(scope="module")
def shapes():
    out = {}
    for cls in ("eraser0", "cup0"):
        m = make_shape(cls, np.random.default_rng([0, 1]))
        out[cls] = refine(m, 0.03)
    return out


def independent_labels(points, original, result):
    d = trimesh.proximity.closest_point(original, points)[1]
    lab = d > TAU
    if result.defect in REMOVAL:
        rim = np.asarray(result.rim_points)
        lab |= cdist(points, rim).min(axis=1) < RIM
    return lab, d


@pytest.mark.parametrize("cls", ["eraser0", "cup0"])
@pytest.mark.parametrize("defect", DEFECTS)
def test_labels_match_geometry(shapes, cls, defect):
    mesh = shapes[cls]
    before = mesh.vertices.copy(), mesh.faces.copy()
    res = apply_defect(mesh, defect, P(defect), np.random.default_rng(3))
    assert np.array_equal(mesh.vertices, before[0]) and np.array_equal(mesh.faces, before[1]), "input mutated"
    assert res.mesh.is_watertight, f"{defect} broke watertightness"
    pts = sample_surface(res.mesh, 4000, np.random.default_rng(4))[0].astype(np.float32).astype(np.float64)
    got = label_points(pts, mesh, res, TAU, RIM).astype(bool)
    want, d = independent_labels(pts, mesh, res)
    ambiguous = np.abs(d - TAU) < 1e-6  # float32 round-off at the threshold itself
    assert np.array_equal(got[~ambiguous], want[~ambiguous])
    assert 0.002 < got.mean() < 0.3, f"{defect}: ratio {got.mean():.4f}"
    # the anomaly is one place, not noise: anomalous points sit near each other
    a = pts[got]
    assert np.linalg.norm(a - a.mean(0), axis=1).max() < 0.9


@pytest.mark.parametrize("defect", REMOVAL)
def test_removal_really_removes_surface(shapes, defect):
    mesh = shapes["cup0"]
    res = apply_defect(mesh, defect, P(defect), np.random.default_rng(5))
    on_original = sample_surface(mesh, 20000, np.random.default_rng(6))[0]
    gone = trimesh.proximity.closest_point(res.mesh, on_original)[1] > TAU
    assert gone.mean() > 0.001, "no part of the original surface was removed"
    assert res.mesh.volume < mesh.volume - 1e-6
    # the rim lies on the original surface, at the border of what was removed
    rim_d = trimesh.proximity.closest_point(mesh, res.rim_points)[1]
    assert np.median(rim_d) < 1e-4
    assert cdist(res.rim_points, on_original[gone]).min(axis=1).max() < 0.08


def test_bending_moves_a_region_rigidly(shapes):
    mesh = shapes["eraser0"]
    res = apply_defect(mesh, "bending", P("bending", angle_deg=20.0), np.random.default_rng(7))
    v0, v1 = np.asarray(mesh.vertices), np.asarray(res.mesh.vertices)
    u = np.asarray(res.params["plane_normal"])
    s = v0 @ u
    rigid = s >= res.params["plane_offset"] + res.params["transition"]
    still = s <= res.params["plane_offset"] - 1e-9
    assert rigid.sum() >= 10 and still.sum() >= 10
    assert np.allclose(v1[still], v0[still])
    # Kabsch fit on the rigid part: one rotation + translation explains every moved vertex
    a, b = v0[rigid], v1[rigid]
    ac, bc = a - a.mean(0), b - b.mean(0)
    U, _, Vt = np.linalg.svd(ac.T @ bc)
    R = (U @ Vt).T
    if np.linalg.det(R) < 0:
        Vt[-1] *= -1
        R = (U @ Vt).T
    assert np.abs(ac @ R.T - bc).max() < 1e-9
    angle = np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))
    assert angle == pytest.approx(20.0, abs=1e-6)
    # and the region really moved (not a rotation about its own symmetry)
    assert np.linalg.norm(b - a, axis=1).max() > 0.02


def test_bulge_goes_out_concavity_goes_in(shapes):
    mesh = shapes["eraser0"]
    up = apply_defect(mesh, "bulge", P("bulge"), np.random.default_rng(8)).mesh
    down = apply_defect(mesh, "concavity", P("concavity"), np.random.default_rng(8)).mesh
    assert up.volume > mesh.volume > down.volume


def test_same_rng_same_mesh_and_params(shapes):
    for defect in ("crack", "bulge"):
        a = apply_defect(shapes["cup0"], defect, P(defect), np.random.default_rng(9))
        b = apply_defect(shapes["cup0"], defect, P(defect), np.random.default_rng(9))
        assert np.array_equal(a.mesh.vertices, b.mesh.vertices) and np.array_equal(a.mesh.faces, b.mesh.faces)
        assert a.params == b.params


def test_ranges_are_realized(shapes):
    res = apply_defect(shapes["eraser0"], "bulge", P("bulge", height=[0.04, 0.04]), np.random.default_rng(1))
    assert res.params["height"] == pytest.approx(0.04)
    assert isinstance(res.params["target_ratio"], float)  # drawn from the recipe's range


@pytest.mark.parametrize("missing", ["height", "tau", "target_ratio"])
def test_a_missing_parameter_is_named(shapes, missing):
    """Operators read no recipe: what the driver forgets to pass is one clear error naming the key."""
    params = {k: v for k, v in P("bulge").items() if k != missing}
    with pytest.raises(AnomalygenError, match=f"needs the parameter '{missing}'"):
        apply_defect(shapes["eraser0"], "bulge", params, np.random.default_rng(1))


def test_unknown_defect_is_a_user_error(shapes):
    with pytest.raises(AnomalygenError, match="unknown defect"):
        apply_defect(shapes["eraser0"], "dent", P("bulge"), np.random.default_rng(0))


def test_refine_keeps_the_surface():
    m = trimesh.creation.box((1, 0.5, 0.2))
    r = refine(m, 0.05)
    assert r.edges_unique_length.max() <= 0.05 * 1.001
    assert r.is_watertight
    assert r.area == pytest.approx(m.area) and r.volume == pytest.approx(m.volume)
    p = sample_surface(r, 2000, np.random.default_rng(0))[0]
    assert trimesh.proximity.closest_point(m, p)[1].max() < 1e-6  # manifold3d stores float32


@pytest.mark.parametrize("seed", [0, 2, 6])
def test_deep_dent_on_a_thin_wall_stays_labeled_to_its_floor(seed):
    """A dent capped only by the wall at its centre can run into the opposite wall where the
    wall thins; there its points are within tau of the ORIGINAL (other) wall and lose their
    label: an unlabeled crescent inside the dent. Each vertex is capped by its own wall, so
    every vertex the dent moves by more than 2 tau stays anomalous."""
    bowl = refine(make_shape("bowl0", np.random.default_rng([0, 1])), 0.03)
    res = apply_defect(bowl, "concavity", P("concavity", depth=0.05), np.random.default_rng(seed))
    moved = np.linalg.norm(res.mesh.vertices - bowl.vertices, axis=1)
    lab = label_points(np.asarray(res.mesh.vertices), bowl, res, TAU, RIM).astype(bool)
    assert (moved > 2 * TAU).sum() > 50
    assert not np.any((moved > 2 * TAU) & ~lab)
    d_other = trimesh.proximity.closest_point(bowl, res.mesh.vertices)[1]
    assert np.all(d_other[moved > 2 * TAU] > TAU)
