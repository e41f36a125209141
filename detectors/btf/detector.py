"""BTF / PatchCore-FPFH: handcrafted FPFH features + a PatchCore memory bank of normal patches.

Point clouds (Anomaly-ShapeNet, Real3D-AD): FPFH on a farthest-point subsample, one bank
entry per subsampled point; a test point's score is its subsample neighbour's distance to
the bank (nearest-neighbour spreading); the object score is PatchCore's reweighted max.

Organized clouds (MVTec 3D-AD): BTF's grid approach. xyz is resized (nearest) to
`image_size`, FPFH is computed on the valid pixels' points and laid back on the grid,
smoothed with a 3x3 mean and pooled to a `feature_grid` x `feature_grid` patch grid; patch
scores are upsampled to the input size and blurred. The features: anomalygen.detectors.btf.features.

FPFH radii are in point spacings (anomalygen.detectors.common.fpfh, the rule zal3d shares): the
median nearest-neighbour distance of the training samples' points where FPFH runs (the FPS
subsample; the prepared grid's valid pixels), fixed at fit time so that test samples are
measured with the same ruler. BTF has no network: what is saved is the memory bank and the spacing.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from anomalygen.errors import RecipeError
from anomalygen.io.samples import ImageSample, PointSample
from anomalygen.detectors.base import Detector
from anomalygen.detectors.btf.features import image_features, point_features, prepare_xyz, subsample
from anomalygen.detectors.common.fpfh import FPFH_DIM, FPFHSettings, saved_spacing, training_spacing
from anomalygen.detectors.common.memory_bank import MemoryBank
from anomalygen.detectors.common.spread import scaled_sigma, spread_to_pixels, spread_to_points
from anomalygen.detectors.data import iterate_samples
from anomalygen.detectors.progress import progress_bar
from anomalygen.detectors.settings import as_section, bounded, from_section

# Defaults apply only when a key is absent; recipes/detectors.yaml holds the shipped values.


@dataclass
class PointSettings:
    """Anomaly-ShapeNet, Real3D-AD: FPFH on a farthest-point subsample."""

    coreset_fraction: float = bounded(0.25, 1e-6, 1.0)
    n_points: int = bounded(2048, 1, 10**7)
    fpfh: FPFHSettings = field(default_factory=lambda: FPFHSettings(normal_radius=2.5, feature_radius=6.0))
    spread_k: int = bounded(1, 1, 10**7)


@dataclass
class BackgroundSettings:
    """BTF's MVTec 3D-AD background removal (anomalygen.scans.BackgroundConfig)."""

    border: float = bounded(0.1, 0.01, 0.5)
    plane_distance: float = bounded(0.005, 0.0, 10.0)
    ransac_iterations: int = bounded(200, 1, 100000)
    dbscan_eps: float = bounded(4.0, 0.1, 1000.0)
    dbscan_min_points: int = bounded(10, 1, 100000)


@dataclass
class ImageSettings:
    """MVTec 3D-AD organized xyz: FPFH on the resized grid, pooled to feature_grid^2 patches."""

    coreset_fraction: float = bounded(0.1, 1e-6, 1.0)
    image_size: int = bounded(224, 1, 10**5)
    feature_grid: int = bounded(28, 1, 10**5)
    fpfh: FPFHSettings = field(default_factory=FPFHSettings)
    blur_sigma: float = bounded(4.0, 0.0, 100.0)
    remove_background: bool = True
    background: BackgroundSettings = field(default_factory=BackgroundSettings)

    def validate(self, prefix: str) -> None:
        if self.feature_grid > self.image_size:
            raise RecipeError(f"{prefix}.feature_grid must not exceed {prefix}.image_size")


@dataclass
class BTFConfig:
    """The recipe's `btf` section."""

    seed: int = bounded(0, 0, 2**63 - 1)
    projection_dim: int = bounded(128, 0, 100000)
    reweight_k: int = bounded(3, 1, 1000)
    points: PointSettings = field(default_factory=PointSettings)
    images: ImageSettings = field(default_factory=ImageSettings)

    @classmethod
    def from_dict(cls, given: dict) -> "BTFConfig":
        return from_section(cls, given, "btf")


