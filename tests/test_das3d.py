"""DAS3D end to end on a tiny rendered MVTec 3D-AD-layout set (CPU, das3d-tiny): the loss falls, a
reloaded model scores identically, maps have the input's shape, D sees both reconstruction nets'
features, the mask the loss sees is the synthesized M* after Eq. 12, and it all works without open3d."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from anomalygen.builds.render import render_mvtec3d
from anomalygen.depth import augmentation_dropout, synthesize
from anomalygen.detectors import available_detectors, get_detector
from anomalygen.detectors.base import Detector, FitOptions
from anomalygen.detectors.das3d.data import prepare
from anomalygen.detectors.das3d.detector import DAS3DDetector
from anomalygen.detectors.das3d.loss import das3d_loss, focal_loss, ssim
from anomalygen.detectors.das3d.network import DAS3DNetwork
from anomalygen.errors import RecipeError
from anomalygen.io import open_dataset
from anomalygen.recipes import get_key, load_recipe


def tiny_config(**train) -> dict:
    return {**get_key(load_recipe("das3d-tiny"), "das3d"), "train": {**load_recipe("das3d-tiny")["das3d"]["train"], **train}}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """bagel and tire at 32 x 32: 4 train scans each, 2 good and 1 per defect type in test."""
    rec = load_recipe("render-mvtec3d")
    rec.update(size=32, counts={"train": 4, "validation": 0, "test_good": 2, "test_per_defect": 1})
    return render_mvtec3d(tmp_path_factory.mktemp("rendered"), ["bagel", "tire"], rec, 0)


@pytest.fixture(scope="module")
def trained(rendered, tmp_path_factory):
    torch.set_num_threads(1)
    workdir = tmp_path_factory.mktemp("das3d")
    refs = open_dataset(rendered).samples("bagel", "train")
    det = get_detector("das3d")(tiny_config(epochs=6), device="cpu").fit(refs, FitOptions(workdir=workdir, task="bagel"))
    return det, workdir


def test_das3d_is_registered_and_checks_its_settings():
    assert "das3d" in available_detectors()
    with pytest.raises(RecipeError, match="das3d.modalities"):
        DAS3DDetector({"modalities": "depth"})
    with pytest.raises(RecipeError, match="divisible"):
        DAS3DDetector({"size": 48, "depth": 4})
    with pytest.raises(RecipeError, match="score_pool"):
        DAS3DDetector({"score_pool": 20})


def test_loss_falls_and_maps_have_the_input_shape(rendered, trained):
    det, workdir = trained
    rows = (workdir / "loss.csv").read_text().splitlines()
    header, values = rows[0].split(","), [r.split(",") for r in rows[1:]]
    loss = [float(v[header.index("loss")]) for v in values]
    assert {"focal", "rec_depth", "rec_rgb_l2", "rec_rgb_ssim"} <= set(header)
    assert det.training_info["epochs"] == 6 and len(loss) == 6 * 2  # 4 scans x repeat 2 / batch 4
    assert np.mean(loss[-4:]) < 0.8 * np.mean(loss[:4])
    for ref in open_dataset(rendered).samples("bagel", "test")[:3]:
        s = ref.load()
        score, amap = det.score(s)
        assert amap.shape == s.mask.shape and amap.dtype == np.float32 and np.isfinite(score)
        assert 0 <= amap.min() and amap.max() <= 1


def test_saved_model_reloads_and_scores_identically(rendered, trained, tmp_path):
    det, _ = trained
    det.save(tmp_path / "m")
    again = Detector.load(tmp_path / "m", device="cpu")
    assert isinstance(again, DAS3DDetector) and again.config == det.config
    for ref in open_dataset(rendered).samples("bagel", "test")[:3]:
        s = ref.load()
        (a, ma), (b, mb) = det.score(s), again.score(s)
        assert a == b and np.array_equal(ma, mb)


def test_discriminator_sees_both_reconstruction_nets_features():
    torch.manual_seed(0)
    net = DAS3DNetwork("rgb+3d", width=4, depth=2, disc_width=4, disc_depth=2).eval()
    rgb, depth = torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        _, _, feats = net.reconstruct(rgb, depth)
        assert len(feats) == 8  # first two + last two blocks of F_Z, then of F_I
        full = net.discriminator(net.fuse(feats, (32, 32)))
        assert torch.equal(full, net(rgb, depth)["logits"])
        for zeroed in (range(0, 4), range(4, 8)):  # F_Z's features, then F_I's
            feats0 = [torch.zeros_like(f) if i in zeroed else f for i, f in enumerate(feats)]
            assert not torch.allclose(net.discriminator(net.fuse(feats0, (32, 32))), full, atol=1e-6)


def test_the_loss_sees_the_synthesized_mask_after_augmentation_dropout(rendered):
    """Every mask in every training batch equals M* drawn by anomalygen.depth.synthesize for its
    (seed, epoch, index) key, after Eq. 12's dropout (or all zero for an item left normal)."""
    seen = []

    def recording_loss(network, batch):
        for k in range(len(batch["mask"])):
            seen.append((int(batch["index"][k]), batch["mask"][k, 0].numpy().copy(), int(batch["drop_rgb"][k]),
                         int(batch["drop_depth"][k])))
        return das3d_loss(network, batch)

    class Recording(DAS3DDetector):
        def training_loss(self):
            return recording_loss

    det = Recording(tiny_config(epochs=2), device="cpu")
    refs = open_dataset(rendered).samples("tire", "train")
    det.fit(refs)
    syn_recipe = load_recipe("das3d")
    items = det.training_items(refs)
    cfg, c = items.cfg, det.cfg
    assert len(seen) == 2 * len(refs) * c.repeat
    anomalous = 0
    for position, (index, mask, d_i, d_z) in enumerate(seen):
        epoch = position // (len(refs) * c.repeat)  # one process, no workers: batches arrive in order
        xyz, rgb, fg, _ = prepare(refs[index % len(refs)].load(), c.size, items.bg, c.foreground)
        if items.is_normal(epoch, index):
            assert not mask.any()
            continue
        rng = np.random.default_rng([c.train.seed, epoch, index])
        syn = synthesize(xyz, rgb, fg, cfg, rng, items.textures)
        _, _, m_t, e_i, e_z = augmentation_dropout(rgb, syn.rgb, xyz[..., 2], syn.xyz[..., 2], syn.mask, rng, cfg.p_d,
                                                   keep_anomaly=True)
        assert (d_i, d_z) == (e_i, e_z)
        assert np.array_equal(mask, m_t.astype(np.float32))
        assert np.array_equal(mask, syn.mask) and mask.any() and not (d_i and d_z)
        anomalous += 1
    assert anomalous > 0 and get_key(syn_recipe, "dropout.p_d") == cfg.p_d


