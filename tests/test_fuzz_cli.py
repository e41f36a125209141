"""Bad input and faults, through the CLI in-process, for every command.

A user mistake or a file-system fault must end in exit code 2 and ONE line starting
with `Error:` that names the offending path or key, with no traceback, no library
internals, and an output folder that holds no partial sample and no temp file. Inputs
that would silently give a wrong dataset are refused or repaired (and the repair recorded).

Builds here are tiny (one class, a few hundred points, 32-pixel images) and shared
through module fixtures, so the module runs in a minute or two.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from anomalygen.cli import cli
from anomalygen.io import ImageSample, mvtec3d, read_pcd
from anomalygen.io import atomic as atomic_mod
from anomalygen.recipes import load_recipe

ROOT = Path(__file__).resolve().parents[1]
TINY_BUILD = ["--classes", "bowl0", "--train-per-class", "1", "--test-per-class", "2", "--workers", "1",
              "--set", "dataset.points=[400,700]", "--quiet"]
TINY_RENDER = ["--classes", "bagel", "--size", "32", "--set", "counts.train=2", "--set", "counts.validation=0",
               "--set", "counts.test_good=0", "--set", "counts.test_per_defect=1", "--set", "defects=[bulge]"]
TINY_DEPTH = ["--per-image", "1", "--size", "0"]
LEAKS = ("Traceback", "<class '", "usecols", "Errno", "site-packages")


# ----------------------------------------------------------------------------- helpers

def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def error_lines(res) -> list[str]:
    return [line for line in res.output.splitlines() if line.startswith("Error:")]


def temp_files(out: Path) -> list[Path]:
    """Temp files anywhere under `out`: in .anomalygen/tmp or named like a writer's temp."""
    if not out.exists():
        return []
    return [p for p in out.rglob("*") if p.is_file() and (
        ".anomalygen/tmp" in p.as_posix() or re.search(r"\.tmp(\.|$)", p.name) or p.suffix == ".part")]


def sample_files(out: Path) -> list[Path]:
    if not out.exists():
        return []
    return [p for p in out.rglob("*") if p.is_file() and p.suffix in (".pcd", ".txt", ".tiff", ".png", ".obj")
            and ".anomalygen" not in p.parts]


def assert_no_partial(out: Path) -> None:
    """No temp file; every sample present is whole (pcd with its GT; xyz with its rgb/gt) and readable."""
    assert temp_files(out) == [], temp_files(out)
    for pcd in out.glob("pcd/*/test/*.pcd"):
        gt = pcd.parents[1] / "GT" / f"{pcd.stem}.txt"
        assert pcd.stem.endswith("_positive") or gt.is_file(), f"{pcd} has no GT"
        read_pcd(pcd)
    for gt in out.glob("pcd/*/GT/*.txt"):
        assert (gt.parents[1] / "test" / f"{gt.stem}.pcd").is_file(), f"{gt} has no pcd"
    for xyz in out.glob("*/*/*/xyz/*.tiff"):
        d = xyz.parents[1]
        if (d / "rgb").is_dir():
            assert (d / "rgb" / f"{xyz.stem}.png").is_file(), f"{xyz} has no rgb"
        if xyz.parents[2].name == "test" and d.name != "good":
            assert (d / "gt" / f"{xyz.stem}.png").is_file(), f"{xyz} has no gt"
    for png in out.glob("*/*/*/rgb/*.png"):
        assert (png.parents[1] / "xyz" / f"{png.stem}.tiff").is_file(), f"{png} has no xyz"


