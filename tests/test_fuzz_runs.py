"""Faults around detector runs and output folders, tried as a user meets them: damaged run files,
budgets / devices / class lists, data a reader must refuse, two writers in one folder, runs killed at
random moments, a full disk, a link to nothing. Each ends in exit code 2 and ONE `Error:` line that
names the file or option and what to do, with no traceback and nothing partial or silently wrong.

A sibling of test_fuzz_cli.py (same helpers); runs are tiny (patchae 2 epochs on 400-point clouds,
32-pixel renders), so the module takes a minute or two.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from test_fuzz_cli import TINY_BUILD, TINY_RENDER, assert_no_partial, assert_user_error, mvtec_tree, run, temp_files

from anomalygen.detectors.toydata import write_toy_point_dataset
from anomalygen.io import mvtec3d
from anomalygen.limits import usable_cpus

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
RECIPE = {
    "run": {"device": "cpu", "threads": 1, "loader_workers": 0, "evaluate": True, "batch_size": 1, "warmup": False},
    "patchae": {"n_points": 128, "patches": 8, "patch_points": 16, "score_patches": 16, "width": 8, "latent": 4,
                "repeat": 4, "train": {"epochs": 2, "batch_size": 8, "lr": 0.003, "seed": 5}},
    "btf": {"points": {"n_points": 256}},
}
TASK = "sphere0"


def cli_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "anomalygen.cli", *map(str, args)]


# ----------------------------------------------------------------------------- shared runs

@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-runs")


@pytest.fixture(scope="module")
def data(work):
    return write_toy_point_dataset(work / "data", shapes=("sphere",), n_train=2, n_good=2, n_anomalous=2, n_points=400)


@pytest.fixture(scope="module")
def recipe(work):
    p = work / "tiny.yaml"
    p.write_text(yaml.safe_dump(RECIPE))
    return p


def train(detector, data, recipe, out, *extra):
    return run("train-detector", "--detector", detector, "--data", data, "--recipe", recipe, "--out", out, "--quiet",
               *extra)


@pytest.fixture(scope="module")
def runs(work, data, recipe):
    """A finished patchae run (model.pt, checkpoints) and a finished btf run (memory_bank.npy)."""
    out = {}
    for det in ("patchae", "btf"):
        out[det] = work / f"run-{det}"
        res = train(det, data, recipe, out[det])
        assert res.exit_code == 0, res.output
    return out


def copy_run(runs, det, tmp_path) -> Path:
    dst = tmp_path / f"copy-{det}"
    shutil.copytree(runs[det], dst)
    return dst


# ----------------------------------------------------------------------------- damaged run files

def _truncate(p: Path):
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])


def _garbage(p: Path):
    p.write_bytes(b"\x00garbage, not what anomalygen wrote\n" * 10)


DAMAGE = [  # (detector, file under models/<task>/ or the run, how)
    ("patchae", "models/sphere0/model.pt", _truncate),
    ("patchae", "models/sphere0/model.pt", _garbage),
    ("btf", "models/sphere0/memory_bank.npy", _truncate),
    ("btf", "models/sphere0/detector.json", lambda p: p.write_text("{not json")),
    ("btf", "models/sphere0/detector.json", lambda p: p.write_text("[1, 2]")),
    ("patchae", "models/sphere0/detector.json", lambda p: p.write_text('{"detector": "patchae"}')),
    ("btf", "models/sphere0/model.pt", None),  # no such file: btf keeps a memory bank; detector.json names it
]


@pytest.mark.parametrize("det,name,how", [d for d in DAMAGE if d[2] is not None],
                         ids=[f"{d}-{n.split('/')[-1]}-{h.__name__}" for d, n, h in DAMAGE if h is not None])
def test_damaged_model_file_is_one_line_naming_it_and_how_to_retrain(det, name, how, tmp_path, runs, data, recipe):
    out = copy_run(runs, det, tmp_path)
    how(out / name)
    line = assert_user_error(run("evaluate", out, "--quiet"), str(out / name), "--resume")
    assert "models/sphere0" in line
    # a resumed training checks the models it keeps before anything runs, with the same words
    assert_user_error(train(det, data, recipe, out, "--resume"), str(out / name))
    # and the advice works: remove that task's model, resume
    shutil.rmtree(out / "models" / TASK)
    res = train(det, data, recipe, out, "--resume")
    assert res.exit_code == 0, res.output
    assert run("evaluate", out, "--quiet").exit_code == 0


@pytest.mark.parametrize("content,why", [("[1, 2, 3]", "JSON list"), ("{\"detector\": 3}", "'detector' is int"),
                                         ("{truncated", "damaged run file")])
def test_damaged_run_json_is_one_line(content, why, tmp_path, runs, data, recipe):
    out = copy_run(runs, "btf", tmp_path)
    (out / "run.json").write_text(content)
    for res in (run("evaluate", out, "--quiet"), train("btf", data, recipe, out, "--resume"),
                run("preview", out, "--out", tmp_path / "p", "--quiet")):
        assert_user_error(res, str(out / "run.json"), why, "--overwrite")
    assert not (tmp_path / "p").exists()


def test_damaged_checkpoint_on_resume_is_one_line_and_the_advice_works(tmp_path, runs, data, recipe):
    out = copy_run(runs, "patchae", tmp_path)
    (out / "models" / TASK / "detector.json").unlink()  # the task's model unsaved: resume reads its checkpoint
    ckpt = out / "models" / TASK / "checkpoints" / "last.ckpt"
    _truncate(ckpt)
    assert_user_error(train("patchae", data, recipe, out, "--resume"), str(ckpt), "--resume")
    shutil.rmtree(out / "models" / TASK)
    assert train("patchae", data, recipe, out, "--resume").exit_code == 0


def test_damaged_loss_curve_read_on_resume_names_it(tmp_path):
    """A fit resumed mid-run first drops the loss rows of epochs its checkpoint lacks: a damaged loss.csv
    there is one named error (DamagedFile, whose line the engine completes with the retrain advice)."""
    from anomalygen.detectors.stored import DamagedFile
    from anomalygen.detectors.training.losscurve import keep_epochs

    csv = tmp_path / "loss.csv"
    csv.write_text("epoch,step,loss\nnot,a,number\n")
    with pytest.raises(DamagedFile, match="loss.csv: damaged loss curve"):
        keep_epochs(csv, 1)


def test_identical_runs_write_identical_model_files(tmp_path, data, recipe):
    """Two processes, same command: every saved model file has the same bytes (run.json and metrics
    hold paths and timings; model.pt once held its temp file's name, which carries the process id)."""
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        subprocess.run(cli_cmd("train-detector", "--detector", "patchae", "--data", data, "--recipe", recipe,
                               "--out", out, "--quiet", "--no-evaluate"), check=True, env=ENV, capture_output=True)
    for name in ("model.pt", "detector.json"):
        assert (outs[0] / "models" / TASK / name).read_bytes() == (outs[1] / "models" / TASK / name).read_bytes(), name


def test_resume_refuses_training_data_that_changed(tmp_path, data, recipe):
    mine = tmp_path / "data"
    shutil.copytree(data, mine)
    out = tmp_path / "run"
    assert train("btf", mine, recipe, out, "--no-evaluate").exit_code == 0
    assert train("btf", mine, recipe, out, "--resume", "--no-evaluate").exit_code == 0  # unchanged: resumes
    template = next((mine / "pcd" / TASK / "train").glob("*.pcd"))
    text = template.read_text().splitlines()
    text[-1] = " ".join(str(float(v) + 0.5) for v in text[-1].split())  # one point moved, same file name
    template.write_text("\n".join(text) + "\n")
    assert_user_error(train("btf", mine, recipe, out, "--resume"), "training data of class sphere0 changed",
                      "--overwrite")


# ----------------------------------------------------------------------------- budgets, devices, class lists

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1"])
def test_max_minutes_must_be_finite_and_positive_in_every_command(value, tmp_path, data, recipe):
    for args in (["train-detector", "--detector", "patchae", "--data", data, "--recipe", recipe],
                 ["pretrain-detector", "--detector", "imrnet", "--recipe", "imrnet-tiny"]):
        out = tmp_path / args[0]
        assert_user_error(run(*args, "--out", out, "--max-minutes", value, "--quiet"), "--max-minutes", value)
        assert not out.exists()


@pytest.mark.parametrize("det", ["patchae", "btf"])
def test_devices_beyond_the_machine_are_refused_before_anything_starts(det, tmp_path, data, recipe):
    out = tmp_path / "r"
    n = usable_cpus() + 1
    assert_user_error(train(det, data, recipe, out, "--devices", n), f"--devices {n}", f"{usable_cpus()} CPU cores")
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["train-detector", "--detector", "btf", "--data", "{data}", "--classes", "sphere0,sphere0"],
    ["train-detector", "--detector", "btf", "--data", "{data}", "--train-class", "sphere0,sphere0",
     "--test-class", "sphere0"],
    ["build-shapenet", "--classes", "bowl0,bowl0", "--test-per-class", "1"],
    ["render-mvtec3d", "--classes", "bagel,tire,bagel"],
    ["depth-defects", "--classes", "bagel, bagel"],
    ["preview", "{data}", "--classes", "sphere0,sphere0"],
    ["zero-shot", "--detectors", "btf", "--data", "{data}", "--classes", "a,b,a"],
    ["pseudo-anomalies", "--class", "tire", "--irrelevant", "bagel,bagel"],
], ids=lambda a: a[0] + (" " + a[-1] if "train-class" in a else ""))
def test_a_class_named_twice_is_refused_by_every_command(args, tmp_path, data):
    out = tmp_path / "out"
    args = [str(data) if a == "{data}" else a for a in args]
    assert_user_error(run(*args, "--out", out), "given more than once")
    assert not out.exists()


