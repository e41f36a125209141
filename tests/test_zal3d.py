"""3DzAL detector (detectors/zal3d): its losses, the input perturbation, and a saved model's scores."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from anomalygen.detectors import get_detector
from anomalygen.detectors.base import Detector, FitOptions
from anomalygen.detectors.toydata import write_toy_image_dataset
from anomalygen.detectors.btf.detector import BTFConfig
from anomalygen.detectors.btf.features import image_features
from anomalygen.detectors.common.fpfh import FPFHSettings, point_spacing
from anomalygen.detectors.zal3d.data import ItemSettings, Prepared, ZAL3DItems, normalize_patches
from anomalygen.detectors.zal3d.detector import ZAL3DSettings
from anomalygen.detectors.zal3d.loss import contrastive_loss, disentanglement_loss, normalcy_bce
from anomalygen.detectors.zal3d.network import ZAL3DNetworks, anomaly_probability, perturb
from anomalygen.errors import AnomalygenError
from anomalygen.io import open_dataset
from anomalygen.pseudo import PatchSettings, pseudo_patches
from anomalygen.recipes import load_recipe


def _plane_patches(rng, n, k=32):
    p = rng.uniform(-1, 1, (n, k, 3))
    p[..., 2] = 0.03 * rng.normal(size=(n, k))
    return normalize_patches(p)


def _tiny_set(rng, positives=8, negatives=16, k=32):
    """Normal patches (noisy planes) and pseudo-anomalous ones made by anomalygen.pseudo from a plane."""
    pos = _plane_patches(rng, positives, k)
    plane = _plane_patches(rng, 1, 3000)[0]
    interest = [rng.normal(size=(40, 3)).astype(np.float32) * 0.15 + [0, 0, 0.5]]
    neg = pseudo_patches(plane, interest, positives * negatives, rng, PatchSettings(k=k))
    neg = normalize_patches(np.stack([p["points"] for p in neg])).reshape(positives, negatives, k, 3)
    return torch.from_numpy(pos), torch.from_numpy(neg)


def test_contrastive_loss_falls_on_a_tiny_set():
    torch.manual_seed(0)
    pos, neg = _tiny_set(np.random.default_rng(0))
    net = ZAL3DNetworks(33, width=8, centers=8, group=8)
    opt = torch.optim.Adam(net.features.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        f = net.features(torch.cat([pos, neg.reshape(-1, *neg.shape[2:])]))
        loss = contrastive_loss(f[:len(pos)], f[len(pos):].reshape(*neg.shape[:2], -1), 0.07)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses


def test_contrastive_loss_matches_eq1_by_hand():
    rng = np.random.default_rng(1)
    pos, neg = torch.from_numpy(rng.normal(size=(3, 4))), torch.from_numpy(rng.normal(size=(3, 5, 4)))
    cos = lambda a, b: float(a @ b / (a.norm() * b.norm()))  # noqa: E731
    total = 0.0
    for j in range(3):
        den = sum(np.exp(cos(pos[j], n) / 0.07) for n in neg[j])
        total += -np.mean([np.log(np.exp(cos(pos[j], pos[p]) / 0.07) / den) for p in range(3) if p != j])
    assert float(contrastive_loss(pos, neg, 0.07)) == pytest.approx(total / 3, rel=1e-9)
    a, b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert float(disentanglement_loss(a, b)) == pytest.approx(0.5)
    logits = torch.tensor([[0.0, 0.0], [0.0, np.log(3.0)]])
    assert float(normalcy_bce(logits, torch.tensor([0, 1]))) == pytest.approx(-(np.log(0.5) + np.log(0.75)) / 2)


def test_contrastive_loss_keeps_float32_under_bf16_autocast():
    """Eq. 1's logits reach 1/T = 14: in bf16 (8-bit mantissa) each carries ~3e-3 relative error, so a
    mixed-precision run (CUDA bf16, or CPU autocast) must not compute them in bf16."""
    rng = np.random.default_rng(3)
    pos = torch.from_numpy(rng.normal(size=(16, 33)).astype(np.float32))
    neg = torch.from_numpy(rng.normal(size=(16, 16, 33)).astype(np.float32))
    exact = contrastive_loss(pos, neg, 0.07)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = contrastive_loss(pos, neg, 0.07)
        from_bf16 = contrastive_loss(pos.bfloat16(), neg.bfloat16(), 0.07)  # what a bf16 network hands over
    assert mixed.dtype == torch.float32 and float(mixed) == pytest.approx(float(exact), rel=1e-6)
    assert from_bf16.dtype == torch.float32
    expect = contrastive_loss(pos.bfloat16().float(), neg.bfloat16().float(), 0.07)  # inputs rounded, math in fp32
    assert float(from_bf16) == pytest.approx(float(expect), rel=1e-6)


def test_input_perturbation_lowers_the_predicted_class_softmax():
    """Eq. 8 at the paper's eta = 0.1, on a classifier briefly trained to tell the two kinds apart."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    pos, neg = _tiny_set(np.random.default_rng(2))
    net = ZAL3DNetworks(33, width=8, centers=8, group=8)
    x = torch.cat([pos, neg[:, :1].reshape(-1, *neg.shape[2:])])
    y = torch.cat([torch.zeros(len(pos)), torch.ones(len(pos))]).long()
    opt = torch.optim.Adam(net.classifier.parameters(), lr=3e-3)
    for _ in range(10):
        opt.zero_grad()
        normalcy_bce(net.classifier(x), y).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        p = anomaly_probability(net.classifier, x)
        p_tilde = anomaly_probability(net.classifier, perturb(net.classifier, x, 0.1))
    before, after = torch.maximum(p, 1 - p), torch.where(p >= 0.5, p_tilde, 1 - p_tilde)
    # a first-order step: it lowers the predicted class's softmax on (nearly) every patch; a moved point
    # can change the network's farthest-point centers or neighbour groups, where the gradient says nothing
    assert float((after < before).float().mean()) >= 0.9 and float((before - after).mean()) > 0, (before, after)
    assert torch.equal(perturb(net.classifier, x, 0.0), x)


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return write_toy_image_dataset(tmp_path_factory.mktemp("zal3d") / "data", classes=("dome", "other"), n_train=2,
                                   n_good=1, n_anomalous=1, size=48)


