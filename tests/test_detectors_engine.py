"""The run engine: run.json status, --resume, Ctrl-C, and the options it hands to fit()."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from anomalygen.cli import cli
from anomalygen.detectors import REGISTRY, register
from anomalygen.detectors.base import Detector
from anomalygen.detectors.btf.detector import BTFDetector
from anomalygen.detectors.engine import TrainingInterrupted, evaluate_run, train_detector
from anomalygen.detectors.toydata import write_toy_point_dataset
from anomalygen.errors import AnomalygenError

FAST = ["--quiet", "--set", "btf.points.n_points=256"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


class RecordingDetector(Detector):
    """Scores by distance from the origin; records every fit and can be told to be interrupted."""

    name = "recording"
    kinds = ("points",)
    fits: list = []                 # FitOptions of each fit, in order
    interrupt: set = set()          # model keys whose fit raises KeyboardInterrupt
    checkpoint_first = False        # write workdir/checkpoints/ before being interrupted
    fail: set = set()               # model keys whose fit raises RuntimeError
    interrupt_inside_import: set = set()  # model keys whose fit raises ImportError caused by Ctrl-C

    def _fit(self, data, options):
        type(self).fits.append(options)
        if options.task in self.interrupt:
            if self.checkpoint_first:
                (options.workdir / "checkpoints").mkdir(parents=True)
            raise KeyboardInterrupt
        if options.task in self.interrupt_inside_import:  # what Ctrl-C during `import open3d` raises
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as exc:
                raise ImportError("initialization failed") from exc
        if options.task in self.fail:
            raise RuntimeError("fit failed")
        self.training_info = {"epochs": 2, "budget_stopped": options.max_minutes is not None}

    def _score(self, sample):
        norms = np.linalg.norm(np.asarray(sample.points, np.float64), axis=1)
        return float(norms.max()), norms

    def _save_state(self, directory):
        return {}

    def _load_state(self, directory, state):
        pass


@pytest.fixture
def recording():
    register("recording", f"{__name__}:RecordingDetector")
    RecordingDetector.fits, RecordingDetector.interrupt, RecordingDetector.fail = [], set(), set()
    RecordingDetector.interrupt_inside_import = set()
    RecordingDetector.checkpoint_first = False
    yield RecordingDetector
    REGISTRY.pop("recording")


@pytest.fixture(scope="module")
def pc(tmp_path_factory):
    return write_toy_point_dataset(tmp_path_factory.mktemp("pc"), n_train=2, n_good=2, n_anomalous=2, n_points=300)


def _runj(out):
    return json.loads((out / "run.json").read_text())


def test_run_json_records_status_tasks_and_training_info(pc, tmp_path, recording):
    out = tmp_path / "run"
    r = run("train-detector", "--detector", "recording", "--data", pc, "--out", out, "--quiet",
            "--max-minutes", "1.5", "--devices", "2")
    assert r.exit_code == 0, r.output
    runj = _runj(out)
    assert runj["status"] == "trained" and runj["detector"] == "recording"
    assert runj["fit"] == {"max_minutes": 1.5, "devices": 2}
    assert runj["trained"]["sphere0"] == {"train_samples": 2, "epochs": 2, "budget_stopped": True}
    opts = {o.task: o for o in recording.fits}
    assert set(opts) == {"sphere0", "torus0"}
    o = opts["torus0"]
    assert (o.workdir, o.resume, o.max_minutes, o.devices, o.progress) == (out / "models" / "torus0", False, 1.5, 2, False)
    assert o.loader_workers == 2  # the recipe's run.loader_workers
    # without --quiet the detector is asked for progress bars
    train_detector("recording", pc, tmp_path / "loud", evaluate=False)
    assert recording.fits[-1].progress is True


def test_ctrl_c_before_anything_is_saved_keeps_nothing(pc, tmp_path, recording):
    recording.interrupt = {"sphere0"}
    out = tmp_path / "run"
    r = run("train-detector", "--detector", "recording", "--data", pc, "--out", out, "--quiet")
    assert r.exit_code == 130
    assert len(r.output.strip().splitlines()) == 1 and "removed" in r.output and "--resume" not in r.output
    assert not out.exists()
    # a folder that existed empty is left empty, not removed
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingInterrupted, match="empty emptied") as info:
        train_detector("recording", pc, tmp_path / "empty", progress=False)
    assert not info.value.resumable and list((tmp_path / "empty").iterdir()) == []
    # Ctrl-C that a library re-raised as its own error is still an interruption
    recording.interrupt, recording.interrupt_inside_import = set(), {"torus0"}
    r = run("train-detector", "--detector", "recording", "--data", pc, "--out", out, "--quiet")
    assert r.exit_code == 130 and "--resume" in r.output and (out / "models" / "sphere0" / "detector.json").is_file()


def test_ctrl_c_after_a_saved_model_keeps_the_run_and_resume_finishes_it(pc, tmp_path, recording):
    recording.interrupt = {"torus0"}
    out = tmp_path / "run"
    r = run("train-detector", "--detector", "recording", "--data", pc, "--out", out, "--quiet")
    assert r.exit_code == 130
    assert len(r.output.strip().splitlines()) == 1 and "run the same command with --resume" in r.output
    runj = _runj(out)
    assert runj["status"] == "training" and list(runj["trained"]) == ["sphere0"]
    assert (out / "models" / "sphere0" / "detector.json").is_file()
    r = run("evaluate", out, "--quiet")
    assert r.exit_code == 2 and "training did not finish" in r.output

    recording.interrupt, recording.fits = set(), []
    r = run("train-detector", "--detector", "recording", "--data", pc, "--out", out, "--quiet", "--resume")
    assert r.exit_code == 0, r.output
    assert [(o.task, o.resume) for o in recording.fits] == [("torus0", True)]  # sphere0 was saved: skipped
    runj = _runj(out)
    assert runj["status"] == "trained" and set(runj["trained"]) == {"sphere0", "torus0"}
    assert runj["trained"]["sphere0"]["epochs"] == 2  # kept from the interrupted run
    assert (out / "metrics.json").is_file()


def test_ctrl_c_with_a_checkpoint_keeps_the_run(pc, tmp_path, recording):
    recording.interrupt, recording.checkpoint_first = {"sphere0"}, True
    with pytest.raises(TrainingInterrupted, match="--resume") as info:
        train_detector("recording", pc, tmp_path / "run", progress=False)
    assert info.value.resumable and (tmp_path / "run" / "models" / "sphere0" / "checkpoints").is_dir()


def test_a_failed_fit_removes_the_run_it_created(pc, tmp_path, recording):
    recording.fail = {"torus0"}  # after sphere0 was saved: still no half-trained run left
    with pytest.raises(RuntimeError, match="fit failed"):
        train_detector("recording", pc, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_resume_refuses_what_it_cannot_continue(pc, tmp_path, recording):
    out = tmp_path / "run"
    assert run("train-detector", "--detector", "btf", "--data", pc, "--out", out, "--no-evaluate", *FAST).exit_code == 0
    other = write_toy_point_dataset(tmp_path / "other", n_train=2, n_good=1, n_anomalous=1, n_points=300)
    cases = [
        (["--detector", "recording", "--data", pc], "it is a run of detector 'btf', not 'recording'"),
        (["--detector", "btf", "--data", pc, "--set", "btf.points.n_points=128"],
         "it was trained with other settings (btf.points.n_points: 256 in the run, 128 now)"),
        (["--detector", "btf", "--data", other], f"it is a run of data '{pc.resolve()}'"),
        (["--detector", "btf", "--data", pc, "--classes", "sphere0"], "it trains other classes (sphere0, torus0)"),
        (["--detector", "btf", "--data", pc, "--overwrite"], "--resume continues a run and --overwrite replaces it"),
    ]
    for args, message in cases:
        r = run("train-detector", "--out", out, "--resume", *FAST, *args)
        assert r.exit_code == 2 and message in r.output, (args, r.output)
        assert len(r.output.strip().splitlines()) == 1
    assert recording.fits == []
    for missing in (tmp_path / "nowhere", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        r = run("train-detector", "--detector", "btf", "--data", pc, "--out", missing, "--resume", *FAST)
        assert r.exit_code == 2 and "nothing to resume" in r.output, r.output
    assert not (tmp_path / "nowhere").exists()
    r = run("train-detector", "--detector", "btf", "--data", pc, "--out", out, *FAST)
    assert r.exit_code == 2 and "pass --overwrite (or --resume to continue it)" in r.output
    r = run("train-detector", "--detector", "btf", "--data", pc, "--out", tmp_path / "x", "--devices", "0", *FAST)
    assert r.exit_code == 2 and "--devices must be a positive integer, got 0" in r.output
    r = run("train-detector", "--detector", "btf", "--data", pc, "--out", tmp_path / "x", "--max-minutes", "0", *FAST)
    assert r.exit_code == 2 and "--max-minutes must be a positive number of minutes, got 0.0" in r.output
    assert not (tmp_path / "x").exists()


def test_resuming_a_finished_btf_run_skips_training_and_evaluates(pc, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert run("train-detector", "--detector", "btf", "--data", pc, "--out", out, "--no-evaluate", *FAST).exit_code == 0
    bank = out / "models" / "sphere0" / "memory_bank.npy"
    stamp = os.stat(bank).st_mtime_ns

    def no_fit(self, data, options):
        raise AssertionError("a saved model was trained again")

    monkeypatch.setattr(BTFDetector, "_fit", no_fit)
    r = run("train-detector", "--detector", "btf", "--data", pc, "--out", out, "--resume", *FAST)
    assert r.exit_code == 0, r.output
    assert "| class | I-AUROC | point AUROC |" in r.output
    assert os.stat(bank).st_mtime_ns == stamp
    runj = _runj(out)
    assert runj["status"] == "trained" and runj["trained"]["torus0"] == {"train_samples": 2}
    assert json.loads((out / "metrics.json").read_text())["rows"][0]["i_auroc"] is not None
    assert (out / "scores" / "torus0.npz").is_file()


def test_version_1_runs_without_a_status_still_evaluate(pc, tmp_path, recording):
    out = tmp_path / "run"
    train_detector("recording", pc, out, evaluate=False, progress=False)
    old = _runj(out)
    del old["status"], old["fit"]
    old["version"] = 1
    (out / "run.json").write_text(json.dumps(old))
    assert evaluate_run(out, progress=False)["mean"]["samples"] == 8
    with pytest.raises(AnomalygenError, match="not a detector run"):
        evaluate_run(tmp_path, progress=False)
