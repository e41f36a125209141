"""Shape sources: the procedural catalog, ShapeNetCore v2 and a folder of user meshes
(the last two on tiny files written here in the real layouts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from anomalygen.errors import AnomalygenError
from anomalygen.io.anomaly_shapenet import CLASSES
from anomalygen.shapes.catalog import make_shape
from anomalygen.shapes.shapenet import ShapeNetSource
from anomalygen.shapes.sources import ProceduralSource, open_source
from anomalygen.shapes.userdir import UserFolderSource


def test_catalog_covers_all_40_classes_watertight_unit_scale():
    src = open_source(None)
    assert isinstance(src, ProceduralSource) and src.classes() == list(CLASSES)
    assert "NOT ShapeNet" in src.summary()["note"]
    for cls in CLASSES:
        m = make_shape(cls, np.random.default_rng([0, 1]))
        assert m.is_watertight and m.is_volume, cls
        assert np.linalg.norm(m.extents) == pytest.approx(1.0, abs=1e-6), cls
        assert np.allclose(m.bounds.sum(0), 0, atol=1e-6), cls


def test_catalog_instances_differ_by_seed_and_repeat_by_seed():
    a = make_shape("vase3", np.random.default_rng(1))
    b = make_shape("vase3", np.random.default_rng(1))
    c = make_shape("vase3", np.random.default_rng(2))
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)
    assert a.vertices.shape != c.vertices.shape or not np.allclose(a.vertices, c.vertices)


def _write_obj(path, mesh):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(mesh.export(file_type="obj"))


def test_shapenet_layout_mapping_repair_and_skip(tmp_path):
    root = tmp_path / "ShapeNetCore.v2"
    root.mkdir()
    (root / "taxonomy.json").write_text(json.dumps([
        {"synsetId": "02876657", "name": "bottle", "children": [], "numInstances": 2},
        {"synsetId": "02880940", "name": "bowl", "children": [], "numInstances": 1}]))
    # bottle models: one unusable (not a mesh), one cylinder exported as a soup (needs repair): every
    # triangle listed twice, once in each winding
    (root / "02876657" / "aaa" / "models").mkdir(parents=True)
    (root / "02876657" / "aaa" / "models" / "model_normalized.obj").write_text("this is not an obj\n")
    cyl = trimesh.creation.cylinder(0.2, 1.0, sections=24)
    soup = trimesh.Trimesh(cyl.vertices, np.vstack([cyl.faces, cyl.faces[:, ::-1]]), process=False)
    _write_obj(root / "02876657" / "bbb" / "models" / "model_normalized.obj", soup)
    _write_obj(root / "02880940" / "ccc" / "models" / "model_normalized.obj",
               trimesh.creation.box((3.0, 2.0, 1.0)))
    src = open_source(root)
    assert isinstance(src, ShapeNetSource)
    bowl = src.mesh("bowl0", np.random.default_rng(0))
    assert bowl.is_watertight and np.linalg.norm(bowl.extents) == pytest.approx(1.0)
    assert src.describe("bowl0")["model"] == "ccc" and src.describe("bowl0")["repair"] == "as-is"
    skipped = []
    for cls in ("bottle0", "bottle1"):  # the digit picks the model: one of them starts at the broken one
        bottle = src.mesh(cls, np.random.default_rng(0))
        assert bottle.is_watertight and bottle.is_volume
        d = src.describe(cls)
        assert d["model"] == "bbb" and d["repair"] == "repaired" and max(d["repair_distance_tau"].values()) <= 1
        skipped += d["skipped"]
    assert len(skipped) == 1 and skipped[0].startswith("aaa")
    # no ShapeNet synset for erasers: procedural stand-in, and the manifest says why
    src.mesh("eraser0", np.random.default_rng(0))
    assert src.describe("eraser0")["source"] == "procedural" and "eraser" in src.describe("eraser0")["fallback"]


def test_user_folder_one_class_per_subfolder(tmp_path):
    root = tmp_path / "meshes"
    (root / "mug").mkdir(parents=True)
    (root / "gear").mkdir()
    _write_obj(root / "gear" / "g.obj", trimesh.creation.annulus(0.2, 0.5, 0.2))
    trimesh.creation.box((1, 1, 2)).export(root / "mug" / "a.ply")
    trimesh.creation.icosphere(2).export(root / "mug" / "b.stl")
    src = open_source(root)
    assert isinstance(src, UserFolderSource)
    assert src.classes() == ["gear", "mug0", "mug1"]
    for cls in src.classes():
        m = src.mesh(cls, np.random.default_rng(0))
        assert m.is_watertight and np.linalg.norm(m.extents) == pytest.approx(1.0)
    assert src.describe("mug1")["file"].endswith("b.stl")


def test_user_folder_errors_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnomalygenError, match="neither ShapeNetCore"):
        open_source(tmp_path / "empty")
    bad = tmp_path / "bad" / "thing"
    bad.mkdir(parents=True)
    (bad / "x.obj").write_text("v 0 0 0\n")
    with pytest.raises(AnomalygenError, match="x.obj"):
        open_source(tmp_path / "bad").mesh("thing", np.random.default_rng(0))
    with pytest.raises(AnomalygenError, match="no such directory"):
        open_source(tmp_path / "nope")