def _tiny_config():
    cfg = load_recipe("zal3d-tiny")["zal3d"]
    return {**cfg, "image_size": 48, "remove_background": False, "train": {**cfg["train"], "epochs": 1}}


def test_a_saved_model_reloads_and_scores_identically(toy_root, tmp_path):
    torch.set_num_threads(1)
    ds = open_dataset(toy_root)
    det = get_detector("zal3d")(_tiny_config(), "cpu")
    det.fit(ds.samples("dome", "train"), FitOptions(irrelevant=ds.samples("other", "train")))
    det.save(tmp_path / "m")
    again = Detector.load(tmp_path / "m", "cpu")
    assert again.description() == det.description() and "FPFH + learned 3D" in det.description()
    for ref in ds.samples("dome", "test"):
        s = ref.load()
        (a, ma), (b, mb) = det.score(s), again.score(s)
        assert a == b and np.array_equal(ma, mb) and ma.shape == s.xyz.shape[:2]


def test_a_short_training_does_not_collapse_e_theta(toy_root):
    """After one epoch on a CPU, E_theta's features of a scan's cells are not all parallel (BatchNorm's running
    statistics lagging the batches gave every cell nearly the same feature: mean pairwise cosine 0.999)."""
    torch.set_num_threads(1)
    ds = open_dataset(toy_root)
    det = get_detector("zal3d")(_tiny_config(), "cpu")
    det.fit(ds.samples("dome", "train"), FitOptions(irrelevant=ds.samples("other", "train")))
    for ref in ds.samples("dome", "test"):
        f = det.cells(det._prepare(ref.load().xyz)).learned
        f = f[f.norm(dim=1) > 0]  # the cells holding points
        n = len(f)
        mean_cos = float(((f @ f.T).sum() - n) / (n * (n - 1)))
        assert n > 50 and mean_cos < 0.9, mean_cos
    # the Table 3 baseline of the same fit: its bank rebuilt from FPFH alone
    assert det.bank.features.shape[1] == 66
    det.cfg = dataclasses.replace(det.cfg, learned_features=False)
    det.fit_bank(det.training_cells(ds.samples("dome", "train")))
    assert det.bank.features.shape[1] == 33 and np.isfinite(det.score(ref.load())[0])


def test_adding_patches_need_task_irrelevant_data(toy_root):
    ds = open_dataset(toy_root)
    det = get_detector("zal3d")(_tiny_config(), "cpu")
    with pytest.raises(AnomalygenError, match="task-irrelevant"):
        det.fit(ds.samples("dome", "train"), FitOptions())


def _grid(rng, size=24, step=0.004):
    """An organized scan: a gently curved sheet at 0.5 m, its outer ring invalid."""
    v, u = np.mgrid[0:size, 0:size] * step
    z = 0.5 - 2.0 * ((u - u.mean()) ** 2 + (v - v.mean()) ** 2) + 1e-5 * rng.normal(size=u.shape)
    xyz = np.stack([u, v, z], -1).astype(np.float32)
    xyz[:2], xyz[:, :2] = 0, 0
    return xyz


