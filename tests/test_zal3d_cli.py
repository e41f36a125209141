"""3DzAL through the commands a user runs, on a tiny rendered MVTec 3D-AD root of three classes:
`anomalygen pseudo-anomalies` and `anomalygen train-detector --detector zal3d --recipe zal3d-tiny`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from anomalygen.cli import cli
from anomalygen.recipes import load_recipe

pytestmark = pytest.mark.slow


def _run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("zal3d-cli")
    r = load_recipe("render-mvtec3d")
    r.pop("_source")
    r["counts"] = {"train": 2, "validation": 1, "test_good": 1, "test_per_defect": 1}
    r["defects"] = ["bulge", "hole"]
    (base / "render.yaml").write_text(yaml.safe_dump(r))
    res = _run(["render-mvtec3d", "--classes", "bagel,tire,cookie", "--size", "64", "--recipe",
                str(base / "render.yaml"), "--out", str(base / "data")])
    assert res.exit_code == 0, res.output
    return base / "data"


def test_pseudo_anomalies_writes_labeled_patches_and_a_preview(root, tmp_path):
    out = tmp_path / "pseudo"
    res = _run(["pseudo-anomalies", "--input", f"mvtec3d={root}", "--class", "tire", "--size", "64", "--tau", "0.01",
                "--points", "32", "--patches", "10", "--out", str(out)])
    assert res.exit_code == 0, res.output
    z = np.load(out / "patches.npz")
    assert z["points"].shape == (10, 32, 3) and z["labels"].shape == (10, 32)
    assert sorted(z["kind"].tolist()).count("adding") == 5                      # 1:1
    assert all(0 < z["labels"][i].sum() < 32 for i in range(10))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["irrelevant_classes"] == ["bagel", "cookie"]
    interest = np.load(out / "interest.npz")
    assert len(interest["names"]) == 4 and interest["masks"].shape[1:] == (64, 64)
    assert Image.open(out / "preview.png").size[1] == 4 * Image.open(out / "preview.png").size[0] // 3
    # the same seed writes the same patches
    res = _run(["pseudo-anomalies", "--input", f"mvtec3d={root}", "--class", "tire", "--size", "64", "--tau", "0.01",
                "--points", "32", "--patches", "10", "--out", str(tmp_path / "again")])
    assert np.array_equal(np.load(tmp_path / "again" / "patches.npz")["points"], z["points"])


def test_pseudo_anomalies_refuses_bad_input_without_writing(root, tmp_path):
    for args, message in ((["--class", "spaceship"], "not in the input"),
                          (["--irrelevant", "tire", "--class", "tire"], "task-irrelevant class"),
                          (["--points", "2"], "--points must be at least 4")):
        res = CliRunner().invoke(cli, ["pseudo-anomalies", "--input", f"mvtec3d={root}", "--out", str(tmp_path / "x"),
                                       *args])
        assert res.exit_code == 2 and "Error:" in res.output and message in res.output, res.output
        assert not (tmp_path / "x").exists()


def test_zal3d_tiny_trains_on_one_class_and_tests_on_another(root, tmp_path):
    out = tmp_path / "run"
    res = _run(["train-detector", "--detector", "zal3d", "--recipe", "zal3d-tiny", "--data", str(root),
                "--train-class", "bagel", "--test-class", "tire", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["zero_shot"] and run["tasks"][0]["model"] == "models/bagel-for-tire"
    assert run["trained"]["bagel-for-tire"]["branches"] == "FPFH + learned 3D (E_theta)"
    metrics = json.loads((out / "metrics.json").read_text())
    row = metrics["rows"][0]
    assert row["task"] == "bagel->tire" and row["samples"] == 3 and 0 <= row["aupro"] <= 1
    assert "FPFH + learned 3D" in (out / "metrics.md").read_text()
