"""Repair of a user's mesh keeps the object the user gave, or refuses it with the distance it
would have moved. The meshes are made here: a transistor-like package (a box with three thin
leads, each lead its own closed body overlapping the box) and the ways exports break it."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

from anomalygen.cli import cli
from anomalygen.errors import FormatError
from anomalygen.shapes.catalog import normalize
from anomalygen.shapes.checks import prepare_source_mesh
from anomalygen.shapes.repair import RepairSettings, boundary_loops, refusal, repair

TAU = 0.003
LEAD_W, LEAD_T = 0.03, 0.02  # lead width and thickness: ~3 and 2 % of the package's diagonal


def package(open_end: bool = False) -> trimesh.Trimesh:
    """A box body with three thin leads sticking out of one side, each lead a separate closed box
    reaching into the body (as CAD exports of electronic packages are). `open_end`: the tip face of
    the middle lead is missing, a hole the size of the lead's cross-section."""
    body = trimesh.creation.box((0.5, 0.4, 0.15))
    leads = []
    for x in (-0.15, 0.0, 0.15):
        lead = trimesh.creation.box((LEAD_W, 0.35, LEAD_T))
        lead.apply_translation((x, -0.2 - 0.35 / 2 + 0.05, -0.03))
        leads.append(lead)
    if open_end:
        mid = leads[1]
        mid.update_faces(mid.face_normals[:, 1] > -0.5)  # drop the tip (-y) face
        mid.remove_unreferenced_vertices()
    return trimesh.util.concatenate([body, *leads])


def lead_tip_points(mesh: trimesh.Trimesh) -> np.ndarray:
    """Points on the outer half of each lead (the part a lossy repair loses first), in the
    unit-diagonal frame of `mesh`."""
    u = normalize(mesh)
    pts = trimesh.sample.sample_surface(u, 40000, seed=3)[0]
    return pts[pts[:, 1] < u.bounds[0, 1] + 0.12]


def distance_to(mesh: trimesh.Trimesh, pts: np.ndarray) -> np.ndarray:
    return np.abs(trimesh.proximity.signed_distance(mesh, pts))


def test_leads_modelled_as_overlapping_bodies_are_united_and_kept():
    user = package()
    assert user.is_watertight and user.body_count == 4  # closed, but four overlapping solids
    r = repair(user, RepairSettings(tau=TAU))
    assert "united" in r.steps and "remeshed" not in r.steps and r.how == "repaired"
    assert r.mesh.is_watertight and r.mesh.is_volume and r.mesh.body_count == 1
    assert r.distance.largest <= TAU and refusal(r, RepairSettings(tau=TAU)) is None
    # the leads are there: the box of the repaired mesh is the user's, and every lead point lies on it
    assert np.allclose(r.mesh.bounds, normalize(user).bounds, atol=1e-6)
    assert distance_to(r.mesh, lead_tip_points(user)).max() < 0.1 * TAU
    # the union removed the lead ends inside the body: less area than the four bodies had
    assert r.mesh.area < normalize(user).area - 1e-3


def test_doubly_wound_soup_is_merged_not_remeshed():
    p = package()
    soup = trimesh.Trimesh(p.vertices[p.faces].reshape(-1, 3),  # every triangle with its own vertices ...
                           np.arange(3 * len(p.faces)).reshape(-1, 3), process=False)
    soup = trimesh.Trimesh(soup.vertices, np.vstack([soup.faces, soup.faces[:, ::-1]]), process=False)  # ... twice
    r = repair(soup, RepairSettings(tau=TAU))
    assert r.steps[0] == "merged" and "remeshed" not in r.steps
    assert r.distance.largest <= TAU
    assert distance_to(r.mesh, lead_tip_points(p)).max() < 0.1 * TAU


