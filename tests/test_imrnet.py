"""IMRNet: geometry-aware sampling, masked reconstruction training, iterative reconstruction, scoring,
save/load, pretraining and the CLI with the shipped tiny recipe (all on CPU, toy sizes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from anomalygen.cli import cli
from anomalygen.detectors import available_detectors, get_detector
from anomalygen.detectors.base import Detector, FitOptions
from anomalygen.detectors.common.gps import local_geometry, salient_counts, sample_points
from anomalygen.detectors.imrnet.compare import cover_masks
from anomalygen.detectors.imrnet.detector import IMRNetDetector
from anomalygen.detectors.toydata import write_toy_point_dataset
from anomalygen.errors import RecipeError
from anomalygen.io import GOOD, PointSample

# a flat plane is the surface the network learns; a bump on it is the planted defect
TINY = {"n_points": 256, "groups": 16, "patch_points": 16, "compare_points": 16, "dim": 32, "width": 16, "depth": 2,
        "decoder_depth": 3, "heads": 2, "repeat": 8, "centre_jitter": 0.3,
        "train": {"epochs": 10, "batch_size": 8, "lr": 0.003}}


def plane(n: int, rng: np.random.Generator, bump: float = 0.0, width: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(points, labels) of the unit square z = 0, with a Gaussian bump of height `bump` at its middle."""
    xy = rng.uniform(-1, 1, (n, 2))
    z = bump * np.exp(-np.sum(xy ** 2, 1) / (2 * width ** 2))
    return np.c_[xy, z].astype(np.float32), (z > 0.1 * max(bump, 1e-9)).astype(np.uint8) * (bump > 0)


def plane_sample(rng, bump=0.0, split="test", name="p"):
    pts, lab = plane(800, rng, bump)
    return PointSample(pts, lab, "plane0", split, "bulge" if bump else GOOD, name)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = np.random.default_rng(0)
    train = [plane_sample(rng, split="train", name=f"t{i}") for i in range(4)]
    workdir = tmp_path_factory.mktemp("imrnet")
    torch.set_num_threads(1)
    det = get_detector("imrnet")(TINY, device="cpu").fit(train, FitOptions(workdir=workdir, task="plane0"))
    return det, workdir


def test_imrnet_is_registered_and_checks_its_settings():
    assert "imrnet" in available_detectors()
    with pytest.raises(RecipeError, match="imrnet.groups = 512 exceeds imrnet.n_points = 256"):
        IMRNetDetector({"n_points": 256, "groups": 512})
    with pytest.raises(RecipeError, match="imrnet.dim = 30 is not a multiple of imrnet.heads = 4"):
        IMRNetDetector({"dim": 30, "heads": 4})
    with pytest.raises(RecipeError, match="imrnet.sampler = 'voxel'"):
        IMRNetDetector({"sampler": "voxel"})
    cfg = IMRNetDetector().config  # paper sizes by default
    assert (cfg["n_points"], cfg["groups"], cfg["patch_points"], cfg["mask_ratio"], cfg["iterations"]) == (8192, 256, 64, 0.4, 3)


def test_gps_samples_a_bump_more_densely_than_the_flat_face():
    rng = np.random.default_rng(1)
    pts, _ = plane(4000, rng, bump=0.15, width=0.15)
    x = torch.from_numpy(pts)[None]
    on_bump = torch.from_numpy(np.sum(pts[:, :2] ** 2, 1) < 0.35 ** 2)
    density = {}
    for method in ("gps", "fps"):
        idx = sample_points(x, 512, method)[0]
        assert len(set(idx.tolist())) == 512
        density[method] = on_bump[idx].float().mean().item() / on_bump.float().mean().item()
    assert density["gps"] > 1.3 and density["gps"] > 1.3 * density["fps"], density  # measured 1.52 vs 0.96


def test_gps_geometry_normals_curvature_and_split():
    rng = np.random.default_rng(2)
    pts, _ = plane(500, rng)
    normals, curvature, _ = local_geometry(torch.from_numpy(pts)[None])
    assert torch.allclose(normals[0, :, 2].abs(), torch.ones(500), atol=1e-4)  # a plane's normal is its z axis
    assert curvature.abs().max() < 1e-5
    s, r = salient_counts(1000, 130, 0.3, 2.0)  # salient share 0.3 at twice the density: 60 of 300, 70 of 700
    assert (s, r) == (60, 70) and s / 300 == pytest.approx(2 * r / 700)


def test_test_time_masks_cover_every_patch():
    for groups, iterations, ratio in ((256, 3, 0.4), (10, 3, 0.2), (7, 1, 0.4)):
        masks = cover_masks(groups, iterations, ratio, torch.Generator().manual_seed(0))
        assert len(masks) == iterations
        assert set(torch.cat(masks).tolist()) == set(range(groups))