# ----------------------------------------------------------------------------- data a reader must refuse

def _mvtec_with_defect(root: Path) -> Path:
    tree = mvtec_tree(root)
    ref = next(r for r in mvtec3d.MVTec3DDataset(tree).samples("bagel", "train"))
    s = ref.load()
    s.split, s.defect, s.name = "test", "crack", "000"
    s.mask = np.zeros(s.mask.shape, np.uint8)
    s.mask[10:14, 10:14] = 1
    mvtec3d.write_sample(tree, s)
    return tree


@pytest.mark.parametrize("how,needle", [
    ("gt-folder-missing", "without its gt mask"),
    ("gt-folder-empty", "without its gt mask"),
    ("gt-all-zero", "empty gt mask"),
    ("xyz-uint16-mm", "uint16"),
    ("xyz-float-mm", "millimetres"),
])
def test_every_reader_and_validate_refuse_the_same_bad_mvtec_data(how, needle, tmp_path):
    """Scored with empty masks, or trained on millimetres read as metres, a run would be silently wrong."""
    tree = _mvtec_with_defect(tmp_path / "tree")
    gt = tree / "bagel" / "test" / "crack" / "gt"
    if how == "gt-folder-missing":
        shutil.rmtree(gt)
    elif how == "gt-folder-empty":
        for p in gt.iterdir():
            p.unlink()
    elif how == "gt-all-zero":
        from PIL import Image
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(gt / "000.png")
    else:
        target = tree / "bagel" / "train" / "good" / "xyz" / "000.tiff"
        mm = tifffile.imread(target) * 1000
        tifffile.imwrite(target, mm.astype(np.uint16) if how == "xyz-uint16-mm" else mm, photometric="rgb")
    out = tmp_path / "run"
    assert_user_error(run("train-detector", "--detector", "nearest", "--data", tree, "--out", out, "--quiet"), needle)
    assert not (out / "metrics.json").exists()
    if how != "gt-all-zero":  # known before training (a missing file) or while reading the training data
        assert not out.exists()
    res = run("validate", tree, "--quiet")
    assert res.exit_code == 2 and needle in res.output, res.output


