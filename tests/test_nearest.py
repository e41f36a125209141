"""The `nearest` baseline: distance to the nearest training point, for clouds and organized scans."""

import numpy as np
import pytest

from anomalygen.detectors import get_detector
from anomalygen.detectors.base import Detector
from anomalygen.detectors.toydata import write_toy_image_dataset
from anomalygen.io import GOOD, ImageSample, PointSample, open_dataset
from anomalygen.metrics import image_auroc


def _cloud(rng, n=3000):
    v = rng.normal(size=(n, 3))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _point(points, defect=GOOD, labels=None):
    labels = np.zeros(len(points), np.uint8) if labels is None else labels
    return PointSample(points=points, labels=labels, cls="sphere0", split="test" if defect != GOOD else "train",
                       defect=defect)


def test_a_planted_offset_is_found_and_localized():
    rng = np.random.default_rng(0)
    train = [_point(_cloud(rng)) for _ in range(4)]
    det = get_detector("nearest")({}, device="cpu").fit(train)
    test = _cloud(rng)
    moved = np.linalg.norm(test - test[0], axis=1) < 0.3   # a patch pushed 0.2 outward
    test[moved] *= 1.2
    score, amap = det.score(_point(test, "bulge", moved.astype(np.uint8)))
    good_score, _ = det.score(_point(_cloud(rng)))
    assert score > 0.15 > good_score                 # the offset (0.2) stands out; sampling gaps stay small
    assert amap[moved].min() > amap[~moved].max() * 0.5
    assert np.argmax(amap) in np.flatnonzero(moved)


def test_a_normal_sample_in_the_training_pose_scores_about_zero():
    rng = np.random.default_rng(1)
    clouds = [_cloud(rng) for _ in range(4)]
    det = get_detector("nearest")({}, device="cpu").fit([_point(c) for c in clouds])
    score, amap = det.score(_point(clouds[2]))
    assert score == pytest.approx(0.0, abs=1e-6)
    assert np.all(amap == 0)


def test_a_rotated_normal_sample_is_not_normal_to_nearest():
    # What the baseline measures: position. A pose change alone scores like a defect.
    rng = np.random.default_rng(2)
    clouds = [_cloud(rng) * np.array([1.0, 0.6, 0.3], np.float32) for _ in range(4)]
    det = get_detector("nearest")({}, device="cpu").fit([_point(c) for c in clouds])
    c, s = np.cos(0.7), np.sin(0.7)
    rotated = clouds[0] @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32).T
    assert det.score(_point(rotated))[0] > 5 * det.score(_point(_cloud(rng) * np.array([1.0, 0.6, 0.3])))[0]


def test_organized_scans_score_only_valid_pixels_and_find_the_bump(tmp_path):
    ds = open_dataset(write_toy_image_dataset(tmp_path / "im", n_good=3, n_anomalous=3))
    cls = ds.classes()[0]
    train = [r.load() for r in ds.samples(cls, "train")]
    test = [r.load() for r in ds.samples(cls, "test")]
    det = get_detector("nearest")({}, device="cpu").fit(train)
    res = [det.score(s) for s in test]
    for s, (_, amap) in zip(test, res):
        assert amap.shape == s.xyz.shape[:2]
        assert np.all(amap[~np.any(s.xyz != 0, axis=-1)] == 0)
    assert image_auroc([s.anomalous for s in test], [r[0] for r in res]) >= 0.9


def test_save_and_load_score_the_same(tmp_path):
    rng = np.random.default_rng(3)
    det = get_detector("nearest")({"max_train_points": 5000}, device="cpu").fit([_point(_cloud(rng)) for _ in range(4)])
    assert len(det.train_points) == 5000          # the cap thins the 12,000 training points
    det.save(tmp_path / "m")
    again = Detector.load(tmp_path / "m", device="cpu")
    sample = _point(_cloud(rng))
    assert again.score(sample)[0] == det.score(sample)[0]
