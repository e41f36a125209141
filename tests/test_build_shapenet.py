"""build-shapenet end to end on a tiny build: layout, manifest, validate, seeds -> bytes
(any worker count), resume after a kill, CLI errors, preview sheets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from anomalygen.cli import cli
from anomalygen.io import open_dataset
from anomalygen.builds.shapenet import BATCH, build_dataset
from anomalygen.preview.points import preview_point_dataset
from anomalygen.recipes import load_recipe
from anomalygen.validate import validate_dataset

SMALL = {"dataset.points": [3000, 5000], "dataset.write_meshes": "all"}
KW = dict(classes="eraser0,cup1", train_per_class=1, test_per_class=8)


def small_recipe():
    return load_recipe("anomaly-shapenet", SMALL)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".anomalygen" not in p.parts and "preview" not in p.parts}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "ds"
    res = build_dataset(out, small_recipe(), workers=1, **KW)
    return out, res


def test_layout_manifest_and_validate(built):
    out, res = built
    ds = open_dataset(out)
    assert ds.layout == "anomaly-shapenet" and ds.classes() == ["cup1", "eraser0"]
    assert len(ds) == 18 and len(ds.samples(split="train")) == 2
    assert (out / "pcd" / "eraser0" / "train" / "eraser0_template0.pcd").is_file()
    m = json.loads((out / "manifest.json").read_text())
    assert m["validate"] == {"points": [3000, 5000], "anomaly_ratio": [0.01, 0.1]}
    assert "NOT ShapeNet" in m["shapes"]["note"] and m["seed"] == 0 and "tau" in m["label_rule"]
    assert len(m["samples"]) == 18
    for s in m["samples"]:
        ref = next(r for r in ds.samples(s["class"] if "class" in s else s["cls"]) if r.name == s["name"])
        sample = ref.load()
        assert len(sample.points) == s["points"]
        assert sample.anomaly_ratio == pytest.approx(s["anomaly_ratio"])
        assert sample.defect == s["defect"]
        if s["defect"] != "good":
            assert 0.01 <= s["anomaly_ratio"] <= 0.1 and s["params"] and s["attempts"] >= 1
            assert (out / "obj" / ref.cls / f"{ref.name}.obj").is_file()
    report = validate_dataset(out)
    assert report.ok, [str(p) for p in report.problems]


def test_same_seed_same_bytes_for_any_worker_count(built, tmp_path):
    out1, _ = built
    out2 = tmp_path / "w2"
    build_dataset(out2, small_recipe(), workers=2, **KW)
    a, b = tree_bytes(out1), tree_bytes(out2)
    assert a.keys() == b.keys() and len(a) > 30
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:5]


def test_killed_build_resumes_to_identical_bytes(built, tmp_path):
    out1, _ = built
    out2 = tmp_path / "resumed"

    class Killed(Exception):
        pass

    def killer(it, total):
        for i, x in enumerate(it):
            if i == 7:
                raise Killed
            yield x

    with pytest.raises(Killed):
        build_dataset(out2, small_recipe(), workers=1, progress=killer, **KW)
    assert not (out2 / "manifest.json").exists()
    # a half-written temp file from the kill must not confuse the resume
    (out2 / "pcd" / "eraser0" / "test" / ".junk.123.tmp.pcd").write_text("partial")
    res = build_dataset(out2, small_recipe(), workers=1, **KW)
    # every sample reported before the kill is kept; samples are committed a batch at a time (one sync
    # per batch, anomalygen.builds.shapenet.BATCH), so the rest of the batch in flight may be kept too
    assert 7 <= res.reused <= 7 + BATCH and res.reused < len(res.jobs)
    assert not (out2 / "pcd" / "eraser0" / "test" / ".junk.123.tmp.pcd").exists()  # the resume removed it
    assert tree_bytes(out1) == tree_bytes(out2)


def test_other_settings_refuse_to_mix_with_an_existing_build(built):
    out, _ = built
    from anomalygen.errors import AnomalygenError

    with pytest.raises(AnomalygenError, match="other settings"):
        build_dataset(out, small_recipe(), workers=1, seed=5, **KW)


def test_different_seed_changes_the_data(built, tmp_path):
    out1, _ = built
    out2 = tmp_path / "s1"
    build_dataset(out2, small_recipe(), workers=1, seed=1, classes="eraser0", train_per_class=1, test_per_class=1)
    a = (out1 / "pcd" / "eraser0" / "train" / "eraser0_template0.pcd").read_bytes()
    assert a != (out2 / "pcd" / "eraser0" / "train" / "eraser0_template0.pcd").read_bytes()


def test_cli_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(cli, ["build-shapenet", "--out", str(tmp_path / "x"), "--engine", "povray"])
    assert r.exit_code == 2 and "unknown engine 'povray'" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["build-shapenet", "--out", str(tmp_path / "x"), "--classes", "41"])
    assert r.exit_code == 2 and "choose 1..40" in r.output
    r = CliRunner().invoke(cli, ["build-shapenet", "--out", str(tmp_path / "x"), "--classes", "vase6"])
    assert r.exit_code == 2 and "unknown class" in r.output
    r = CliRunner().invoke(cli, ["build-shapenet", "--out", str(tmp_path / "x"), "--defects", "dent"])
    assert r.exit_code == 2 and "unknown defect 'dent'" in r.output


def test_cli_build_prints_summary(tmp_path):
    out = tmp_path / "cli"
    r = CliRunner().invoke(cli, ["build-shapenet", "--out", str(out), "--classes", "1", "--train-per-class", "1",
                                 "--test-per-class", "2", "--defects", "hole", "--workers", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["build-shapenet", "--out", str(out), "--classes", "1", "--train-per-class", "1",
                                 "--test-per-class", "2", "--defects", "hole", "--workers", "1"])
    assert r.exit_code == 0 and "3 reused" in r.output and "hole" in r.output
    # the default recipe keeps one mesh per class: the normal object, watertight
    objs = list((out / "obj").rglob("*.obj"))
    assert [p.name for p in objs] == ["ashtray0_template0.obj"]
    import trimesh

    assert trimesh.load(objs[0], process=False).is_watertight


def test_preview_sheets_show_red_anomalies(built, tmp_path):
    out, _ = built
    paths = preview_point_dataset(out, tmp_path / "pv", ["eraser0"], per_class=3, seed=0)
    assert paths == [tmp_path / "pv" / "eraser0.png"]
    img = np.asarray(Image.open(paths[0]).convert("RGB")).astype(int)
    assert img.shape[0] > 3 * 240 and img.shape[1] == 4 * 240
    red = (img[..., 0] > 150) & (img[..., 1] < 90) & (img[..., 2] < 90)
    assert red.sum() > 50  # anomalous points drawn red
    shape = (np.abs(img - 255).sum(-1) > 30).mean()
    assert 0.05 < shape < 0.9  # something was drawn, not a blank or solid image


def test_overwrite_starts_clean(tmp_path):
    out = tmp_path / "ow"
    kw = dict(classes="eraser0", train_per_class=1, workers=1)
    build_dataset(out, small_recipe(), test_per_class=3, **kw)
    assert len(list((out / "pcd" / "eraser0" / "test").glob("*.pcd"))) == 3
    res = build_dataset(out, small_recipe(), test_per_class=1, overwrite=True, **kw)
    assert res.reused == 0
    assert len(list((out / "pcd" / "eraser0" / "test").glob("*.pcd"))) == 1  # no stale samples left
    assert validate_dataset(out).ok


def test_build_from_a_folder_of_user_meshes(tmp_path):
    import trimesh

    src = tmp_path / "mine" / "bracket"
    src.mkdir(parents=True)
    part = trimesh.creation.box((1.0, 0.3, 0.2)).union(trimesh.creation.box((0.2, 0.3, 0.8)), engine="manifold")
    part.export(src / "bracket.stl")
    out = tmp_path / "ds"
    r = CliRunner().invoke(cli, ["build-shapenet", "--source", str(tmp_path / "mine"), "--out", str(out),
                                 "--train-per-class", "1", "--test-per-class", "3", "--defects", "bulge,crack",
                                 "--workers", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["shapes"]["kind"] == "folder" and m["classes"]["bracket"]["file"] == "bracket/bracket.stl"
    assert open_dataset(out).classes() == ["bracket"]
    assert validate_dataset(out).ok
