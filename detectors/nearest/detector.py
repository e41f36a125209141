"""`nearest`: the trivial baseline every detector table carries.

A test point's (or valid pixel's) score is its distance to the nearest point of the whole
training split, in the coordinates the data comes in (no normalization beyond what the
files hold). It learns nothing: if it scores as well as a learned detector, the benchmark
measures the data (shared poses, identical parts), not the detector.

Point clouds: every point of every training cloud goes into one KD-tree (scipy's cKDTree);
the map is each test point's distance to it. Organized clouds: the valid pixels (xyz not all
zero) of every training scan go into the tree; an invalid test pixel scores 0. The object
score is the map's maximum. What is saved is the training points (a float32 .npy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from anomalygen.detectors.base import Detector
from anomalygen.detectors.data import iterate_samples
from anomalygen.detectors.progress import progress_bar
from anomalygen.detectors.settings import as_section, bounded, from_section
from anomalygen.errors import AnomalygenError
from anomalygen.io.samples import ImageSample

POINTS_FILE = "train_points.npy"


@dataclass
class NearestSettings:
    """The recipe's `nearest` section."""

    seed: int = bounded(0, 0, 2**63 - 1)
    # A training split above this many points is thinned to it by a seeded random draw (memory and
    # tree size stay bounded for long MVTec 3D-AD train splits; 4 Anomaly-ShapeNet clouds never reach it).
    max_train_points: int = bounded(4_000_000, 1, 10**9)

    @classmethod
    def from_dict(cls, given: dict) -> "NearestSettings":
        return from_section(cls, given, "nearest")


def _valid_points(sample) -> np.ndarray:
    """(M,3) float64 points of a sample: every point of a cloud, the valid pixels of a scan."""
    if isinstance(sample, ImageSample):
        xyz = np.asarray(sample.xyz, np.float64).reshape(-1, 3)
        return xyz[np.any(xyz != 0, axis=1)]
    return np.asarray(sample.points, np.float64).reshape(-1, 3)


class NearestDetector(Detector):
    name = "nearest"
    kinds = ("points", "images")

    def __init__(self, config: dict | None = None, device="auto"):
        super().__init__(config, device)
        self.settings = NearestSettings.from_dict(self.config)
        self.config = as_section(self.settings)
        self.train_points = np.zeros((0, 3), np.float32)
        self._tree: cKDTree | None = None

    def _fit(self, data, options) -> None:
        bar = progress_bar(options.progress)
        parts = [_valid_points(s) for s in bar(iterate_samples(data, options.loader_workers, self.kind),
                                                desc="store", total=len(data))]
        points = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 3), np.float32)
        if len(points) == 0:
            raise AnomalygenError("nearest: the training samples hold no valid point")
        cap = self.settings.max_train_points
        if len(points) > cap:
            keep = np.sort(np.random.default_rng(self.settings.seed).choice(len(points), cap, replace=False))
            points = points[keep]
        self._set_points(points)

    def _set_points(self, points: np.ndarray) -> None:
        self.train_points = np.ascontiguousarray(points, np.float32)
        self._tree = cKDTree(self.train_points.astype(np.float64))

    def _score(self, sample):
        if isinstance(sample, ImageSample):
            xyz = np.asarray(sample.xyz, np.float64)
            valid = np.any(xyz != 0, axis=-1)
            amap = np.zeros(valid.shape, np.float32)
            if valid.any():
                amap[valid] = self._tree.query(xyz[valid])[0]
        else:
            pts = _valid_points(sample)
            amap = self._tree.query(pts)[0].astype(np.float32) if len(pts) else np.zeros(0, np.float32)
        return (float(amap.max()) if amap.size else 0.0), amap

    def _save_state(self, directory: Path) -> dict:
        np.save(directory / POINTS_FILE, self.train_points)
        return {"train_points": len(self.train_points)}

    def _load_state(self, directory: Path, state: dict) -> None:
        from anomalygen.detectors.stored import load_array

        self._set_points(load_array(directory / POINTS_FILE, "training points file"))

    def description(self) -> str:
        return f"{len(self.train_points)} training points"