def test_depth_defects_skips_a_millimetre_tiff_by_name(tmp_path):
    tree = mvtec_tree(tmp_path / "tree", n_train=3)
    target = tree / "bagel" / "train" / "good" / "xyz" / "001.tiff"
    tifffile.imwrite(target, (tifffile.imread(target) * 1000).astype(np.uint16), photometric="rgb")
    out = tmp_path / "out"
    res = run("depth-defects", "--input", f"mvtec3d={tree}", "--per-image", "1", "--size", "0", "--out", out)
    assert res.exit_code == 0, res.output
    assert "001.tiff" in res.output and "uint16" in res.output
    for p in out.glob("*/*/*/xyz/*.tiff"):
        assert float(np.abs(tifffile.imread(p)).max()) < 10  # nothing in millimetres was written


# ----------------------------------------------------------------------------- one writer per folder

HOLDER = ("import sys, time\nfrom anomalygen.io.lock import lock_folder\nlock_folder(sys.argv[1])\n"
          "print('held', flush=True)\ntime.sleep(600)\n")


def hold(folder: Path) -> subprocess.Popen:
    """A process holding the lock on `folder` (what a running command does)."""
    folder.mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def _writer(cmd: str, out: Path, data: Path, recipe: Path, tree: Path, run_dir: Path) -> list:
    return {
        "build-shapenet": ["build-shapenet", *TINY_BUILD, "--out", out],
        "render-mvtec3d": ["render-mvtec3d", *TINY_RENDER, "--out", out],
        "depth-defects": ["depth-defects", "--input", f"mvtec3d={tree}", "--per-image", "1", "--size", "0", "--out", out],
        "pseudo-anomalies": ["pseudo-anomalies", "--input", f"mvtec3d={tree}", "--class", "bagel", "--kinds", "removing",
                             "--size", "32", "--points", "8", "--patches", "2", "--out", out],
        "preview": ["preview", data, "--out", out, "--quiet"],
        "train-detector": ["train-detector", "--detector", "btf", "--data", data, "--recipe", recipe, "--out", out,
                           "--quiet"],
        "evaluate --out": ["evaluate", run_dir, "--out", out, "--quiet"],
        "pretrain-detector": ["pretrain-detector", "--detector", "imrnet", "--recipe", "imrnet-tiny", "--out", out,
                              "--quiet"],
        "zero-shot": ["zero-shot", "--detectors", "btf", "--data", tree, "--classes", "bagel,tire", "--out", out],
    }[cmd]


