"""`anomalygen zero-shot`: 3DzAL's train-on-one, test-on-every-other square on a tiny rendered root.

Each entry equals the single-task run (`train-detector --train-class A --test-class B`) with the
same settings; a detector that draws pseudo anomalies from task-irrelevant classes gets exactly
the classes neither trained nor tested; bad input is one Error line and exit code 2."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from anomalygen.builds.render import render_mvtec3d
from anomalygen.cli import cli
from anomalygen.detectors import REGISTRY, register
from anomalygen.detectors.base import Detector
from anomalygen.detectors.tasks import plan_tasks
from anomalygen.detectors.zeroshot import zero_shot
from anomalygen.io import open_dataset
from anomalygen.recipes import load_recipe

CLASSES = ["bagel", "carrot", "foam"]
FAST = ["--quiet", "--set", "btf.images.image_size=48", "--set", "btf.images.feature_grid=16",
        "--set", "run.loader_workers=0"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("zs") / "rendered"
    recipe = {**load_recipe("render-mvtec3d"), "size": 40, "defects": ["bulge", "hole"],
              "counts": {"train": 2, "validation": 0, "test_good": 1, "test_per_defect": 1}}
    return render_mvtec3d(out, CLASSES, recipe, seed=0)


class IrrelevantRecorder(Detector):
    """Scores by depth; records the classes of the task-irrelevant samples each fit was handed."""

    name = "irrelevant-recorder"
    kinds = ("images",)
    uses_irrelevant = True
    fits: dict = {}

    def _fit(self, data, options):
        type(self).fits[options.task] = sorted({r.cls for r in options.irrelevant})

    def _score(self, sample):
        z = np.asarray(sample.xyz, np.float64)[..., 2]
        return float(z.max()), z

    def _save_state(self, directory):
        return {}

    def _load_state(self, directory, state):
        pass


@pytest.fixture
def recorder():
    register("irrelevant-recorder", f"{__name__}:IrrelevantRecorder")
    IrrelevantRecorder.fits = {}
    yield IrrelevantRecorder
    REGISTRY.pop("irrelevant-recorder")


def test_square_entries_equal_the_single_task_runs(root, tmp_path):
    out = tmp_path / "zs"
    r = run("zero-shot", "--detectors", "btf", "--data", root, "--out", out, *FAST)
    assert r.exit_code == 0, r.output
    assert "pixel AUPRO (Table 1)" in r.output and "image AUROC (Table 2)" in r.output
    res = json.loads((out / "zero-shot.json").read_text())
    assert res["status"] == "done" and res["classes"] == CLASSES
    for key in ("aupro", "i_auroc"):
        rows = res["matrices"]["btf"][key]["rows"]
        assert list(rows) == CLASSES and all(sorted(rows[a]) == sorted(set(CLASSES) - {a}) for a in CLASSES)
        assert sum(len(v) for v in rows.values()) == 6
    btf = res["matrices"]["btf"]
    # the row mean is the mean of its two entries; the csv holds the same numbers
    assert btf["aupro"]["row_mean"]["foam"] == pytest.approx(np.mean(list(btf["aupro"]["rows"]["foam"].values())))
    assert len((out / "zero-shot.csv").read_text().splitlines()) == 1 + 2 * 3 * 3
    # BTF trains one model per training class and scores both other classes with it
    assert sorted(p.name for p in (out / "btf" / "carrot" / "models").iterdir()) == ["carrot"]
    for a, b in [("bagel", "foam"), ("foam", "carrot")]:
        single = tmp_path / f"{a}-{b}"
        r = run("train-detector", "--detector", "btf", "--data", root, "--train-class", a, "--test-class", b,
                "--out", single, *FAST)
        assert r.exit_code == 0, r.output
        row = json.loads((single / "metrics.json").read_text())["rows"][0]
        assert row["aupro"] == btf["aupro"]["rows"][a][b]
        assert row["i_auroc"] == btf["i_auroc"]["rows"][a][b]
    # the same command again reads the finished square back instead of training
    again = run("zero-shot", "--detectors", "btf", "--data", root, "--out", out, *FAST)
    assert again.exit_code == 0 and json.loads((out / "zero-shot.json").read_text())["matrices"] == res["matrices"]


def test_irrelevant_classes_are_those_neither_trained_nor_tested(root, tmp_path, recorder):
    tasks = plan_tasks(open_dataset(root), train_classes="bagel", test_classes="carrot,foam", irrelevant=True)
    assert [(t.model_key, t.irrelevant) for t in tasks] == [("bagel-for-carrot", ["foam"]),
                                                            ("bagel-for-foam", ["carrot"])]
    assert all(t.irrelevant == [] for t in plan_tasks(open_dataset(root), train_classes="bagel",
                                                      test_classes="carrot,foam"))
    res = zero_shot(["irrelevant-recorder", "btf"], root, tmp_path / "zs", overrides={
        "btf": {"images": {"image_size": 48, "feature_grid": 16}}, "run": {"loader_workers": 0}}, progress=False)
    fits = recorder.fits
    assert len(fits) == 6  # one model per (train, test) pair: its task-irrelevant data depends on both
    for a in CLASSES:
        for b in set(CLASSES) - {a}:
            assert fits[f"{a}-for-{b}"] == sorted(set(CLASSES) - {a, b})
    assert res["gain"]["of"] == "irrelevant-recorder" and res["gain"]["over"] == "btf"
    gain = res["gain"]["aupro"]["mean"]
    m = res["matrices"]
    assert gain == pytest.approx(m["irrelevant-recorder"]["aupro"]["mean"] - m["btf"]["aupro"]["mean"])


@pytest.mark.parametrize("args, message", [
    (["--detectors", "btf", "--classes", "bagel,tyre"], "class 'tyre' is not in"),
    (["--detectors", "btf", "--classes", "bagel"], "at least 2 classes"),
    (["--detectors", "btf,nope"], "unknown detector 'nope'"),
    (["--detectors", "btf,btf"], "detector named twice"),
])
def test_bad_input_is_one_error_line_and_exit_2(root, tmp_path, args, message):
    out = tmp_path / "zs"
    r = CliRunner().invoke(cli, ["zero-shot", "--data", str(root), "--out", str(out), "--quiet", *args])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], r.output
    assert not out.exists()


def test_an_out_folder_of_another_protocol_is_refused(root, tmp_path):
    out = tmp_path / "zs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = CliRunner().invoke(cli, ["zero-shot", "--detectors", "btf", "--data", str(root), "--out", str(out), "--quiet"])
    assert r.exit_code == 2 and "not an empty folder" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