def test_an_epoch_covers_every_cell_of_every_training_scan():
    rng = np.random.default_rng(4)
    prepared = [Prepared(_grid(rng), np.zeros((36, 33), np.float32), 4) for _ in range(3)]
    interest = [rng.normal(size=(30, 3)) * 0.002 + [0.05, 0.05, 0.5]]
    items = ZAL3DItems(prepared, interest, ItemSettings(positives=5, negatives=2, patch_points=16,
                                                        kinds=("adding", "removing"), seed=0))
    every = {(s, c) for s, p in enumerate(prepared) for c in p.cells}
    assert len(every) == 3 * 36  # the invalid ring is 2 px: every 4 px cell keeps valid points
    for epoch in (0, 1):
        drawn = [tuple(map(int, pair)) for i in range(len(items)) for pair in items.cells_of(epoch, i)]
        assert set(drawn) == every and len(drawn) == len(items) * 5
        assert len(drawn) - len(set(drawn)) < 5  # only the last item wraps around
    assert not np.array_equal(items.cells_of(0, 0), items.cells_of(1, 0))  # reshuffled per epoch
    item = items[(0, 3)]
    assert item["pos"].shape == (5, 16, 3) and item["neg"].shape == (10, 16, 3) and item["fpfh"].shape == (5, 33)
    # a positive is the patch of its cell: its points are the cell's own and their nearest neighbours
    scan, cell = items.cells_of(0, 3)[0]
    p = prepared[scan]
    cell_points = p.points[p.pixel_cell == cell]
    raw = normalize_patches(p.points[p.tree.query(cell_points.mean(0), k=16)[1]][None])[0]
    assert raw.shape == item["pos"][0].shape


def _rough_grid(rng, size=32, step=0.004):
    """`_grid` with ripples a few point spacings long, where the FPFH radii decide the features."""
    xyz = _grid(rng, size, step)
    v, u = np.mgrid[0:size, 0:size]
    xyz[..., 2] += (0.002 * np.sin(u * 1.3) * np.cos(v * 0.9)).astype(np.float32) * (xyz[..., 2] != 0)
    return xyz


def test_btf_and_zal3d_share_the_fpfh_rule():
    """One FPFHSettings (radii in point spacings) in both detectors' recipes, read by both: given the same
    `fpfh` section, zal3d's FPFH cells are BTF's, at the training data's spacing."""
    assert BTFConfig().images.fpfh == ZAL3DSettings().fpfh == FPFHSettings()
    shipped = load_recipe("detectors")
    assert shipped["btf"]["images"]["fpfh"] == shipped["zal3d"]["fpfh"]
    xyz = _rough_grid(np.random.default_rng(5))
    spacing = point_spacing(xyz[np.any(xyz != 0, axis=-1)])
    assert spacing == pytest.approx(0.004, rel=2e-2)  # the grid's step
    section = {"normal_radius": 2.5, "feature_radius": 6.0}
    zal3d = get_detector("zal3d")({"image_size": 32, "patch_size": 4, "remove_background": False,
                                   "fpfh": section}, "cpu")
    btf = get_detector("btf")({"images": {"image_size": 32, "feature_grid": 8, "remove_background": False,
                                          "fpfh": section}}, "cpu")
    zal3d.spacing = btf.spacing = spacing
    got = zal3d._fpfh(xyz)
    assert torch.equal(got, btf._image_features(xyz))
    assert torch.equal(got, image_features(xyz, 8, FPFHSettings(**section), spacing))
    # the section and the spacing are what decide: other radii, or radii in metres, give other features
    assert not torch.allclose(got, image_features(xyz, 8, FPFHSettings(), spacing), atol=1e-3)
    assert not torch.allclose(got, image_features(xyz, 8, FPFHSettings(**section), 0.01), atol=1e-3)


def test_fpfh_radii_follow_the_point_spacing_not_the_units():
    """The same scan in metres and in millimetres, and the same surface at two resolutions, measured with radii in
    point spacings: the units do not change the features; a neighbourhood holds as many points at either size."""
    rng = np.random.default_rng(6)
    xyz = _grid(rng, 40)
    pts = xyz[np.any(xyz != 0, axis=-1)].astype(np.float64)
    s = FPFHSettings()
    a = s.features(pts, point_spacing(pts), toward=np.zeros(3))
    b = s.features(pts * 1000, point_spacing(pts * 1000), toward=np.zeros(3))
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert point_spacing(np.repeat(pts, 2, axis=0)) == point_spacing(pts)  # a scan resized up repeats points
    half = _grid(rng, 20, step=0.008)
    assert point_spacing(half[np.any(half != 0, axis=-1)]) == pytest.approx(2 * point_spacing(pts), rel=2e-2)