WRITING = ["build-shapenet", "render-mvtec3d", "depth-defects", "pseudo-anomalies", "preview", "train-detector",
           "evaluate --out", "pretrain-detector", "zero-shot"]


@pytest.mark.parametrize("cmd", WRITING)
def test_a_second_writer_is_one_line_naming_the_first_and_a_killed_ones_lock_is_taken_over(cmd, tmp_path, data, recipe,
                                                                                          runs):
    tree = mvtec_tree(tmp_path / "tree")
    shutil.copytree(tree / "bagel", tree / "tire")  # zero-shot needs two classes
    out = tmp_path / "out"
    holder = hold(out)
    try:
        res = run(*_writer(cmd, out, data, recipe, tree, runs["btf"]))
        assert_user_error(res, str(out), f"process {holder.pid}", "is being written by")
        assert sorted(out.iterdir()) == []  # the first writer's folder is untouched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    if cmd in ("build-shapenet", "preview", "evaluate --out", "pseudo-anomalies"):  # the stale lock goes with its holder
        res = run(*_writer(cmd, out, data, recipe, tree, runs["btf"]))
        assert res.exit_code == 0, res.output


def test_evaluate_refuses_a_run_being_trained(tmp_path, runs):
    out = copy_run(runs, "btf", tmp_path)
    holder = hold(out)
    try:
        assert_user_error(run("evaluate", out, "--quiet"), f"run folder {out} is being written by process {holder.pid}")
    finally:
        holder.kill()
        holder.wait()