def test_an_opening_wider_than_tau_is_refused_with_the_distance_its_patch_moved():
    user = package(open_end=True)
    r = repair(user, RepairSettings(tau=TAU))
    assert "filled" in r.steps and r.mesh.is_watertight
    # the patch over the lead's tip reaches half the lead's thickness from the lead's walls
    expected = 0.5 * LEAD_T / np.linalg.norm(user.extents) / TAU
    line = refusal(r, RepairSettings(tau=TAU))
    assert line is not None and "\n" not in line and "max_repair_tau" in line and "closed solid" in line
    measured = float(re.search(r"up to ([\d.]+) tau", line).group(1))
    assert measured == pytest.approx(expected, rel=0.1)
    # a bound above the distance accepts it, and the patched lead is still the user's lead
    assert refusal(r, RepairSettings(tau=TAU, max_tau=1.2 * expected)) is None
    assert distance_to(r.mesh, lead_tip_points(package())).max() < 0.1 * TAU
    with pytest.raises(FormatError, match="max_repair_tau"):
        prepare_source_mesh(user, RepairSettings(tau=TAU))


def test_what_no_patch_closes_is_remeshed_at_a_pitch_that_resolves_the_leads_or_refused():
    """Leads as open sheets (no thickness to patch) force the last resort: a voxel remesh at a pitch
    set by the thinnest feature. It keeps the leads within the bound, or is refused saying how far."""
    body = trimesh.creation.box((0.5, 0.4, 0.15))
    leads = []
    for x in (-0.15, 0.0, 0.15):
        lead = trimesh.creation.box((LEAD_W, 0.35, LEAD_T))
        lead.apply_translation((x, -0.325, -0.03))
        lead.update_faces(lead.face_normals[:, 2] > 0.5)  # only the top face of each lead: a sheet
        leads.append(lead)
    user = trimesh.util.concatenate([body, *leads])
    settings = RepairSettings(tau=TAU, voxel_pitch=0.008)
    r = repair(user, settings)
    assert "remeshed" in r.steps and r.pitch <= settings.voxel_pitch
    line = refusal(r, settings)
    if line is None:
        assert distance_to(r.mesh, lead_tip_points(user)).max() <= TAU
    else:
        assert f"{r.distance.largest / TAU:.1f} tau" in line


def test_a_closed_input_is_never_remeshed():
    """A closed mesh whose faces bound no volume is refused with the reason, not rebuilt."""
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    flat = trimesh.Trimesh(box.vertices * [1, 1, 0], box.faces, process=False)  # closed, zero volume
    with pytest.raises(FormatError, match="closed but not a valid solid|zero area"):
        repair(flat)
    inverted = package()
    inverted.invert()  # closed, every body wound inward
    r = repair(inverted, RepairSettings(tau=TAU))
    assert "remeshed" not in r.steps and r.mesh.volume > 0 and r.distance.largest <= TAU


def test_boundary_loops_split_holes_that_share_a_vertex():
    ico = trimesh.creation.icosphere(2)
    v = 0
    ring = np.nonzero((ico.faces == v).any(axis=1))[0]
    ico.update_faces(~np.isin(np.arange(len(ico.faces)), ring[[0, 3]]))  # two holes meeting at vertex 0
    loops = boundary_loops(ico.faces)
    assert sorted(len(lp) for lp in loops) == [3, 3] and all(v in lp for lp in loops)
    r = repair(ico, RepairSettings(tau=TAU, max_tau=100))
    assert r.mesh.is_watertight and "remeshed" not in r.steps


def test_build_refuses_a_moved_class_with_its_distance_and_records_the_kept_one(tmp_path):
    src = tmp_path / "parts"
    (src / "package").mkdir(parents=True)
    (src / "opentip").mkdir()
    package().export(src / "package" / "d2pak.stl")
    package(open_end=True).export(src / "opentip" / "d2pak.stl")
    out = tmp_path / "ds"
    r = CliRunner().invoke(cli, ["build-shapenet", "--source", str(src), "--out", str(out), "--train-per-class", "1",
                                 "--test-per-class", "2", "--defects", "bulge", "--workers", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    kept = man["classes"]["package"]
    assert kept["repair"] == "repaired" and "united" in kept["repair_steps"]
    assert max(kept["repair_distance_tau"].values()) <= 1.0
    why = man["rejected_classes"]["opentip"]
    assert "tau" in why and "max_repair_tau" in why and "skipped class opentip" in r.output
