"""3DzAL detector (detectors/zal3d): its losses, the input perturbation, and a saved model's scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomalygen.detectors import get_detector
from anomalygen.detectors.base import Detector, FitOptions
from anomalygen.detectors.toydata import write_toy_image_dataset
from anomalygen.detectors.zal3d.data import normalize_patches
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


def test_adding_patches_need_task_irrelevant_data(toy_root):
    ds = open_dataset(toy_root)
    det = get_detector("zal3d")(_tiny_config(), "cpu")
    with pytest.raises(AnomalygenError, match="task-irrelevant"):
        det.fit(ds.samples("dome", "train"), FitOptions())
