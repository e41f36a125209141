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
        masks = cover_masks(groups, iterations, ratio, torch.Generator().manual_seed(0), batch=3)
        assert len(masks) == iterations
        for row in range(3):  # every draw of a batch covers every patch
            assert set(torch.cat([m[row] for m in masks]).tolist()) == set(range(groups))


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
        cloud = torch.from_numpy(det.canonical(pts))  # normalized, in the template plane's pose
        r = det.analyse(cloud.numpy())
        flat = cloud[:, 2].median()  # the plane's height
        centres, k = r["centres"].reshape(-1, 3), r["patches"].shape[2]  # every draw's centres
        on_bump = centres[:, :2].norm(dim=-1) < 0.4 * float(cloud[:, :2].abs().max())
        inp = (r["patches"].reshape(-1, k, 3) + centres[:, None])[on_bump]
        out = (r["recon"].reshape(-1, k, 3) + centres[:, None])[on_bump]
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


def test_template_regularization_replaces_by_the_corresponding_vector_not_the_nearest_feature(trained):
    from anomalygen.detectors.imrnet.compare import feature_scores, template_patches

    # a hand-made template cloud: a row of points along x; its patch at a centre is its own points there
    template = torch.tensor([[x, 0.0, 0.0] for x in (0.0, 0.1, 1.0, 1.1, 2.0, 2.1)])
    centres = torch.tensor([[[2.05, 0, 0], [0.05, 0, 0], [1.05, 0, 0]]])
    patches = template_patches(centres, template, 2)
    assert torch.allclose(patches.abs(), torch.full((1, 3, 2, 3), 0.05) * torch.tensor([1.0, 0, 0]))
    # hand-made features: the template's vector at each centre is one-hot by position along x
    reference = torch.eye(3)[[2, 0, 1]][None]
    f_in = reference.clone()  # an input that looks like the template everywhere
    # the first reconstruction feature equals the template's vector of ANOTHER position (the nearest-feature
    # rule would keep it and score 1.41); the second is 0.1 off its own (kept); the third is nearest to the
    # vector of another position but far from all (the nearest-feature rule would put e3 there: 1.41)
    f_out = torch.tensor([[[1.0, 0, 0], [1.1, 0, 0], [0.0, 0, 5.0]]])
    a_f = feature_scores(f_in, f_out, reference, threshold=0.5)
    assert a_f[0].tolist() == pytest.approx([0.0, 0.1, 0.0], abs=1e-6)  # replaced, kept, replaced by its own vector
    # in the detector, the template's vector at a centre is the feature of the template's own patch there:
    # the template cloud itself meets its vectors exactly
    det, _ = trained
    res = det.analyse(det.template["cloud"].numpy())
    assert torch.allclose(res["reference"], res["f_in"], atol=1e-5)
    other = det.analyse(det.canonical(plane(800, np.random.default_rng(9), bump=0.3)[0]))
    assert not torch.allclose(other["reference"], other["f_in"], atol=1e-3)


def test_rigid_alignment_undoes_a_rotation_and_keeps_a_shared_pose():
    from anomalygen.detectors.common.align import rigid_align
    from anomalygen.detectors.imrnet.data import random_rotation

    rng = np.random.default_rng(6)
    # an asymmetric part: a box of unequal sides with a bump on one face
    pts = rng.uniform(-1, 1, (3000, 3)) * [1.0, 0.6, 0.3]
    pts[:, 2] += 0.3 * np.exp(-((pts[:, 0] - 0.5) ** 2 + pts[:, 1] ** 2) / 0.05)
    target = torch.from_numpy(pts[:500].astype(np.float32))
    for _ in range(4):  # the same part, another pose, its points shuffled and jittered
        rot = random_rotation(rng)
        src = pts[rng.permutation(500)] + rng.normal(0, 0.005, (500, 3))
        moved = src @ rot.T + rng.normal(0, 0.2, 3)
        r, t, residual = rigid_align(torch.from_numpy(moved.astype(np.float32)), target)
        back = moved @ r.numpy().T + t.numpy()
        assert np.abs(back - src).max() < 0.02, residual
    r, t, _ = rigid_align(torch.from_numpy(pts[500:1000].astype(np.float32)), target)  # other points, same pose
    assert np.abs(r.numpy() - np.eye(3)).max() < 0.1 and np.abs(t.numpy()).max() < 0.1  # within sampling noise


def test_training_items_thin_as_farthest_point_sampling_of_the_pool_did():
    from anomalygen.detectors.common.points import farthest_point_sample, gather
    from anomalygen.detectors.common.pools import draw_pool
    from anomalygen.detectors.imrnet.data import CloudItems
    from anomalygen.detectors.imrnet.patches import CentrePlan, thin

    rng = np.random.default_rng(7)
    clouds = [plane(3000, rng, bump=0.2)[0] for _ in range(2)]
    items = CloudItems(clouds, 512, CentrePlan(32), seed=3, repeat=2)
    for key in ((0, 0), (1, 3)):
        item = items[key]
        pool = draw_pool(clouds[key[1] % 2], 512, np.random.default_rng([3, *key]))
        torch_thin = gather(torch.from_numpy(pool)[None], farthest_point_sample(torch.from_numpy(pool)[None], 512))[0]
        assert torch.equal(item["points"], torch_thin)  # the torch loop on the device picked the same points
        assert item["centres"].shape == (32,) and len(set(item["centres"].tolist())) == 32
    pools = torch.from_numpy(np.stack([draw_pool(c, 512, rng) for c in clouds]))
    assert torch.equal(thin(pools, 512), gather(pools, farthest_point_sample(pools, 512)))  # scoring's batched path