def assert_user_error(res, *needles, out: Path | None = None, nothing_written: bool = False) -> str:
    """Exit 2, one `Error:` line holding every needle, no traceback or library internals, and (with
    `out`) no partial sample and no temp file there. Returns the error line."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = error_lines(res)
    assert len(lines) == 1, res.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    for leak in LEAKS:
        assert leak not in res.output, (leak, res.output)
    if out is not None:
        assert_no_partial(out)
        if nothing_written:
            assert sample_files(out) == [], sample_files(out)
    return lines[0]


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def mvtec_tree(root: Path, hw=(40, 40), n_train=2) -> Path:
    """A small MVTec 3D-AD tree: a dome on a plane, as a scanner gives it."""
    rng = np.random.default_rng(0)
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for split, defect, n in (("train", "good", n_train), ("validation", "good", 1), ("test", "good", 1)):
        for i in range(n):
            r2 = ((yy - h / 2 - i) ** 2 + (xx - w / 2) ** 2) / (0.3 * h) ** 2
            z = 0.5 - 0.03 * np.sqrt(np.clip(1 - r2, 0, 1)) + 0.0002 * xx
            xyz = np.stack([(xx - w / 2) * z / 100, (yy - h / 2) * z / 100, z], -1).astype(np.float32)
            rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            mvtec3d.write_sample(root, ImageSample(xyz, rgb, np.zeros((h, w), np.uint8), "bagel", split, defect,
                                                   mvtec3d.sample_name(i)))
    return root


def fail_commit(monkeypatch, code: int, when=lambda path: True, after: int = 0):
    """Make the atomic writers' final rename fail with OSError(code) for matching paths, after
    `after` matching writes succeeded (a fault in the middle of a run)."""
    real = atomic_mod._commit
    seen = {"n": 0}

    def commit(tmp, path):
        if when(Path(path)):
            seen["n"] += 1
            if seen["n"] > after:
                raise OSError(code, os.strerror(code), str(tmp))
        return real(tmp, path)
    monkeypatch.setattr(atomic_mod, "_commit", commit)


# ----------------------------------------------------------------------------- shared data

@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def built(work):
    out = work / "built"
    res = run("build-shapenet", *TINY_BUILD, "--out", out)
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def rendered(work):
    out = work / "rendered"
    res = run("render-mvtec3d", *TINY_RENDER, "--out", out)
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def tree(work):
    return mvtec_tree(work / "tree")


# ----------------------------------------------------------------------------- recipe values, checked before writing

def _swapped(key):
    node = load_recipe("anomaly-shapenet")
    for part in key.split("."):
        node = node[part]
    return f"{key}=[{node[1]},{node[0]}]"


SWAPPED = ["defects.bulge.height", "defects.concavity.depth", "defects.hole.depth", "defects.break.roughness",
           "defects.bending.angle_deg", "defects.bending.transition", "defects.crack.width", "defects.crack.depth",
           "defects.scratch.width", "defects.scratch.strokes", "labels.anomaly_ratio", "dataset.points",
           "defects.hole.target_ratio"]

SHAPENET_SETS = [
    # negative or zero ratios and sizes
    ("defects.bulge.target_ratio=[-0.02,0.07]", "defects.bulge.target_ratio"),
    ("defects.crack.target_ratio=[0,0.04]", "defects.crack.target_ratio"),
    ("defects.concavity.target_ratio=0.05", "expected a range"),
    ("defects.crack.depth=[-0.1,0.2]", "negative"),
    ("defects.bulge.height=[-0.06,-0.02]", "defects.bulge.height"),
    # unknown keys, with the closest known one named
    ("dataset.point=[1,2]", "dataset.points"),
    ("labels.taus=0.1", "labels.tau"),
    ("defects.bulge.heigth=[0.1,0.2]", "defects.bulge.height"),
    ("defects.bulgee.height=[0.1,0.2]", "defects.bulge"),
    ("sed=3", "seed"),
    ("shapes.voxel=0.1", "shapes.voxel_pitch"),
    ("labels.anomaly_ratios=[0.1,0.2]", "labels.anomaly_ratio"),
    # wrong kinds, said in words
    ("labels.tau=abc", "labels.tau"),
    ("dataset.points=many", "dataset.points"),
    ("dataset.pcd_binary=maybe", "dataset.pcd_binary"),
    ("dataset.write_meshes=3", "dataset.write_meshes"),
    ("shapes.max_edge=[1,2]", "shapes.max_edge"),
    ("workers=two", "workers"),
    ("dataset.defects=bulge", "dataset.defects"),
    ("defects.bulge=3", "defects.bulge"),
    ("dataset.train_per_class=1.5", "dataset.train_per_class"),
    ("labels.max_retries=2.5", "labels.max_retries"),
    ("dataset.points=[1.5,3000]", "dataset.points"),
    ("dataset.classes=[]", "dataset.classes"),
    # out of range
    ("labels.tau=0", "labels.tau"),
    ("labels.tau=1.5", "labels.tau"),
    ("labels.anomaly_ratio=[0.5,2]", "labels.anomaly_ratio"),
    ("labels.max_retries=-1", "labels.max_retries"),
    ("labels.accept_factor=0.5", "labels.accept_factor"),
    ("seed=-1", "seed"),
    ("dataset.normal_test_fraction=1.5", "dataset.normal_test_fraction"),
    ("dataset.points=[0,10]", "dataset.points"),
    ("workers=0", "workers"),
    ("defects.hole.segments=2", "defects.hole.segments"),
    ("shapes.max_edge=0", "shapes.max_edge"),
    ("labels.tau=.nan", "labels.tau"),
    ("labels.rim_distance=.inf", "labels.rim_distance"),
    ("dataset.classes=0", "dataset.classes"),
] + [(_swapped(k), k) for k in SWAPPED]


@pytest.mark.parametrize("setting,needle", SHAPENET_SETS, ids=[s for s, _ in SHAPENET_SETS])
def test_build_shapenet_recipe_values_are_checked_before_writing(setting, needle, tmp_path):
    out = tmp_path / "out"
    res = run("build-shapenet", *TINY_BUILD, "--set", setting, "--out", out)
    assert_user_error(res, needle, out=out, nothing_written=True)
    assert not out.exists()


@pytest.mark.parametrize("setting,needle", [
    ("depth.nosuch=3", "depth.nosuch"), ("perlin.t_p=2", "perlin.t_p"), ("kernel.sigma=[6,2]", "kernel.sigma"),
    ("depth.p_z=[-0.1,0.05]", "depth.p_z"), ("rgb.beta=[0.9,0.1]", "rgb.beta"),
    ("render.counts.trian=3", "render.counts.train"), ("render.size=3", "render.size"), ("seed=-5", "seed"),
    ("per_image=0", "per_image"), ("size=big", "size"), ("dropout.p_d=1.5", "dropout.p_d"),
    ("foreground.ransac_iterations=-1", "foreground.ransac_iterations"), ("depth.anomaly_ratio=[0.4,0.1]", "depth.anomaly_ratio"),
    ("kernel.alpha=[-20,0.5]", "kernel.alpha"), ("perlin.octaves=0", "perlin.octaves"), ("rgb.textures=3", "rgb.textures"),
    ("render=3", "render"), ("perlin=[1,2]", "perlin"),
])
def test_depth_defects_recipe_values_and_unknown_set_keys(setting, needle, tmp_path, tree):
    out = tmp_path / "out"
    res = run("depth-defects", "--input", f"mvtec3d={tree}", *TINY_DEPTH, "--set", setting, "--out", out)
    assert_user_error(res, needle, out=out, nothing_written=True)
    assert not out.exists()


@pytest.mark.parametrize("setting,needle", [
    ("counts.train=0", "counts.train"), ("counts.trian=2", "counts.train"), ("min_gt_pixels=0", "min_gt_pixels"),
    ("object.size=[0.2,0.1]", "object.size"), ("camera.fov_deg=200", "camera.fov_deg"), ("defects=[]", "defects"),
    ("gt_tau=-1", "gt_tau"), ("max_tries=0", "max_tries"), ("camera=3", "camera"), ("classes=bagel", "classes"),
])
def test_render_mvtec3d_recipe_values(setting, needle, tmp_path):
    out = tmp_path / "out"
    res = run("render-mvtec3d", *TINY_RENDER, "--set", setting, "--out", out)
    assert_user_error(res, needle, out=out, nothing_written=True)
    assert not out.exists()


@pytest.mark.parametrize("setting,needle", [
    ("btf.points.n_pointz=10", "btf.points.n_points"), ("btff.seed=1", "btf"), ("run.threads=0", "run.threads"),
    ("run.loader_workers=-1", "run.loader_workers"),
    ("btf.points.n_points=-5", "btf.points.n_points"), ("patchae.train.lr=fast", "patchae.train.lr"), ("run.evaluat=false", "run.evaluate"),
    ("run.aupro_fpr_limit=2", "run.aupro_fpr_limit"),
])
def test_train_detector_recipe_values(setting, needle, tmp_path, built):
    out = tmp_path / "run"
    res = run("train-detector", "--detector", setting.split(".")[0] if setting.startswith("patchae") else "btf", "--data", built, "--set", setting, "--out", out, "--quiet")
    assert_user_error(res, needle)
    assert not out.exists()


@pytest.mark.parametrize("content,needle", [
    ("seed: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "mapping"),
    ("seed: 0\ndataset:\n  pointz: [1, 2]\n", "dataset.points"),
    ("labels:\n  tau: -0.003\n", "labels.tau"),
])
def test_build_shapenet_recipe_files(content, needle, tmp_path):
    rec = tmp_path / "my.yaml"
    rec.write_text(content)
    out = tmp_path / "out"
    assert_user_error(run("build-shapenet", *TINY_BUILD, "--recipe", rec, "--out", out), needle)
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["--set", "noequals"], "--set"), (["--set", "=3"], "--set"), (["--set", "seed=[1,"], "--set"),
    (["--recipe", "nosuch-recipe"], "nosuch-recipe"), (["--recipe", "/no/such/file.yaml"], "/no/such/file.yaml"),
])
def test_bad_set_and_recipe_arguments(args, needle, tmp_path):
    out = tmp_path / "out"
    assert_user_error(run("build-shapenet", *TINY_BUILD, *args, "--out", out), needle)
    assert not out.exists()


# ----------------------------------------------------------------------------- options out of range

OPTION_CASES = [
    (["build-shapenet", *TINY_BUILD, "--workers", "0"], "--workers"),
    (["build-shapenet", *TINY_BUILD, "--workers", "-3"], "--workers"),
    (["build-shapenet", *TINY_BUILD, "--seed", "-1"], "--seed"),
    (["build-shapenet", *TINY_BUILD, "--train-per-class", "-1"], "--train-per-class"),
    (["build-shapenet", *TINY_BUILD, "--test-per-class", "-2"], "--test-per-class"),
    (["build-shapenet", *TINY_BUILD, "--classes", "0"], "--classes 0"),
    (["build-shapenet", *TINY_BUILD, "--classes", "41"], "--classes 41"),
    (["build-shapenet", *TINY_BUILD, "--classes", "spaceship"], "spaceship"),
    (["build-shapenet", *TINY_BUILD, "--defects", ","], "--defects"),
    (["build-shapenet", *TINY_BUILD, "--defects", "dent"], "dent"),
    (["build-shapenet", *TINY_BUILD, "--engine", "povray"], "povray"),
    (["build-shapenet", *TINY_BUILD, "--train-per-class", "0", "--test-per-class", "0"], "--test-per-class"),
    (["build-shapenet", *TINY_BUILD, "--workers", "two"], "--workers"),
    (["render-mvtec3d", *TINY_RENDER, "--workers", "0"], "--workers"),
    (["render-mvtec3d", *TINY_RENDER, "--workers", "-3"], "--workers"),
    (["render-mvtec3d", *TINY_RENDER, "--seed", "-1"], "--seed"),
    (["render-mvtec3d", *TINY_RENDER, "--size", "8"], "--size"),
    (["render-mvtec3d", "--classes", "spaceship"], "spaceship"),
    (["depth-defects", *TINY_DEPTH, "--workers", "0"], "--workers"),
    (["depth-defects", *TINY_DEPTH, "--workers", "-3"], "--workers"),
    (["depth-defects", "--per-image", "0"], "--per-image"),
    (["depth-defects", "--size", "-1"], "--size"),
    (["depth-defects", "--size", "8"], "--size"),
    (["depth-defects", "--seed", "-1"], "--seed"),
    (["depth-defects", "--input", "shapenet"], "--input"),
    (["depth-defects", "--device", "tpu"], "--device"),
    (["depth-defects", "--textures", "/no/such/textures"], "/no/such/textures"),
]


@pytest.mark.parametrize("args,needle", OPTION_CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in OPTION_CASES])
def test_options_out_of_range_write_nothing(args, needle, tmp_path):
    out = tmp_path / "out"
    assert_user_error(run(*args, "--out", out), needle)
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["validate", "{built}", "--workers", "0"], "--workers"),
    (["validate", "{built}", "--workers", "-3"], "--workers"),
    (["validate", "/no/such/dataset"], "/no/such/dataset"),
    (["validate", "{file}"], "is a file"),
    (["validate", "{built}", "--points", "a", "b"], "--points"),
    (["preview", "{built}", "--per-class", "0", "--out", "{tmp}/p"], "--per-class"),
    (["preview", "{built}", "--seed", "-1", "--out", "{tmp}/p"], "--seed"),
    (["preview", "{built}", "--classes", "spaceship", "--out", "{tmp}/p"], "spaceship"),
    (["preview", "{tmp}", "--out", "{tmp}/p"], "not a dataset layout"),
    (["train-detector", "--detector", "btf", "--data", "{built}", "--devices", "0", "--out", "{tmp}/r"], "--devices"),
    (["train-detector", "--detector", "btf", "--data", "{built}", "--max-minutes", "0", "--out", "{tmp}/r"],
     "--max-minutes"),
    (["train-detector", "--detector", "nosuch", "--data", "{built}", "--out", "{tmp}/r"], "nosuch"),
    (["train-detector", "--detector", "btf", "--data", "/no/such/data", "--out", "{tmp}/r"], "/no/such/data"),
    (["train-detector", "--detector", "btf", "--data", "{built}", "--classes", "spaceship", "--out", "{tmp}/r"],
     "spaceship"),
    (["evaluate", "/no/such/run"], "/no/such/run"),
    (["evaluate", "{built}"], "{built}"),
    (["evaluate", "{built}", "--out", "{built}"], "--overwrite"),
    (["evaluate", "{built}", "--out", "{file}"], "is a file"),
    (["blender", "run", "/no/such/script.py"], "/no/such/script.py"),
])
def test_other_commands_bad_arguments(args, needle, tmp_path, built):
    f = tmp_path / "afile"
    f.write_text("x")
    subs = {"{built}": str(built), "{tmp}": str(tmp_path), "{file}": str(f)}
    args = [subs.get(a, a.replace("{tmp}", str(tmp_path))) for a in args]
    needle = subs.get(needle, needle)
    before = sorted(p.relative_to(built) for p in built.rglob("*"))
    assert_user_error(run(*args), needle)
    assert not (tmp_path / "p").exists() and not (tmp_path / "r").exists()
    assert sorted(p.relative_to(built) for p in built.rglob("*")) == before  # the dataset is untouched


# ----------------------------------------------------------------------------- file-system faults

def _writers(tree, built):
    return {
        "build-shapenet": ["build-shapenet", *TINY_BUILD],
        "render-mvtec3d": ["render-mvtec3d", *TINY_RENDER],
        "depth-defects": ["depth-defects", "--input", f"mvtec3d={tree}", *TINY_DEPTH],
        "preview": ["preview", str(built), "--quiet"],
        "train-detector": ["train-detector", "--detector", "btf", "--data", str(built), "--quiet"],
    }


WRITERS = ["build-shapenet", "render-mvtec3d", "depth-defects", "preview"]


@pytest.mark.parametrize("cmd", WRITERS)
def test_parent_of_out_is_a_file(cmd, tmp_path, tree, built):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    res = run(*_writers(tree, built)[cmd], "--out", blocker / "sub")
    assert_user_error(res, str(blocker), "is a file")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("cmd", WRITERS)
def test_out_is_a_file(cmd, tmp_path, tree, built):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    res = run(*_writers(tree, built)[cmd], "--out", blocker)
    assert_user_error(res, str(blocker), "is a file")
    assert blocker.read_text() == "x"


def test_train_detector_out_under_a_file(tmp_path, built):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    res = run("train-detector", "--detector", "btf", "--data", built, "--out", blocker / "run", "--quiet")
    assert_user_error(res, str(blocker))


FAULTS = [(errno.ENOSPC, "disk full"), (errno.EROFS, "read-only"), (errno.EACCES, "permission denied"),
          (errno.EIO, "input/output error")]


@pytest.mark.parametrize("code,words", FAULTS, ids=[errno.errorcode[c] for c, _ in FAULTS])
def test_build_shapenet_fault_mid_sample_leaves_no_partial_sample(code, words, tmp_path, monkeypatch):
    """The fault hits the GT file of the first anomalous sample: its .pcd (already written) goes too."""
    fail_commit(monkeypatch, code, when=lambda p: p.parent.name == "GT")
    out = tmp_path / "out"
    line = assert_user_error(run("build-shapenet", *TINY_BUILD, "--out", out), words, out=out)
    assert "/GT/" in line
    assert list(out.glob("pcd/*/GT/*")) == [] and list(out.glob("pcd/*/test/*")) == []
    monkeypatch.undo()  # the disk has room again: the same command resumes and completes
    res = run("build-shapenet", *TINY_BUILD, "--out", out)
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("pcd/*/test/*.pcd"))) == 2 and temp_files(out) == []


@pytest.mark.parametrize("code,words", FAULTS[:3], ids=[errno.errorcode[c] for c, _ in FAULTS[:3]])
def test_build_shapenet_fault_at_first_write(code, words, tmp_path, monkeypatch):
    fail_commit(monkeypatch, code)
    out = tmp_path / "out"
    assert_user_error(run("build-shapenet", *TINY_BUILD, "--out", out), words, str(out), out=out,
                      nothing_written=True)


@pytest.mark.parametrize("code,words", FAULTS[:3], ids=[errno.errorcode[c] for c, _ in FAULTS[:3]])
def test_render_fault_mid_sample(code, words, tmp_path, monkeypatch):
    fail_commit(monkeypatch, code, when=lambda p: p.suffix == ".png", after=1)
    out = tmp_path / "out"
    assert_user_error(run("render-mvtec3d", *TINY_RENDER, "--out", out), words, ".png", out=out)


@pytest.mark.parametrize("code,words", FAULTS[:3], ids=[errno.errorcode[c] for c, _ in FAULTS[:3]])
def test_depth_defects_fault_mid_sample(code, words, tmp_path, monkeypatch, tree):
    fail_commit(monkeypatch, code, when=lambda p: p.parent.name == "gt")
    out = tmp_path / "out"
    assert_user_error(run("depth-defects", "--input", f"mvtec3d={tree}", *TINY_DEPTH, "--out", out), words,
                      "/gt/", out=out)
    assert list(out.glob("bagel/test/das3d/*/*")) == []


def test_preview_disk_full(tmp_path, monkeypatch, built):
    fail_commit(monkeypatch, errno.ENOSPC, when=lambda p: p.suffix == ".png")
    out = tmp_path / "p"
    assert_user_error(run("preview", built, "--out", out, "--quiet"), "disk full", str(out), out=out)
    assert list(out.glob("*.png")) == []


@pytest.mark.parametrize("cmd", WRITERS + ["train-detector"])
def test_out_not_writable(cmd, tmp_path, monkeypatch, tree, built):
    """A folder the user may not write (simulated: the tests may run as root, who may write anywhere)."""
    out = tmp_path / "locked" / "out"
    real = pathlib.Path.mkdir

    def mkdir(self, *a, **k):
        if str(self).startswith(str(tmp_path / "locked")):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *a, **k)
    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    assert_user_error(run(*_writers(tree, built)[cmd], "--out", out), "permission denied", str(tmp_path / "locked"))
    assert not out.exists()


# ----------------------------------------------------------------------------- depth-defects input trees

def _break(tree: Path, how: str) -> str:
    d = tree / "bagel" / "train" / "good"
    if how == "rgb-size":
        from PIL import Image
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(d / "rgb" / "001.png")
    elif how == "corrupt-tiff":
        (d / "xyz" / "001.tiff").write_bytes(b"II*\x00garbage" * 10)
    elif how == "all-zero":
        import tifffile
        tifffile.imwrite(d / "xyz" / "001.tiff", np.zeros((40, 40, 3), np.float32), photometric="rgb")
    elif how == "nan-xyz":
        import tifffile
        a = tifffile.imread(d / "xyz" / "001.tiff")
        a[5, 5] = np.nan
        tifffile.imwrite(d / "xyz" / "001.tiff", a, photometric="rgb")
    elif how == "truncated-png":
        p = d / "rgb" / "001.png"
        p.write_bytes(p.read_bytes()[:60])
    elif how == "two-channel-xyz":
        import tifffile
        tifffile.imwrite(d / "xyz" / "001.tiff", np.ones((40, 40, 2), np.float32))
    return str(d / "xyz" / "001.tiff")


@pytest.mark.parametrize("how", ["rgb-size", "corrupt-tiff", "all-zero", "nan-xyz", "truncated-png",
                                 "two-channel-xyz"])
def test_depth_defects_skips_bad_input_samples_by_name(how, tmp_path):
    tree = mvtec_tree(tmp_path / "tree")
    bad = _break(tree, how)
    out = tmp_path / "out"
    res = run("depth-defects", "--input", f"mvtec3d={tree}", *TINY_DEPTH, "--out", out)
    assert res.exit_code == 0, res.output
    assert f"skipped input {bad}" in res.output and "1 input image(s) skipped" in res.output
    for leak in LEAKS:
        assert leak not in res.output, (leak, res.output)
    man = json.loads((out / "manifest.json").read_text())
    assert [s["source"] for s in man["skipped"]] == [bad]
    assert not (out / "bagel" / "train" / "good" / "xyz" / "001.tiff").exists()  # nothing of it written
    assert not any(s.get("train_name") == "001" for s in man["samples"])
    assert (out / "bagel" / "train" / "good" / "xyz" / "000.tiff").is_file()
    assert_no_partial(out)
    assert run("validate", out, "--workers", "1", "--quiet").exit_code == 0


@pytest.mark.parametrize("how,needle", [("no-train", "no training images"), ("not-a-tree", "not a dataset layout"),
                                        ("no-class", "no class 'cookie'")])
def test_depth_defects_unusable_input_tree(how, needle, tmp_path):
    tree = mvtec_tree(tmp_path / "tree")
    extra = []
    if how == "no-train":
        import shutil
        shutil.rmtree(tree / "bagel" / "train")
    elif how == "not-a-tree":
        tree = tmp_path / "empty"
        (tree / "x").mkdir(parents=True)
    else:
        extra = ["--classes", "cookie"]
    out = tmp_path / "out"
    assert_user_error(run("depth-defects", "--input", f"mvtec3d={tree}", *TINY_DEPTH, *extra, "--out", out), needle)
    assert not out.exists()


# ----------------------------------------------------------------------------- corrupt files in a dataset

def _corrupt(root: Path, how: str) -> Path:
    gt = next(root.glob("pcd/*/GT/*.txt"))
    pcd = next(root.glob("pcd/*/train/*.pcd"))
    if how == "gt-text":
        gt.write_text(gt.read_text().replace("\n", "\nabc,1,2,0\n", 1))
        return gt
    if how == "gt-columns":
        lines = gt.read_text().splitlines()
        gt.write_text("\n".join(lines[:3] + [",".join(lines[3].split(",")[:3])] + lines[4:]) + "\n")
        return gt
    if how == "gt-empty":
        gt.write_text("")
        return gt
    if how == "pcd-header":
        pcd.write_text(pcd.read_text().replace("WIDTH", "WIDE"))
        return pcd
    if how == "pcd-body":
        pcd.write_text(pcd.read_text() + "1 2\n")
        return pcd
    if how == "pcd-garbage":
        pcd.write_bytes(b"\x00\x01garbage")
        return pcd
    raise ValueError(how)


CORRUPT = ["gt-text", "gt-columns", "gt-empty", "pcd-header", "pcd-body", "pcd-garbage"]


@pytest.mark.parametrize("how", CORRUPT)
def test_validate_names_each_corrupt_file_without_internals(how, tmp_path, built):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(built, root)
    bad = _corrupt(root, how)
    res = run("validate", root, "--workers", "1", "--quiet")
    assert res.exit_code == 2, res.output
    assert str(bad) in res.output
    for leak in LEAKS:
        assert leak not in res.output, (leak, res.output)


@pytest.mark.parametrize("how", ["gt-text", "pcd-garbage"])
def test_train_detector_on_corrupt_data_is_one_line(how, tmp_path, built):
    import shutil
    root = tmp_path / "ds"
    shutil.copytree(built, root)
    bad = _corrupt(root, how)
    out = tmp_path / "run"
    assert_user_error(run("train-detector", "--detector", "btf", "--data", root, "--out", out, "--quiet"), str(bad),
                      out=out)
    if how == "pcd-garbage":  # a training cloud: nothing of the run is kept
        assert not out.exists()
    else:  # a test GT: training finished and is kept (status 'trained'), scoring stopped with the error
        assert json.loads((out / "run.json").read_text())["status"] == "trained"
        assert not (out / "metrics.json").exists()


# ----------------------------------------------------------------------------- foreign output folders

@pytest.mark.parametrize("cmd,into", [("render-mvtec3d", "built"), ("depth-defects", "built"),
                                      ("build-shapenet", "rendered"), ("depth-defects", "rendered"),
                                      ("render-mvtec3d", "userfiles"), ("build-shapenet", "userfiles"),
                                      ("depth-defects", "userfiles"), ("preview", "rendered")])
def test_foreign_output_folder_is_refused(cmd, into, tmp_path, tree, built, rendered):
    src = {"built": built, "rendered": rendered}.get(into)
    target = tmp_path / "target"
    if src is None:
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    else:
        import shutil
        shutil.copytree(src, target)
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert_user_error(run(*_writers(tree, built)[cmd], "--out", target), str(target), "--overwrite")
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before


def test_overwrite_replaces_a_foreign_anomalygen_output_and_keeps_user_files(tmp_path, rendered):
    import shutil
    target = tmp_path / "target"
    shutil.copytree(rendered, target)
    (target / "notes.txt").write_text("mine")
    res = run("build-shapenet", *TINY_BUILD, "--out", target, "--overwrite")
    assert res.exit_code == 0, res.output
    assert (target / "notes.txt").read_text() == "mine"
    assert not (target / "bagel").exists()
    man = json.loads((target / "manifest.json").read_text())
    assert "build-shapenet" in man["generator"]
    assert run("validate", target, "--workers", "1", "--quiet").exit_code == 0


def test_rerun_into_own_output_is_allowed(tmp_path):
    out = tmp_path / "r"
    for _ in range(2):
        res = run("render-mvtec3d", *TINY_RENDER, "--out", out)
        assert res.exit_code == 0, res.output


# ----------------------------------------------------------------------------- bad source meshes

CUBE_V = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
CUBE_F = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5],
                   [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]])


def obj_text(v, f) -> str:
    return "".join(f"v {float(x)!r} {float(y)!r} {float(z)!r}\n" for x, y, z in v) + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in f)


def _mesh_case(how: str) -> str:
    v, f = CUBE_V.copy(), CUBE_F.copy()
    if how == "nan":
        v[6] = [np.nan, 1, 1]
    elif how == "inf":
        v[6] = [1, np.inf, 1]
    elif how == "all-degenerate":
        v = np.zeros_like(v)
    elif how == "open-sheet":
        v, f = v[:4], f[:2]
    elif how == "collinear":
        v = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], float)
        f = np.array([[0, 1, 2], [1, 2, 3]])
    elif how == "flat-box":
        v = v * [1, 1, 0.001]
    elif how == "garbage":
        return "this is not a mesh\n"
    elif how == "empty":
        return ""
    return obj_text(v, f)


BAD_MESHES = [("nan", "NaN or infinite"), ("inf", "NaN or infinite"), ("all-degenerate", "zero area"),
              ("open-sheet", "too thin"), ("collinear", "zero area"), ("flat-box", "too thin"),
              ("garbage", "no triangles"), ("empty", "mesh")]


@pytest.mark.parametrize("how,needle", BAD_MESHES, ids=[h for h, _ in BAD_MESHES])
def test_unusable_source_mesh_is_refused_by_name(how, needle, tmp_path):
    src = tmp_path / "src" / "thing"
    src.mkdir(parents=True)
    (src / "m.obj").write_text(_mesh_case(how))
    out = tmp_path / "out"
    args = list(TINY_BUILD)
    args[args.index("--classes") + 1] = "thing"
    assert_user_error(run("build-shapenet", *args, "--source", tmp_path / "src", "--out", out),
                      str(src / "m.obj"), needle)
    assert not out.exists()


def test_one_bad_mesh_among_good_ones_is_skipped_and_recorded(tmp_path):
    root = tmp_path / "src"
    for name, text in (("good", obj_text(CUBE_V * 1e-5, CUBE_F)), ("bad", _mesh_case("nan"))):
        (root / name).mkdir(parents=True)
        (root / name / "m.obj").write_text(text)
    # a good cube with a zero-area face: repaired, and the repair recorded
    deg_v = np.vstack([CUBE_V, [[0.5, 0, 0]]]) * 250.0
    deg_f = np.vstack([CUBE_F, [[0, 1, 8]]])
    (root / "degen").mkdir()
    (root / "degen" / "m.obj").write_text(obj_text(deg_v, deg_f))
    out = tmp_path / "out"
    args = [a for a in TINY_BUILD]
    args[args.index("--classes") + 1] = "3"
    res = run("build-shapenet", *args, "--source", root, "--out", out)
    assert res.exit_code == 0, res.output
    assert "skipped class bad" in res.output and "NaN" in res.output
    man = json.loads((out / "manifest.json").read_text())
    assert set(man["rejected_classes"]) == {"bad"} and "NaN" in man["rejected_classes"]["bad"]
    assert set(man["classes"]) == {"good", "degen"} and not (out / "pcd" / "bad").exists()
    assert man["classes"]["good"]["scale"] == pytest.approx(1 / (np.sqrt(3) * 1e-5), rel=1e-5)
    assert man["classes"]["degen"]["scale"] == pytest.approx(1 / (np.sqrt(3) * 250), rel=1e-5)
    assert man["classes"]["degen"]["removed_degenerate_faces"] == 1
    assert run("validate", out, "--workers", "1", "--quiet").exit_code == 0


def test_samples_whose_ratio_misses_the_bounds_are_never_written(tmp_path):
    """An impossible ratio range: every anomalous sample is refused and recorded, none written."""
    out = tmp_path / "out"
    res = run("build-shapenet", *TINY_BUILD, "--set", "labels.anomaly_ratio=[0.9,1.0]", "--set",
              "labels.max_retries=1", "--out", out)
    assert res.exit_code == 0, res.output
    assert res.output.count("not written:") == 2
    man = json.loads((out / "manifest.json").read_text())
    assert len(man["rejected_samples"]) == 2 and all("outside" in r["rejected"] for r in man["rejected_samples"])
    assert list(out.glob("pcd/*/GT/*")) == []
    lo, hi = man["validate"]["anomaly_ratio"]
    assert all(lo <= s["anomaly_ratio"] <= hi for s in man["samples"] if s["defect"] != "good")
    assert run("validate", out, "--workers", "1", "--quiet").exit_code == 0


# ----------------------------------------------------------------------------- Blender missing

def test_blender_engine_without_blender_fails_before_writing(tmp_path):
    out = tmp_path / "out"
    res = run("build-shapenet", *TINY_BUILD, "--engine", "blender", "--out", out,
              env={"ANOMALYGEN_BLENDER": str(tmp_path / "no-blender")})
    assert_user_error(res, "no-blender")
    assert not out.exists()


def test_blender_engine_that_does_not_start_fails_before_writing(tmp_path):
    fake = tmp_path / "blender"
    fake.write_text("#!/bin/sh\necho 'error while loading shared libraries' >&2\nexit 127\n")
    fake.chmod(0o755)
    out = tmp_path / "out"
    res = run("build-shapenet", *TINY_BUILD, "--engine", "blender", "--out", out, env={"ANOMALYGEN_BLENDER": str(fake)})
    assert_user_error(res, str(fake), "does not start")
    assert not out.exists()


def test_blender_info_without_blender_says_what_it_looked_for_and_exits_0(tmp_path):
    res = run("blender", "info", env={"ANOMALYGEN_BLENDER": str(tmp_path / "no-blender")})
    assert res.exit_code == 0, res.output
    assert "not found" in res.output and "ANOMALYGEN_BLENDER" in res.output and "defect" in res.output


def test_blender_run_without_blender(tmp_path):
    res = run("blender", "run", "defect", "--", "--input", "x.ply", env={"ANOMALYGEN_BLENDER": str(tmp_path / "nb")})
    assert_user_error(res, "nb")


# ----------------------------------------------------------------------------- resume: temp files, records

def test_resume_removes_orphan_temp_files_and_records_hold_no_timing(tmp_path, built):
    import shutil
    out = tmp_path / "b"
    shutil.copytree(built, out)
    tmp = out / ".anomalygen" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "4242-0-0_break.txt").write_text("half")        # what a killed run leaves
    legacy = out / "pcd" / "bowl0" / "GT" / ".0_break.4242.tmp.txt"
    legacy.write_text("half")                                # and the hidden sibling an older version left
    (out / "pcd" / "bowl0" / "test" / "1_bulge.pcd").unlink()  # and an unfinished sample
    res = run("build-shapenet", *TINY_BUILD, "--out", out)
    assert res.exit_code == 0, res.output
    assert temp_files(out) == [] and not tmp.exists() and not legacy.exists()
    for a in sorted(p for p in built.rglob("*") if p.is_file()):
        assert (out / a.relative_to(built)).read_bytes() == a.read_bytes(), a
    for rec in out.glob(".anomalygen/records/*/*.json"):
        assert "seconds" not in json.loads(rec.read_text())


def test_temp_files_are_written_where_no_reader_looks(tmp_path, monkeypatch):
    seen = []
    real = atomic_mod._commit

    def commit(tmp, path):
        seen.append(Path(tmp))
        return real(tmp, path)
    monkeypatch.setattr(atomic_mod, "_commit", commit)
    out = tmp_path / "out"
    assert run("build-shapenet", *TINY_BUILD, "--out", out).exit_code == 0
    assert seen and all(p.parent == out / ".anomalygen" / "tmp" for p in seen)


@pytest.mark.slow
def test_killed_build_resumes_to_identical_bytes_temp_files_included(tmp_path):
    """SIGKILL a build repeatedly at varied points, resume each time; the result equals an
    uninterrupted build byte for byte, every file under the output root (records included), and
    no temp file survives."""
    args = ["build-shapenet", "--classes", "bowl0", "--train-per-class", "1", "--test-per-class", "6",
            "--workers", "1", "--set", "dataset.points=[400,700]", "--quiet"]
    ref = tmp_path / "ref"
    assert run(*args, "--out", ref).exit_code == 0
    out = tmp_path / "killed"
    records = out / ".anomalygen" / "records" / "bowl0"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    for k, wait in enumerate((0.05, 0.0, 0.15, 0.0, 0.3)):
        p = subprocess.Popen([sys.executable, "-m", "anomalygen.cli", *args, "--out", str(out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = min(k + 1, 6)
        t0 = time.time()
        while p.poll() is None and time.time() - t0 < 120:
            if records.is_dir() and len(list(records.glob("*.json"))) >= target:
                time.sleep(wait)
                break
            time.sleep(0.01)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
    assert kills >= 3
    res = subprocess.run([sys.executable, "-m", "anomalygen.cli", *args, "--out", str(out)], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    a = {str(p.relative_to(ref)): p.read_bytes() for p in sorted(ref.rglob("*")) if p.is_file()}
    b = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    assert temp_files(out) == [] and not (out / ".anomalygen" / "tmp").exists()


# ----------------------------------------------------------------------------- usability

def test_error_line_starts_on_its_own_line_after_a_progress_bar(tmp_path, monkeypatch):
    fail_commit(monkeypatch, errno.ENOSPC, when=lambda p: p.parent.name == "GT")
    out = tmp_path / "out"
    res = run("build-shapenet", *[a for a in TINY_BUILD if a != "--quiet"], "--out", out)
    assert_user_error(res, "disk full")
    assert re.search(r"(^|\n)Error: ", res.output)


def test_build_shapenet_help_names_the_real_layout():
    out = run("build-shapenet", "--help").output
    assert "pcd/<class>/{train,test,GT}" in out
    assert "\n  GT/" not in out


def test_runs_folder_is_git_ignored():
    assert "runs/" in (ROOT / ".gitignore").read_text().split()