class BTFDetector(Detector):
    name = "btf"
    kinds = ("points", "images")
    scores_batches = True

    def __init__(self, config: dict | None = None, device="auto"):
        super().__init__(config, device)
        self.settings = BTFConfig.from_dict(self.config)
        self.config = as_section(self.settings)
        self.spacing = 1.0
        self.bank: MemoryBank | None = None

    def _subsample(self, points: np.ndarray) -> np.ndarray:
        return points[subsample(points, self.settings.points.n_points, self.device)]

    def _prepare_xyz(self, xyz: np.ndarray) -> np.ndarray:
        return prepare_xyz(xyz, self.settings.images, self.settings.seed, upsample=False)

    def _image_features(self, small: np.ndarray) -> torch.Tensor:
        images = self.settings.images
        return image_features(small, images.feature_grid, images.fpfh, self.spacing)

    # -- interface ---------------------------------------------------------------------
    def _fit(self, data, options) -> None:
        """The training clouds where FPFH runs (FPS subsamples; prepared grids), kept in memory (small),
        then their point spacing, because the FPFH radii are measured in it, then the features."""
        bar = progress_bar(options.progress)
        samples = bar(iterate_samples(data, options.loader_workers, self.kind), desc="preprocess", total=len(data))
        if self.kind == "points":
            clouds = [self._subsample(np.asarray(s.points, np.float32)) for s in samples]
            self.spacing = training_spacing(clouds)
            feats = [torch.from_numpy(self.settings.points.fpfh.features(c, self.spacing))
                     for c in bar(clouds, desc="features")]
        else:
            clouds = [self._prepare_xyz(s.xyz) for s in samples]
            self.spacing = training_spacing(x[np.any(x != 0, axis=-1)] for x in clouds)
            feats = [self._image_features(x) for x in bar(clouds, desc="features")]
        feats = torch.cat(feats).to(self.device)
        cfg = self.settings
        self.bank = MemoryBank.fit(feats, getattr(cfg, self.kind).coreset_fraction, cfg.projection_dim, cfg.seed,
                                   cfg.reweight_k)

    def _score(self, sample):
        return self._score_many([sample])[0]

    def _score_many(self, samples):
        """Features per sample (open3d, CPU), then ONE memory-bank search for all their patches."""
        feats, subs = [], []
        for s in samples:
            if isinstance(s, PointSample) and len(s.points) == 0:
                subs.append(np.zeros((0, 3), np.float32))
                feats.append(torch.zeros(0, FPFH_DIM))
            elif isinstance(s, PointSample):
                sub, f = point_features(np.asarray(s.points, np.float32), self.settings.points, self.spacing,
                                        self.device)
                subs.append(sub)
                feats.append(torch.from_numpy(f))
            else:
                assert isinstance(s, ImageSample)
                feats.append(self._image_features(self._prepare_xyz(s.xyz)))
        allf = torch.cat(feats).to(self.device)
        dist, nn_idx = self.bank.patch_scores(allf)
        out, start = [], 0
        for i, s in enumerate(samples):
            n = len(feats[i])
            f, d, j = allf[start:start + n], dist[start:start + n], nn_idx[start:start + n]
            start += n
            if n == 0:
                out.append((0.0, np.zeros(len(s.points), np.float32)))
                continue
            obj = self.bank.object_score(f, d, j)
            if isinstance(s, PointSample):
                pts = torch.as_tensor(np.asarray(s.points, np.float32), device=self.device)
                dense = spread_to_points(pts, torch.from_numpy(subs[i]).to(self.device), d, self.settings.points.spread_k)
                out.append((obj, dense.cpu().numpy()))
            else:
                g = math.isqrt(n)  # feature_grid, or the scan's side when the scan is smaller
                size = tuple(s.xyz.shape[:2])
                amap = spread_to_pixels(d.reshape(g, g), size, scaled_sigma(self.settings.images.blur_sigma, size))
                out.append((obj, amap.cpu().numpy()))
        return out

    def _save_state(self, directory: Path) -> dict:
        self.bank.save(directory / "memory_bank.npy")
        return {"spacing": self.spacing, "bank_size": len(self.bank)}

    def _load_state(self, directory: Path, state: dict) -> None:
        self.spacing = saved_spacing(state, directory)
        self.bank = MemoryBank.load(directory / "memory_bank.npy", self.settings.reweight_k, self.device)
