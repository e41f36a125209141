"""`validate` passes clean datasets and names each planted fault in one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from anomalygen.io import write_pcd
from anomalygen.validate import Bounds, validate_dataset


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "anomalygen.cli", *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("fixture", ["shapenet_dir", "real3d_dir", "mvtec_dir"])
def test_clean_datasets_pass(request, fixture):
    root = request.getfixturevalue(fixture)
    report = validate_dataset(root)
    assert report.ok, report.problems
    assert len(report.stats) == len(list(report.stats))
    table = report.table()
    assert table.splitlines()[0].startswith("class")


def test_summary_table_counts(shapenet_dir):
    report = validate_dataset(shapenet_dir)
    rows = {line.split()[0]: line.split() for line in report.table().splitlines()[2:]}
    assert set(rows) == {"bowl0", "vase1"}
    # class, samples, train, test normal, test anomalous
    assert rows["bowl0"][1:5] == ["5", "2", "1", "2"]


def _plant(root, kind):
    """Break one file of a clean Anomaly-ShapeNet / MVTec dataset; return the file that must be named."""
    if kind == "nan_point":
        p = root / "pcd" / "bowl0" / "train" / "bowl0_template1.pcd"
        pts = np.random.default_rng(0).random((300, 3)).astype(np.float32)
        pts[17, 1] = np.nan
        write_pcd(p, pts)
        return p
    if kind == "count_mismatch":
        p = root / "pcd" / "vase1" / "GT" / "1_bulge.txt"
        lines = p.read_text().splitlines()
        p.write_text("\n".join(lines[:-3]) + "\n")
        return p
    if kind == "non_binary_label":
        p = root / "pcd" / "bowl0" / "GT" / "2_hole.txt"
        lines = p.read_text().splitlines()
        lines[5] = lines[5].rsplit(",", 1)[0] + ",2"
        p.write_text("\n".join(lines) + "\n")
        return p
    if kind == "mask_wrong_size":
        p = root / "bagel" / "test" / "crack" / "gt" / "000.png"
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(p)
        return p
    if kind == "missing_gt":
        p = root / "pcd" / "bowl0" / "GT" / "1_bulge.txt"
        p.unlink()
        return root / "pcd" / "bowl0" / "test" / "1_bulge.pcd"
    raise ValueError(kind)


@pytest.mark.parametrize("kind,needle", [
    ("nan_point", "NaN"),
    ("count_mismatch", "GT has 397 points but its .pcd has 400"),
    ("non_binary_label", "labels must be 0/1"),
    ("mask_wrong_size", "gt is 10x10 but xyz is 32x24"),
    ("missing_gt", "without GT file"),
])
def test_each_planted_fault_is_named_in_one_line(request, kind, needle):
    root = request.getfixturevalue("mvtec_dir" if kind == "mask_wrong_size" else "shapenet_dir")
    bad_file = _plant(root, kind)
    report = validate_dataset(root)
    assert len(report.problems) == 1, report.problems
    (problem,) = report.problems
    assert problem.path == str(bad_file)
    assert needle in problem.message
    res = run_cli("validate", root, "--quiet")
    assert res.returncode == 2
    err_lines = res.stderr.strip().splitlines()
    assert err_lines[0] == f"{bad_file}: {problem.message}"
    assert "Traceback" not in res.stderr


def test_bounds_from_manifest_are_enforced(shapenet_dir):
    (shapenet_dir / "manifest.json").write_text(json.dumps({"validate": {"points": [350, 1000], "anomaly_ratio": [0.0, 1.0]}}))
    report = validate_dataset(shapenet_dir)
    # train and normal test clouds have 300 points: 6 of them are out of bounds
    assert len(report.problems) == 6 and all("outside [350, 1000]" in p.message for p in report.problems)
    assert validate_dataset(shapenet_dir, Bounds(points=(1, 10_000))).ok


def test_parallel_validation_matches_serial(shapenet_dir):
    _plant(shapenet_dir, "count_mismatch")
    a = validate_dataset(shapenet_dir, workers=1)
    b = validate_dataset(shapenet_dir, workers=2)
    assert [str(p) for p in a.problems] == [str(p) for p in b.problems]
    assert a.table() == b.table()


def test_cli_prints_summary_and_ok(shapenet_dir):
    res = run_cli("validate", shapenet_dir, "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert "layout: anomaly-shapenet" in res.stdout and "OK" in res.stdout