def test_losses_match_hand_values():
    a = torch.rand(2, 3, 16, 16)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-5)
    assert float(ssim(a, 1 - a)) < 0.5
    logits = torch.zeros(1, 2, 1, 1)  # p = 0.5 for both classes: (1 - 0.5)^2 * log 2
    assert float(focal_loss(logits, torch.ones(1, 1, 1, 1))) == pytest.approx(0.25 * np.log(2), rel=1e-6)
    sure = torch.tensor([[[[-10.0]], [[10.0]]]])
    assert float(focal_loss(sure, torch.ones(1, 1, 1, 1))) < 1e-10


@pytest.mark.parametrize("modalities", ["3d", "rgb"])
def test_single_modality_networks_use_one_reconstruction_net(modalities):
    net = DAS3DNetwork(modalities, width=4, depth=2, disc_width=4, disc_depth=2)
    assert (net.f_z is None) == (modalities == "rgb") and (net.f_i is None) == (modalities == "3d")
    batch = {"rgb": torch.rand(2, 3, 32, 32), "depth": torch.rand(2, 1, 32, 32), "mask": torch.zeros(2, 1, 32, 32)}
    batch.update(rgb_aug=batch["rgb"], depth_aug=batch["depth"])
    parts = das3d_loss(net, batch)
    assert ("rec_depth" in parts) == (modalities == "3d") and ("rec_rgb_l2" in parts) == (modalities == "rgb")


NO_OPEN3D = """
import sys
from pathlib import Path
sys.modules["open3d"] = None  # any `import open3d` now raises ImportError
import anomalygen.detectors.das3d.detector
from anomalygen.detectors.engine import train_detector
from anomalygen.detectors.reports.preview import preview_run
run = train_detector("das3d", sys.argv[1], sys.argv[2], classes="bagel", recipe="das3d-tiny",
                     overrides={"das3d.train.epochs": 1}, device="cpu", progress=False)
row = run["metrics"]["rows"][0]
preview_run(Path(sys.argv[2]), Path(sys.argv[2]) / "preview")
assert sys.modules["open3d"] is None
print("ok", row["task"], row["p_auroc"] is not None, sorted(p.name for p in (Path(sys.argv[2]) / "preview").iterdir()))
"""


def test_trains_evaluates_and_previews_without_open3d(rendered, tmp_path):
    """The GPU machines have no open3d: a whole run (train, score, metrics, previews) must not need it."""
    res = subprocess.run([sys.executable, "-c", NO_OPEN3D, str(rendered), str(tmp_path / "run")], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ok bagel True ['bagel.png']" in res.stdout


def test_cli_trains_das3d_tiny_and_writes_the_metrics(rendered, tmp_path):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "anomalygen.cli", "train-detector", "--detector", "das3d",
                          "--recipe", "das3d-tiny", "--data", str(rendered), "--out", str(out), "--quiet",
                          "--set", "das3d.train.epochs=1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "I-AUROC" in res.stdout or "i_auroc" in res.stdout.lower()
    import json
    metrics = json.loads((out / "metrics.json").read_text())
    assert {r["task"] for r in metrics["rows"]} == {"bagel", "tire"}
    for r in metrics["rows"]:
        assert r["i_auroc"] is not None and r["p_auroc"] is not None and r["aupro"] is not None
        assert r["ms_per_sample"] > 0
    assert (out / "models" / "bagel" / "model.pt").is_file() and (out / "models" / "bagel" / "loss.png").is_file()