def test_masked_reconstruction_loss_falls(trained):
    _, workdir = trained
    rows = [line.split(",") for line in (workdir / "loss.csv").read_text().splitlines()[1:]]
    by_epoch = {}
    for epoch, _, loss, *_ in rows:
        by_epoch.setdefault(int(epoch), []).append(float(loss))
    first, last = np.mean(by_epoch[min(by_epoch)]), np.mean(by_epoch[max(by_epoch)])
    assert len(by_epoch) == 10 and last < 0.5 * first, (first, last)


def test_iterative_reconstruction_moves_a_bump_toward_the_original_surface(trained):
    det, _ = trained
    rng = np.random.default_rng(3)
    before, after = [], []
    for _ in range(3):
        pts, _ = plane(800, rng, bump=0.3)
        r = det.analyse(pts)
        flat = r["normed"][:, 2].median()  # the plane's height after normalization
        centres = r["centres"]
        on_bump = centres[:, :2].norm(dim=-1) < 0.4 * float(r["normed"][:, :2].abs().max())
        inp = (r["patches"] + centres[:, None])[on_bump]
        out = (r["recon"] + centres[:, None])[on_bump]
        before.append(float((inp[..., 2] - flat).abs().mean()))
        after.append(float((out[..., 2] - flat).abs().mean()))
    assert np.mean(after) < 0.7 * np.mean(before), (before, after)


def test_scores_map_every_point_find_the_bump_and_reload_identically(trained, tmp_path):
    det, _ = trained
    rng = np.random.default_rng(4)
    good = [plane_sample(rng, name=f"g{i}") for i in range(3)]
    bad = [plane_sample(rng, bump=0.3, name=f"b{i}") for i in range(3)]
    res = [det.score(s) for s in good + bad]
    assert all(m.shape == (800,) and np.isfinite(m).all() for _, m in res)
    assert min(s for s, _ in res[3:]) > max(s for s, _ in res[:3])
    det.save(tmp_path / "m")
    again = Detector.load(tmp_path / "m", device="cpu")
    for s, (score, amap) in zip(good + bad, res):
        s2, m2 = again.score(s)
        assert s2 == score and np.array_equal(m2, amap)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_pretrains_then_fine_tunes_with_the_tiny_recipe(tmp_path):
    data = write_toy_point_dataset(tmp_path / "pc", shapes=("sphere",), n_points=600, n_good=2, n_anomalous=2)
    quick = ["--set", "imrnet.n_points=128", "--set", "imrnet.groups=8", "--set", "imrnet.repeat=2", "--quiet"]
    pre = tmp_path / "pre"
    r = run("pretrain-detector", "--detector", "imrnet", "--recipe", "imrnet-tiny", "--out", pre,
            "--set", "imrnet.pretrain.shapes=2", "--set", "imrnet.pretrain.train.epochs=1", *quick)
    assert r.exit_code == 0, r.output
    summary = json.loads((pre / "pretrain.json").read_text())
    assert summary["shapes"] == 2 and summary["training"]["epochs"] == 1 and (pre / "model.pt").is_file()
    out = tmp_path / "run"
    r = run("train-detector", "--detector", "imrnet", "--recipe", "imrnet-tiny", "--data", data, "--out", out,
            "--set", f"imrnet.pretrained={pre}", "--set", "imrnet.train.epochs=1", *quick)
    assert r.exit_code == 0, r.output
    runj = json.loads((out / "run.json").read_text())
    assert runj["config"]["dim"] == 32 and runj["config"]["pretrained"] == str(pre)  # the shipped tiny recipe
    assert "| sphere0 |" in r.output
    # a pretrained checkpoint of other sizes is refused with one line
    r = run("train-detector", "--detector", "imrnet", "--recipe", "imrnet-tiny", "--data", data, "--out",
            tmp_path / "r2", "--set", f"imrnet.pretrained={pre}", "--set", "imrnet.dim=16", *quick)
    assert r.exit_code == 2 and "differs from these settings" in r.output and not (tmp_path / "r2").exists()


def test_imrnet_and_its_pretraining_do_not_import_open3d():
    """The GPU machines have no open3d: training, scoring and pretraining must not need it."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "import anomalygen.detectors.imrnet.detector, anomalygen.detectors.imrnet.pretrain\n"
            "from anomalygen.detectors.imrnet.data import ShapeSourceMeshes\n"
            "from anomalygen.shapes.sources import open_source\n"
            "ShapeSourceMeshes(open_source(None), 1, 0)[0]\n"
            "assert 'open3d' not in sys.modules\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("layout", ["shapenet_dir", "real3d_dir"])
def test_fits_and_maps_every_point_on_both_point_layouts(layout, request):
    from anomalygen.io import open_dataset

    ds = open_dataset(request.getfixturevalue(layout))
    cls = ds.classes()[0]
    mini = {**TINY, "n_points": 128, "groups": 8, "patch_points": 8, "compare_points": 8, "repeat": 1,
            "train": {"epochs": 1, "batch_size": 2}}
    det = get_detector("imrnet")(mini, device="cpu").fit(ds.samples(cls, "train"))
    for ref in ds.samples(cls, "test"):
        s = ref.load()
        score, amap = det.score(s)
        assert amap.shape == (len(s.points),) and np.isfinite(score) and np.isfinite(amap).all()
