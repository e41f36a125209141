"""The shared training loop through the command a user runs: `anomalygen train-detector` with a
neural detector (patchae), killed and resumed, and stopped by its time budget."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from training_fixtures import kill_when_written

from anomalygen.detectors.toydata import write_toy_point_dataset

# small enough for seconds on 2 cores, long enough (20 epochs) that a kill lands mid-run
RECIPE = {
    "run": {"device": "cpu", "threads": 1, "loader_workers": 0, "evaluate": True, "batch_size": 1, "warmup": False,
            "save_maps": False},
    "patchae": {"n_points": 128, "patches": 8, "patch_points": 16, "score_patches": 16, "width": 8, "latent": 4,
                "repeat": 4, "train": {"epochs": 20, "batch_size": 8, "lr": 0.003, "seed": 5}},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-train")
    data = write_toy_point_dataset(root / "data", shapes=("sphere",), n_train=2, n_good=2, n_anomalous=2, n_points=400)
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    return root, data, recipe


def _cmd(data, recipe, out, *extra):
    return [sys.executable, "-m", "anomalygen.cli", "train-detector", "--detector", "patchae", "--data", str(data),
            "--recipe", str(recipe), "--out", str(out), "--quiet", *extra]


def _weights(run) -> dict:
    return torch.load(run / "models" / "sphere0" / "model.pt", weights_only=True)


def test_killed_after_epoch_1_and_resumed_gives_the_uninterrupted_weights(setup):
    root, data, recipe = setup
    full = root / "full"
    subprocess.run(_cmd(data, recipe, full), check=True, capture_output=True)

    killed = root / "killed"
    ckpt = killed / "models" / "sphere0" / "checkpoints" / "last.ckpt"
    kill_when_written(_cmd(data, recipe, killed), ckpt)
    run = json.loads((killed / "run.json").read_text())
    assert run["status"] == "training" and not (killed / "models" / "sphere0" / "detector.json").exists()
    done = torch.load(ckpt, weights_only=False)["epoch"]
    assert done < RECIPE["patchae"]["train"]["epochs"] - 1  # killed well before the end

    res = subprocess.run(_cmd(data, recipe, killed, "--resume"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    info = json.loads((killed / "run.json").read_text())["trained"]["sphere0"]
    assert info["resumed_from"] == done + 1 and info["epochs"] == RECIPE["patchae"]["train"]["epochs"]
    assert json.loads((killed / "metrics.json").read_text())["rows"][0]["i_auroc"] == \
        json.loads((full / "metrics.json").read_text())["rows"][0]["i_auroc"]
    assert (killed / "models" / "sphere0" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (killed / "models" / "sphere0" / "loss.csv").read_text() == (full / "models" / "sphere0" / "loss.csv").read_text()


def test_max_minutes_stops_training_saves_and_evaluates(setup):
    root, data, recipe = setup
    out = root / "budget"
    res = subprocess.run(_cmd(data, recipe, out, "--max-minutes", "0.001"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    run = json.loads((out / "run.json").read_text())
    info = run["trained"]["sphere0"]
    assert run["status"] == "trained" and info["stopped"] == "max_minutes"
    assert info["epochs"] < RECIPE["patchae"]["train"]["epochs"]
    assert (out / "models" / "sphere0" / "model.pt").is_file() and (out / "metrics.json").is_file()


def test_sigterm_keeps_the_run_resumable_and_exits_143(setup):
    root, data, recipe = setup
    out = root / "terminated"
    ckpt = out / "models" / "sphere0" / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(_cmd(data, recipe, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert f"terminated (SIGTERM): {out} kept" in err and "--resume" in err
    res = subprocess.run(_cmd(data, recipe, out, "--resume"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    info = json.loads((out / "run.json").read_text())["trained"]["sphere0"]
    assert info["resumed_from"] >= 1 and info["epochs"] == RECIPE["patchae"]["train"]["epochs"]