def test_point_score_compares_distinct_input_points_with_the_same_neighbourhood_of_the_reconstruction(trained):
    from anomalygen.detectors.imrnet.compare import point_scores

    rng = np.random.default_rng(5)
    cloud = torch.from_numpy(plane(400, rng)[0])[None]
    centres = cloud[:, :6]
    # a perfect reconstruction that predicts every point twice (overlapping patches) scores 0
    assert point_scores(centres, cloud, torch.cat([cloud, cloud.flip(1)], 1), 16).abs().max() < 1e-10
    # a bump in the input that the reconstruction flattens scores where the bump is
    bumped = cloud.clone()
    near = cloud[0, :, :2].norm(dim=-1) < 0.3
    bumped[0, near, 2] += 0.1
    centre = torch.tensor([[[0.0, 0.0, 0.1], [0.9, 0.9, 0.0]]])
    a_p = point_scores(centre, bumped, cloud, 16)[0]
    assert a_p[0] > 0.005 and a_p[1] < 1e-10
    # the detector compares the distinct points of the thinned input cloud, not the union of its patches
    det, _ = trained
    res = det.analyse(det.canonical(plane(800, rng, bump=0.3)[0]))
    pts = res["points"]
    assert all(len(torch.unique(p, dim=0)) == len(p) for p in pts)
    recon = (res["recon"] + res["centres"].unsqueeze(2)).flatten(1, 2)
    assert torch.allclose(res["a_p"], point_scores(res["centres"], pts, recon, det.cfg.compare_points))


def _small_recipe() -> dict:
    from anomalygen.recipes import builtin_recipes, load_recipe

    return load_recipe(builtin_recipes()["imrnet-small"])["imrnet"]


def test_builtin_backbone_loads_reconstructs_better_than_random_weights_and_scores():
    from anomalygen.detectors.imrnet.data import PretrainItems, ShapeSourceMeshes
    from anomalygen.detectors.imrnet.detector import load_pretrained
    from anomalygen.detectors.imrnet.loss import masked_chamfer_loss
    from anomalygen.shapes.sources import open_source

    cfg = _small_recipe()
    assert cfg["pretrained"] == "builtin"
    det = IMRNetDetector(cfg, device="cpu")
    items = PretrainItems(ShapeSourceMeshes(open_source(None), 4, seed=99), det.cfg.n_points, det.centre_plan(), 99)
    batch = {k: torch.stack([items[(0, i)][k] for i in range(4)]) for k in ("points", "centres")}
    losses = {}
    for name in ("random", "builtin"):
        torch.manual_seed(0)
        network = det.build_network().eval()
        if name == "builtin":
            load_pretrained(network, "builtin")
        with torch.no_grad():
            losses[name] = float(masked_chamfer_loss(network, batch, groups=det.cfg.groups,
                                                     patch_points=det.cfg.patch_points, mask_ratio=det.cfg.mask_ratio,
                                                     centre_jitter=0.0)["loss"])
    assert losses["builtin"] < 0.2 * losses["random"], losses  # shapes it never saw, masked patches predicted
    rng = np.random.default_rng(8)
    quick = {**cfg, "repeat": 1, "score_draws": 1, "train": {**cfg["train"], "epochs": 1}}
    fitted = IMRNetDetector(quick, device="cpu").fit([plane_sample(rng, split="train", name=f"t{i}") for i in range(2)])
    score, amap = fitted.score(plane_sample(rng, bump=0.3))
    assert np.isfinite(score) and amap.shape == (800,) and np.isfinite(amap).all()


def test_pretrain_detector_reproduces_the_first_steps_of_the_builtin_backbone(tmp_path):
    from importlib import resources

    shipped = resources.files("anomalygen.detectors.imrnet") / "pretrained"
    record = json.loads((shipped / "pretrain.json").read_text())
    out = tmp_path / "again"
    # the command and seed the builtin backbone was made with, stopped after its first steps
    r = run("pretrain-detector", "--detector", "imrnet", "--recipe", "imrnet-small", "--out", out, "--quiet",
            "--max-minutes", "0.05", *[a for kv in record["overrides"] for a in ("--set", kv)])
    assert r.exit_code == 0, r.output
    ours = [float(line.split(",")[2]) for line in (out / "loss-pretrain.csv").read_text().splitlines()[1:]]
    theirs = [float(line.split(",")[2]) for line in (shipped / "loss.csv").read_text().splitlines()[1:]]
    n = min(len(ours), 3)
    assert n >= 1 and ours[:n] == pytest.approx(theirs[:n], rel=1e-3)
