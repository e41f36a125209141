"""`anomalygen train-detector`, `evaluate` and `preview RUN` end to end on small written datasets."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from anomalygen.cli import cli
from anomalygen.detectors.reports.preview import image_panels
from anomalygen.detectors.scores import read_scores
from anomalygen.detectors.toydata import write_toy_image_dataset, write_toy_point_dataset
from anomalygen.io import open_dataset

FAST = ["--quiet", "--set", "btf.points.n_points=512", "--set", "btf.images.image_size=48",
        "--set", "btf.images.feature_grid=16"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def pc(tmp_path_factory):
    return write_toy_point_dataset(tmp_path_factory.mktemp("pc"), n_points=1500, n_good=3, n_anomalous=3)


def test_train_then_evaluate_points_writes_run_metrics_and_previews(pc, tmp_path):
    out = tmp_path / "run"
    r = run("train-detector", "--detector", "btf", "--data", pc, "--out", out, "--no-evaluate", *FAST)
    assert r.exit_code == 0, r.output
    runj = json.loads((out / "run.json").read_text())
    assert runj["detector"] == "btf" and [t["name"] for t in runj["tasks"]] == ["sphere0", "torus0"]
    assert runj["config"]["points"]["n_points"] == 512  # --set reached the detector
    assert not (out / "metrics.json").exists()

    r = run("evaluate", out, "--quiet")
    assert r.exit_code == 0, r.output
    # a batched evaluation writes the same metrics (edit the run's recorded settings)
    runj["run"]["batch_size"] = 4
    (out / "run.json").write_text(json.dumps(runj))
    r4 = run("evaluate", out, "--quiet", "--out", tmp_path / "b4")
    assert r4.exit_code == 0, r4.output
    b4 = json.loads((tmp_path / "b4" / "metrics.json").read_text())
    assert "| class | I-AUROC | point AUROC |" in r.output and "| **mean** |" in r.output
    m = json.loads((out / "metrics.json").read_text())
    rows = {row["task"]: row for row in m["rows"]}
    assert set(rows) == {"sphere0", "torus0"}
    assert [r4["i_auroc"] for r4 in b4["rows"]] == pytest.approx([rows[t]["i_auroc"] for t in ("sphere0", "torus0")])
    assert rows["sphere0"]["i_auroc"] >= 0.9  # large bulges on spheres: well above chance
    for row in m["rows"]:
        assert row["samples"] == 6 and row["anomalous"] == 3
        assert row["ms_per_sample"] > 0 and row["peak_rss_mib"] > 50
    assert m["mean"]["i_auroc"] == pytest.approx(np.mean([rows[t]["i_auroc"] for t in rows]))
    table = list(csv.DictReader((out / "metrics.csv").open()))
    assert [t["task"] for t in table] == ["sphere0", "torus0", "mean"]
    assert float(table[0]["point_auroc"]) == pytest.approx(rows["sphere0"]["point_auroc"])
    sc = read_scores(out / "scores" / "sphere0.npz")
    assert len(sc["maps"]) == 6 and all(mp.shape == (1500,) for mp in sc["maps"])

    r = run("preview", out, "--per-class", "2")
    assert r.exit_code == 0, r.output
    pngs = r.stdout.split()  # the PNG paths
    assert f"anomalygen view {out}" in r.stderr  # and where to turn the samples in 3D
    assert len(pngs) == 2 and Image.open(pngs[0]).size[1] > 2 * 192
    sheet = np.asarray(Image.open(pngs[0]).convert("RGB")).astype(int)
    head = 14  # a line naming the sample above each row of panels
    assert sheet.shape == (2 * (head + 192 + 4), 4 * 192, 3)  # 2 samples x (truth, predicted) from two sides
    # first row: an anomalous sphere; truth and prediction show the same points, so the predicted
    # colours where the truth is red must be brighter than on the rest of the object
    truth, pred = sheet[head + 14:head + 192, :192], sheet[head + 14:head + 192, 192:384]
    red = (truth[..., 0] > 100) & (truth[..., 1] < 60) & (truth[..., 2] < 60)
    drawn = np.any(truth != 255, axis=-1)
    assert red.sum() > 50
    assert pred[red].sum(-1).mean() > 1.5 * pred[drawn & ~red].sum(-1).mean()


def test_images_layout_reports_pixel_metrics(tmp_path):
    data = write_toy_image_dataset(tmp_path / "mv", n_train=3, n_good=2, n_anomalous=2, size=40)
    r = run("train-detector", "--detector", "btf", "--data", data, "--out", tmp_path / "run", *FAST)
    assert r.exit_code == 0, r.output
    assert "| class | I-AUROC | P-AUROC | AUPRO@0.3 |" in r.output
    row = json.loads((tmp_path / "run" / "metrics.json").read_text())["rows"][0]
    assert row["aupro"] >= 0.7 and row["p_auroc"] >= 0.8
    r = run("preview", tmp_path / "run", "--per-class", "2")
    assert r.exit_code == 0 and r.stdout.strip().endswith("dome.png")
    assert Image.open(r.stdout.strip()).size == (4 * 192, 2 * (14 + 192 + 4))  # surface, truth, predicted, overlay
    # the predicted panel is bright where the truth mask is
    sc = read_scores(tmp_path / "run" / "scores" / "dome.npz")
    i = sc["defects"].index("bump")
    sample = open_dataset(data).samples("dome", "test")[i].load()
    every = np.concatenate([m.ravel() for m in sc["maps"]])
    panels, titles = image_panels(sample.xyz, sample.mask, sc["maps"][i], every.min(), every.max())
    assert titles[2] == "predicted" and all(p.shape == (192, 192, 3) for p in panels)
    mask = np.asarray(Image.fromarray(sample.mask * 255).resize((192, 192), Image.NEAREST)) > 0
    bright = panels[2].astype(int).sum(-1)
    assert bright[mask].mean() > 2 * bright[~mask].mean()


def test_zero_shot_trains_once_and_tests_each_class(pc, tmp_path):
    out = tmp_path / "zs"
    r = run("train-detector", "--detector", "btf", "--data", pc, "--out", out,
            "--train-class", "sphere0", "--test-class", "torus0,sphere0", *FAST)
    assert r.exit_code == 0, r.output
    runj = json.loads((out / "run.json").read_text())
    assert runj["zero_shot"] and [t["name"] for t in runj["tasks"]] == ["sphere0->torus0", "sphere0->sphere0"]
    assert [p.name for p in (out / "models").iterdir()] == ["sphere0"]
    assert "sphere0->torus0" in r.output


@pytest.mark.parametrize("args, message", [
    (["--detector", "nope"], "unknown detector 'nope'; available: btf"),
    (["--detector", "btf", "--classes", "chair9"], "class 'chair9' is not in"),
    (["--detector", "btf", "--train-class", "sphere0"], "needs both --train-class and --test-class"),
    (["--detector", "btf", "--set", "btf.points.coreset_fraction=0"], "btf.points.coreset_fraction = 0"),
    (["--detector", "btf", "--set", "btf.points.npoints=5"], "unknown setting btf.points.npoints"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(pc, tmp_path, args, message):
    out = tmp_path / "bad"
    r = run("train-detector", "--data", pc, "--out", out, *args)
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_empty_train_split_and_non_run_folders_are_rejected(tmp_path, pc):
    data = write_toy_point_dataset(tmp_path / "d", shapes=("sphere",), n_train=1, n_points=300)
    for f in (data / "pcd" / "sphere0" / "train").iterdir():
        f.unlink()
    r = run("train-detector", "--detector", "btf", "--data", data, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "class 'sphere0': empty train split" in r.output
    r = run("evaluate", pc)
    assert r.exit_code == 2 and "not a detector run" in r.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    r = run("train-detector", "--detector", "btf", "--data", pc, "--out", tmp_path / "full", "--overwrite")
    assert r.exit_code == 2 and "refusing to overwrite" in r.output
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_real3d_layout_runs_end_to_end(real3d_dir, tmp_path):
    # Real3D-AD: space-delimited gt, '<k>_template' train names; the fixture is tiny (200-250 points).
    r = run("train-detector", "--detector", "btf", "--data", real3d_dir, "--out", tmp_path / "r", *FAST)
    assert r.exit_code == 0, r.output
    row = json.loads((tmp_path / "r" / "metrics.json").read_text())["rows"][0]
    assert row["task"] == "duck" and row["samples"] == 2 and row["point_auroc"] is not None
