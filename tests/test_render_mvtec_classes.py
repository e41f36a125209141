"""All ten MVTec 3D-AD classes render offline: the four procedural ones are sound objects with gt, a
tiny render of the ten validates, and rendered (and built) bytes do not depend on the CPU's paths."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from anomalygen.builds.render import render_mvtec3d
from anomalygen.builds.settings import render_config
from anomalygen.cli import cli
from anomalygen.io import open_dataset
from anomalygen.recipes import load_recipe
from anomalygen.render.sample import render_sample
from anomalygen.render.scene import MVTEC_CLASSES, normal_mesh
from anomalygen.shapes.mvtec import SHAPES, make_mvtec_shape

from cpu_paths import cpu_environments

ROOT = Path(__file__).resolve().parents[1]

NEW = ["cable_gland", "carrot", "foam", "rope"]

TINY = {"size": 40, "counts": {"train": 1, "validation": 0, "test_good": 1, "test_per_defect": 1},
        "defects": ["hole"]}


def _cpu_paths(*args, env=None, prefix=()) -> dict:
    res = subprocess.run([*prefix, sys.executable, str(ROOT / "tests" / "cpu_paths.py"), *args], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_rendered_and_built_bytes_do_not_depend_on_the_cpu_paths_numpy_and_openblas_take():
    """The same image and sample bytes when numpy runs none of its CPU-specific (AVX2, AVX-512) paths
    and when OpenBLAS runs another CPU's kernels: where such a path decided a bit (numpy's AVX-512
    power in a groove's taper; BLAS dot products), two machines wrote different datasets."""
    here = _cpu_paths()
    for name, env in cpu_environments().items():
        there = _cpu_paths(env=env)
        assert {k for k in here if here[k] != there[k]} == set(), name


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="needs qemu-user (apt-get install qemu-user)")
def test_rendered_bytes_on_an_emulated_amd_epyc_equal_this_machines():
    """Embree's hit distance rests on the CPU's approximate reciprocal (RCPPS), whose bits differ between
    Intel, AMD and qemu's emulation; the renderer measures each hit again from its triangle, so an
    emulated AMD EPYC renders this machine's bytes."""
    assert _cpu_paths("render:2", prefix=("qemu-x86_64", "-cpu", "EPYC-Rome-v1")) == _cpu_paths("render:2")


@pytest.mark.parametrize("cls", NEW)
def test_procedural_class_is_a_watertight_unit_mesh_that_depends_on_the_seed(cls):
    a = make_mvtec_shape(cls, np.random.default_rng(0))
    b = make_mvtec_shape(cls, np.random.default_rng(0))
    c = make_mvtec_shape(cls, np.random.default_rng(1))
    assert a.is_watertight and a.volume > 0
    assert np.isclose(np.linalg.norm(a.extents), 1.0)
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)
    assert not (len(a.vertices) == len(c.vertices) and np.allclose(a.vertices, c.vertices))
    assert normal_mesh(cls, np.random.default_rng(0), 0.025).is_watertight


@pytest.mark.parametrize("cls", NEW)
def test_procedural_class_renders_valid_xyz_and_a_gt_mask(cls):
    cfg = render_config({**load_recipe("render-mvtec3d"), "size": 64})
    good, _ = render_sample(cls, "test", "good", 0, 0, cfg)
    bad, rec = render_sample(cls, "test", "hole", 0, 0, cfg)
    obj = good.xyz[..., 2] < cfg.distance - 0.002  # nearer than the background plane's lowest point
    assert obj.sum() > 0.02 * obj.size, "object covers a fair part of the image"
    assert np.all(good.xyz[..., 2] > 0) and np.all(np.isfinite(good.xyz))  # every ray hits object or plane
    assert good.mask.sum() == 0
    assert bad.mask.sum() > 0 and set(np.unique(bad.mask)) <= {0, 1}
    assert rec["anomaly_ratio"] == pytest.approx(float(bad.mask.mean()), abs=1e-6)
    # gt marks the object, not the background: the defective surface moved where gt is set
    dz = np.abs(bad.xyz[..., 2] - good.xyz[..., 2])
    assert dz[bad.mask.astype(bool)].max() > 0


@pytest.mark.slow
def test_render_all_ten_by_count_and_validate(tmp_path):
    out = tmp_path / "ten"
    render_mvtec3d(out, "10", {**load_recipe("render-mvtec3d"), **TINY}, seed=1)
    ds = open_dataset(out)
    assert ds.classes() == sorted(MVTEC_CLASSES) and set(SHAPES) <= set(ds.classes())
    for c in MVTEC_CLASSES:
        assert len(ds.samples(c, "train")) == 1 and len(ds.samples(c, "test")) == 2
    r = CliRunner().invoke(cli, ["validate", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output


def test_class_count_out_of_range_is_one_error_line(tmp_path):
    r = CliRunner().invoke(cli, ["render-mvtec3d", "--classes", "11", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and r.output.strip().startswith("Error:") and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
