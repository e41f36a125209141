"""`anomalygen depth-defects` and `render-mvtec3d` end to end on tiny sizes, then `validate`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from anomalygen.cli import cli
from anomalygen.io import ImageSample, mvtec3d, open_dataset
from anomalygen.recipes import load_recipe

TINY = ["--size", "48", "--set", "render.counts.train=2", "--set", "render.counts.validation=1",
        "--set", "render.counts.test_good=1"]


def _run(args):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    return res


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in (".tiff", ".png")}


@pytest.mark.slow
def test_rendered_default_end_to_end_validates_and_reproduces(tmp_path):
    out = tmp_path / "a"
    res = _run(["depth-defects", "--input", "mvtec3d", "--out", str(out), "--classes", "peach",
                "--per-image", "2", *TINY])
    assert res.exit_code == 0, res.output
    ds = open_dataset(out)
    refs = ds.samples("peach")
    assert sorted({(r.split, r.defect) for r in refs}) == [("test", "das3d"), ("test", "good"), ("train", "good"),
                                                           ("validation", "good")]
    bad = [r for r in refs if r.defect == "das3d"]
    assert len(bad) == 4  # 2 training images x K = 2
    man = json.loads((out / "manifest.json").read_text())
    lo, hi = man["validate"]["anomaly_ratio"]
    for r in bad:
        s = r.load()
        assert lo <= s.mask.mean() <= hi and s.xyz.shape == (48, 48, 3)
    assert _run(["validate", str(out), "--workers", "1", "--quiet"]).exit_code == 0
    rec = [s for s in man["samples"] if s["defect"] == "das3d"]
    assert {"p_z", "alpha", "sigma_px", "perlin_res", "beta", "texture"} <= set(rec[0])
    # same seed -> same bytes, with 2 workers too
    out2 = tmp_path / "b"
    assert _run(["depth-defects", "--out", str(out2), "--classes", "peach", "--per-image", "2", "--workers", "2",
                 *TINY]).exit_code == 0
    assert _digest(out) == _digest(out2)
    out3 = tmp_path / "c"
    assert _run(["depth-defects", "--out", str(out3), "--classes", "peach", "--per-image", "2", "--seed", "1",
                 *TINY]).exit_code == 0
    assert _digest(out) != _digest(out3)


def _real_tree(root: Path) -> None:
    """A small MVTec 3D-AD tree: dome on a plane, 40 x 40, with a real test defect that must be ignored."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float64)
    for split, defect, n in (("train", "good", 2), ("validation", "good", 1), ("test", "good", 1), ("test", "crack", 1)):
        for i in range(n):
            r2 = ((yy - 20 - i) ** 2 + (xx - 20) ** 2) / 12 ** 2
            z = 0.5 - 0.03 * np.sqrt(np.clip(1 - r2, 0, 1)) + 0.0002 * xx
            xyz = np.stack([(xx - 20) * z / 100, (yy - 20) * z / 100, z], -1).astype(np.float32)
            rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            mask = (r2 < 0.1).astype(np.uint8) if defect != "good" else np.zeros((40, 40), np.uint8)
            mvtec3d.write_sample(root, ImageSample(xyz, rgb, mask, "bagel", split, defect, mvtec3d.sample_name(i)))


def test_real_mvtec_tree_end_to_end(tmp_path):
    src = tmp_path / "mvtec"
    _real_tree(src)
    out = tmp_path / "out"
    res = _run(["depth-defects", "--input", f"mvtec3d={src}", "--out", str(out), "--per-image", "3", "--size", "0"])
    assert res.exit_code == 0, res.output
    refs = open_dataset(out).samples("bagel")
    assert sorted((r.split, r.defect) for r in refs).count(("test", "das3d")) == 6
    assert not any(r.defect == "crack" for r in refs)
    train = {r.name: r.load() for r in refs if r.split == "train"}
    for r in refs:
        if r.defect == "das3d":
            s = r.load()
            src_img = train[mvtec3d.sample_name(int(r.name) // 3)]
            changed = np.any(s.xyz != src_img.xyz, -1)
            assert changed.any() and (s.mask.astype(bool) <= changed).all()  # gt only where the surface moved
            assert (s.rgb[~s.mask.astype(bool)] == src_img.rgb[~s.mask.astype(bool)]).all()
    assert _run(["validate", str(out), "--workers", "1", "--quiet"]).exit_code == 0


def test_user_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["depth-defects", "--input", "shapenet", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "expected 'mvtec3d'" in res.output
    res = CliRunner().invoke(cli, ["depth-defects", "--input", f"mvtec3d={tmp_path / 'nope'}", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no such directory" in res.output
    res = CliRunner().invoke(cli, ["depth-defects", "--classes", "spaceship", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown class 'spaceship'" in res.output
    res = CliRunner().invoke(cli, ["depth-defects", "--textures", str(tmp_path), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no images" in res.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_render_mvtec3d_command_and_preview(tmp_path):
    out = tmp_path / "r"
    res = _run(["render-mvtec3d", "--out", str(out), "--classes", "tire", "--size", "48", "--recipe",
                str(_tiny_render_recipe(tmp_path))])
    assert res.exit_code == 0, res.output
    refs = open_dataset(out).samples("tire")
    from anomalygen.builds.settings import render_config

    defects, _ = render_config(load_recipe("render-mvtec3d")).usable_defects()
    assert {(r.split, r.defect) for r in refs} == {("train", "good"), ("validation", "good"), ("test", "good")} | {
        ("test", d) for d in defects}
    assert (out / "tire" / "calibration" / "camera_parameters.json").is_file()
    assert _run(["validate", str(out), "--workers", "1", "--quiet"]).exit_code == 0
    res = _run(["preview", str(out), "--out", str(tmp_path / "p"), "--per-class", "3"])
    assert res.exit_code == 0 and (tmp_path / "p" / "tire.png").is_file()


def _tiny_render_recipe(tmp_path: Path) -> Path:
    import yaml

    r = load_recipe("render-mvtec3d")
    r.pop("_source")
    r["counts"] = {"train": 1, "validation": 1, "test_good": 1, "test_per_defect": 1}
    p = tmp_path / "render.yaml"
    p.write_text(yaml.safe_dump(r))
    return p
