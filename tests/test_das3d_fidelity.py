"""DAS3D as the paper prepares, trains and scores it: one coin for the normal items, Section 4.1's order
(plane removal, then resize), one depth normalization for training and test, scores read on the object only,
and a planted defect scoring above the same scan without it after a short training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomalygen.depth import synthesize
from anomalygen.detectors.das3d.data import DAS3DDataset, prepare
from anomalygen.detectors.das3d.detector import DAS3DDetector
from anomalygen.io import ImageSample
from anomalygen.recipes import get_key, load_recipe
from anomalygen.scans import BackgroundConfig, remove_plane


def box_scene(h: int = 80, w: int = 96, seed: int = 0, side: float = 0.375) -> ImageSample:
    """A tilted support plane at ~0.6 m (red) with a 12 mm-high box on it (green, shaded by a ramp), the box
    spanning `side` of the height and of the width: at 96 x 80 px and side 3/8 every box point stays farther
    than 5 mm from the plane under any DAS3D dent (<= 5 % of 72 mm)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    z = 0.6 + 0.0004 * (xx - w / 2) + 0.0002 * (yy - h / 2)
    box = (np.abs(yy - h / 2) < side * h / 2) & (np.abs(xx - w / 2) < side * w / 2)
    z = np.where(box, z - 0.012 - 0.0001 * rng.random(z.shape), z)
    f = 300.0
    xyz = np.stack([(xx - w / 2) * z / f, (yy - h / 2) * z / f, z], -1).astype(np.float32)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = np.where(box, 0, 255)
    rgb[..., 1] = np.where(box, 120 + (xx / w * 100).astype(np.uint8), 0)
    return ImageSample(xyz=xyz, rgb=rgb, mask=np.zeros((h, w), np.uint8), cls="box", split="train")


def untrained(size: int = 32, **cfg) -> DAS3DDetector:
    """A tiny DAS3D with its initial weights, ready to score (what is tested here does not depend on training)."""
    torch.manual_seed(0)
    det = DAS3DDetector({**get_key(load_recipe("das3d-tiny"), "das3d"), "size": size, **cfg}, device="cpu")
    det.network = det.build_network().eval()
    det.kind, det.fitted = "images", True
    return det


@pytest.mark.parametrize("normal_fraction", [0.5, 0.2])
def test_share_of_items_with_a_defect_is_the_recipes(normal_fraction):
    """One coin: over 1,000 items the share with a non-empty M~* is 1 - normal_fraction within sampling error
    (4 standard errors); Eq. 12's dropout never empties the mask of an item the coin made anomalous."""
    ds = DAS3DDataset([box_scene(seed=s) for s in range(2)], size=32, seed=5, normal_fraction=normal_fraction,
                      repeat=500, foreground="plane")
    with_defect = [bool(ds[(0, i)]["mask"].any()) for i in range(len(ds))]
    want = 1 - normal_fraction
    assert len(with_defect) == 1000
    assert abs(np.mean(with_defect) - want) < 4 * np.sqrt(want * (1 - want) / 1000)


def test_background_plane_is_removed_before_the_resize():
    """Section 4.1's order: the plane goes at the scan's resolution, removed rgb := 0, then the resize. So the
    object's edge blends into black, never into the support's colour (red here), and the foreground at the
    network's size is the scan's foreground resized."""
    s = box_scene()
    xyz, rgb, fg, obj = prepare(s, 32, BackgroundConfig(), "plane")
    assert np.array_equal(obj, remove_plane(s.xyz, BackgroundConfig(), np.random.default_rng(0)))
    assert rgb.shape == (32, 32, 3) and fg.shape == (32, 32) and fg.any()
    assert rgb[..., 0].max() == 0  # no red anywhere: the support was black before the bilinear resize
    ys = ((np.arange(32) + 0.5) * 80 / 32).astype(int)
    xs = ((np.arange(32) + 0.5) * 96 / 32).astype(int)
    assert np.array_equal(fg, obj[ys][:, xs])