def test_two_builds_started_at_once_into_one_folder(tmp_path):
    """The one that claims the folder second stops with one line naming the first (which deleted the
    other's temp files before there was a lock); the first finishes whole."""
    out = tmp_path / "out"
    args = cli_cmd("build-shapenet", "--classes", "bowl0", "--train-per-class", "1", "--test-per-class", "10",
                   "--workers", "1", "--set", "dataset.points=[400,700]", "--quiet", "--out", out)
    procs = [subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    codes = [p.wait(timeout=600) for p in procs]
    errors = [p.stderr.read() for p in procs]
    assert sorted(codes) == [0, 2], (codes, errors)
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    lines = errors[loser].strip().splitlines()
    assert len(lines) == 1 and f"is being written by process {procs[winner].pid}" in lines[0], errors[loser]
    assert "Traceback" not in errors[loser]
    assert_no_partial(out)
    res = run("validate", out, "--quiet")
    assert res.exit_code == 0, res.output


# ----------------------------------------------------------------------------- killed at random moments

@pytest.mark.parametrize("cmd", ["render-mvtec3d", "pseudo-anomalies", "train-detector"])
def test_killed_at_random_moments_then_run_again_gives_the_uninterrupted_result(cmd, tmp_path, data, recipe):
    """SIGKILL the command at seeded random moments; the same command then finishes to what an
    uninterrupted run writes, with no temp file and no partial sample left."""
    tree = mvtec_tree(tmp_path / "tree")
    ref, out = tmp_path / "ref", tmp_path / "killed"

    def args(o):
        a = _writer(cmd, o, data, recipe, tree, None)
        return a + (["--resume"] if cmd == "train-detector" and (o / "run.json").is_file() else [])

    assert subprocess.run(cli_cmd(*args(ref)), env=ENV, capture_output=True).returncode == 0
    for wait in np.random.default_rng(27).uniform(1.0, 8.0, 2):
        p = subprocess.Popen(cli_cmd(*args(out)), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        time.sleep(wait)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        assert_whole_samples(out)
    if cmd == "train-detector" and out.exists() and not (out / "run.json").is_file():
        shutil.rmtree(out)  # killed before its run.json: nothing to resume, start again
    res = subprocess.run(cli_cmd(*args(out)), env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert temp_files(out) == []
    if cmd == "render-mvtec3d":
        for a in sorted(p for p in ref.rglob("*") if p.is_file() and ".anomalygen" not in p.parts):
            assert (out / a.relative_to(ref)).read_bytes() == a.read_bytes(), a
    elif cmd == "pseudo-anomalies":
        for name in ("patches.npz", "interest.npz"):
            a, b = np.load(ref / name), np.load(out / name)
            assert all(np.array_equal(a[k], b[k]) for k in a.files), name
    else:
        for name in ("memory_bank.npy", "detector.json"):
            assert (out / "models" / TASK / name).read_bytes() == (ref / "models" / TASK / name).read_bytes()


def assert_whole_samples(out: Path) -> None:
    """What a reader sees after a kill: no sample without its partner files (temp files of the killed
    run may wait in .anomalygen/tmp for the next run to remove)."""
    for xyz in out.glob("*/*/*/xyz/*.tiff"):
        d = xyz.parents[1]
        assert (d / "rgb" / f"{xyz.stem}.png").is_file(), xyz
        assert xyz.parents[2].name != "test" or d.name == "good" or (d / "gt" / f"{xyz.stem}.png").is_file(), xyz
    if (out / "manifest.json").is_file() and (out / "patches.npz").exists():
        np.load(out / "patches.npz")["points"]  # a pseudo-anomalies output with its manifest is whole


# ----------------------------------------------------------------------------- disk full, links to nothing

def test_a_full_disk_reads_disk_full_where_numpy_writes(tmp_path, data, recipe):
    """A real short write: the memory bank (np.save) outgrows a file-size limit mid-file. numpy reports
    only 'N requested and M written'; the line says what that means."""
    out = tmp_path / "run"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    res = subprocess.run(cli_cmd("train-detector", "--detector", "btf", "--data", data, "--recipe", recipe,
                                 "--set", "btf.points.n_points=2048", "--out", out, "--quiet"),
                         env={**ENV, "PYTHONDONTWRITEBYTECODE": "1"}, preexec_fn=limit, capture_output=True, text=True)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr[-2000:]
    assert "memory_bank.npy" in lines[0] and "disk full" in lines[0] and "requested" not in lines[0], lines[0]
    assert not out.exists()  # a failed run leaves no half-written run folder


@pytest.mark.parametrize("cmd", ["build-shapenet", "render-mvtec3d", "pseudo-anomalies", "preview", "train-detector",
                                 "pretrain-detector"])
def test_out_is_a_link_to_nothing(cmd, tmp_path, data, recipe, runs):
    tree = mvtec_tree(tmp_path / "tree")
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone" / "away")
    res = run(*_writer(cmd, link, data, recipe, tree, runs["btf"]))
    line = assert_user_error(res, str(link), "symbolic link", str(tmp_path / "gone" / "away"), "does not exist")
    assert "is a file" not in line
    assert not (tmp_path / "gone").exists()


# ----------------------------------------------------------------------------- pseudo-anomalies' output folder

def test_pseudo_anomalies_follows_the_output_folder_rule(tmp_path):
    tree = mvtec_tree(tmp_path / "tree")
    out = tmp_path / "out"
    args = _writer("pseudo-anomalies", out, None, None, tree, None)
    res = run(*args)
    assert res.exit_code == 0, res.output
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # as every other command's output folder
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~umask for p in out.iterdir() if p.is_file())
    first = np.load(out / "patches.npz")["points"]
    assert run(*args).exit_code == 0  # its own earlier output: written again, the same patches
    assert np.array_equal(np.load(out / "patches.npz")["points"], first) and temp_files(out) == []
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert_user_error(run(*_writer("pseudo-anomalies", foreign, None, None, tree, None)), "--overwrite")
    res = run(*_writer("pseudo-anomalies", foreign, None, None, tree, None), "--overwrite")
    assert res.exit_code == 0, res.output
    assert (foreign / "notes.txt").read_text() == "mine" and (foreign / "manifest.json").is_file()
    assert_user_error(run(*_writer("pseudo-anomalies", tree, None, None, tree, None)), "--overwrite")


# ----------------------------------------------------------------------------- data-parallel processes

def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(usable_cpus() < 2, reason="needs 2 CPU cores for --devices 2")
def test_training_processes_end_with_a_killed_parent(tmp_path, data):
    """SIGKILL cannot be caught: the processes that --devices 2 starts must not live on without it."""
    recipe = tmp_path / "long.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "patchae": {**RECIPE["patchae"], "train": {
        **RECIPE["patchae"]["train"], "epochs": 400}}}))
    parent = subprocess.Popen(cli_cmd("train-detector", "--detector", "patchae", "--data", data, "--recipe", recipe,
                                      "--out", tmp_path / "run", "--devices", "2", "--quiet"), env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(ranks := [p for p in _children(parent.pid) if "spawn_main" in _cmdline(p)]) < 2:
            assert parent.poll() is None and time.monotonic() < deadline, "no training processes started"
            time.sleep(0.05)
        parent.kill()  # while they start up, the moment a run on a busy machine is most often given up
        parent.wait()
        deadline = time.monotonic() + 150  # a rank still importing torch on a busy machine ends once it can
        while any(_alive(p) for p in ranks) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in ranks), [p for p in ranks if _alive(p)]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