def test_training_and_scoring_normalize_depth_by_one_rule():
    """A scan handed to the detector gives the network exactly the input a training item made from it:
    a normal scan, and the synthesized anomalous scan of every training item (whose defect often moves the
    depth range, which a training-only rule would scale differently)."""
    det = untrained(size=32)
    scans = [box_scene(32, 32, seed=s) for s in range(2)]
    rgb_t, depth_t, _, _ = det.inputs(scans[0])
    normal = DAS3DDataset(scans, size=32, seed=1, normal_fraction=1.0, foreground="plane")[(0, 0)]
    assert torch.equal(normal["depth_aug"], depth_t[0]) and torch.equal(normal["rgb_aug"], rgb_t[0])
    assert torch.equal(normal["depth"], depth_t[0])
    ds = DAS3DDataset(scans, size=32, seed=1, dropout=False, repeat=4, foreground="plane")
    moved = 0
    for i in range(len(ds)):
        item = ds[(0, i)]
        xyz, rgb, fg, _ = prepare(scans[i % 2], 32, BackgroundConfig(), "plane")
        syn = synthesize(xyz, rgb, fg, ds.cfg, np.random.default_rng([1, 0, i]), ds.textures)
        rgb_a, depth_a, _, _ = det.inputs(ImageSample(xyz=syn.xyz, rgb=syn.rgb, mask=syn.mask, cls="box", split="test"))
        assert torch.equal(item["depth_aug"], depth_a[0]) and torch.equal(item["rgb_aug"], rgb_a[0])
        zn, za = xyz[..., 2][fg], syn.xyz[..., 2][fg]
        moved += (zn.min(), zn.max()) != (za.min(), za.max())
    assert moved > 0  # the case where a rule fitted to the normal scan differs was exercised


def test_map_is_zero_off_the_object_and_the_score_reads_only_the_object():
    det = untrained(size=32)
    s = box_scene()
    score, amap = det.score(s)
    obj = remove_plane(s.xyz, BackgroundConfig(), np.random.default_rng(0))
    assert amap.shape == obj.shape and (amap[~obj] == 0).all() and (amap[obj] > 0).all()

    class LitOffTheObject(DAS3DDetector):
        """A network certain of an anomaly everywhere but on the object."""

        def anomaly_map(self, rgb, depth):
            return (~self._fg).float()

        def inputs(self, sample):
            out = super().inputs(sample)
            self._fg = out[2]
            return out

    lit = LitOffTheObject(det.config, device="cpu")
    lit.network, lit.kind, lit.fitted = det.network, "images", True
    score, amap = lit.score(s)
    assert score == 0 and not amap.any()


def dome(sample: ImageSample, height: float, radius_px: float) -> ImageSample:
    """The scan with a smooth bump raised `height` metres towards the camera at the object's centre pixel
    (points move along their rays), rgb unchanged: a 3D-only defect."""
    fg = remove_plane(sample.xyz, BackgroundConfig(), np.random.default_rng(0))
    ys, xs = np.nonzero(fg)
    yy, xx = np.mgrid[0:fg.shape[0], 0:fg.shape[1]]
    bump = height * np.exp(-((yy - ys.mean()) ** 2 + (xx - xs.mean()) ** 2) / (2 * radius_px ** 2)) * fg
    z = sample.xyz[..., 2]
    scale = np.where(fg, (z - bump) / np.where(z == 0, 1, z), 1.0)
    return ImageSample(xyz=(sample.xyz * scale[..., None]).astype(np.float32), rgb=sample.rgb,
                       mask=(bump > height * 0.3).astype(np.uint8), cls=sample.cls, split="test", defect="bulge")


def test_a_planted_defect_scores_above_the_same_scan_after_a_short_training():
    """96 steps on a toy set (boxes of three sizes on a tilted plane, 3D only, 32 px): a 4 mm dome on the
    middle of each unseen box raises its object score, on every scan. A discriminator never shown a defect
    (normal_fraction 1) scores both alike, so this fails when training does not teach M~*."""
    torch.set_num_threads(1)
    boxes = [box_scene(seed=s, side=0.375 + 0.03 * (s % 3)) for s in range(16)]
    cfg = {**get_key(load_recipe("das3d-tiny"), "das3d"), "modalities": "3d", "width": 8, "disc_width": 8,
           "repeat": 16, "normal_fraction": 0.2, "score_pool": 3}
    cfg["train"] = {**cfg["train"], "epochs": 8, "batch_size": 8, "lr": 0.005, "seed": 0}
    torch.manual_seed(0)
    det = DAS3DDetector(cfg, device="cpu").fit(boxes[:6])
    for s in boxes[10:]:
        clean, _ = det.score(s)
        planted, _ = det.score(dome(s, 0.004, 10.0))
        assert planted > clean, (clean, planted)
