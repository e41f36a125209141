"""PatchAE: a point-patch autoencoder trained on normal clouds; reconstruction error is the anomaly score.

The reference neural detector (points only), and a simple baseline: a cloud is normalized
(mean-centered, unit RMS radius) and subsampled to `n_points`; `patches` farthest-point
centers each take their `patch_points` nearest points; a mini-PointNet encodes each patch
to a latent and an MLP decodes it back; training minimizes the Chamfer-L2 distance between
patches and reconstructions (network.py, loss.py, data.py).

Scoring splits the subsample into `score_patches` patches (more than in training, for a
denser map: patches are encoded one by one, so their number is free), takes each patch's
Chamfer error, spreads it to every input point (inverse-distance mean of the `spread_k`
nearest centers) and scores the object by the mean of its `top_fraction` worst patches:
steadier than the single worst patch, still dominated by a local defect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from anomalygen.errors import RecipeError
from anomalygen.detectors.settings import bounded
from anomalygen.detectors.common.spread import spread_to_points
from anomalygen.detectors.neural import NeuralDetector
from anomalygen.detectors.common.pools import PointPoolItems, draw_pool, normalize
from anomalygen.detectors.patchae.loss import patch_chamfer_loss, patch_errors
from anomalygen.detectors.patchae.network import PatchAutoencoder
from anomalygen.detectors.training.config import TrainConfig


def _default_training() -> TrainConfig:
    return TrainConfig(epochs=40, batch_size=8, optimizer="adam", lr=1e-3, milestones=(0.8, 0.9), gamma=0.2)


@dataclass(frozen=True)
class PatchAESettings:
    """The `patchae:` recipe section (recipes/detectors.yaml documents each key)."""

    n_points: int = bounded(1024, 16, 10**6)
    patches: int = bounded(64, 1, 10**5)
    patch_points: int = bounded(32, 2, 4096)
    latent: int = bounded(16, 1, 4096)
    width: int = bounded(32, 1, 4096)
    repeat: int = bounded(16, 1, 10**6)
    score_patches: int = bounded(128, 1, 10**5)
    top_fraction: float = bounded(0.05, 1e-6, 1.0)
    spread_k: int = bounded(3, 1, 64)
    train: TrainConfig = field(default_factory=_default_training)


class PatchAEDetector(NeuralDetector):
    name = "patchae"
    kinds = ("points",)
    settings = PatchAESettings

    def __init__(self, config: dict | None = None, device="auto"):
        super().__init__(config, device)
        c = self.cfg
        for key in ("patch_points", "patches", "score_patches"):
            if getattr(c, key) > c.n_points:
                raise RecipeError(f"patchae.{key} = {getattr(c, key)} exceeds patchae.n_points = {c.n_points}")
        if c.spread_k > c.score_patches:
            raise RecipeError(f"patchae.spread_k = {c.spread_k} exceeds patchae.score_patches = {c.score_patches}")

    # -- training hooks -----------------------------------------------------------------
    def build_network(self) -> PatchAutoencoder:
        c = self.cfg
        return PatchAutoencoder(c.n_points, c.patches, c.patch_points, c.latent, c.width)

    def training_items(self, data) -> PointPoolItems:
        return PointPoolItems(data, self.cfg.n_points, self.cfg.train.seed, self.cfg.repeat)

    def training_loss(self):
        return patch_chamfer_loss

    # -- scoring ------------------------------------------------------------------------
    def _score(self, sample) -> tuple[float, np.ndarray]:
        c = self.cfg
        points = np.asarray(sample.points, np.float32)
        if len(points) == 0:
            return 0.0, np.zeros(0, np.float32)
        normed = normalize(points)
        pool = draw_pool(normed, c.n_points, np.random.default_rng(c.train.seed))
        centers, patches, recon = self.network(torch.from_numpy(pool).to(self.device)[None], c.score_patches)
        errors = patch_errors(patches, recon)[0]
        dense = spread_to_points(torch.from_numpy(normed).to(self.device), centers[0], errors, c.spread_k)
        worst = errors.topk(max(1, round(c.top_fraction * len(errors)))).values
        return float(worst.mean()), dense.cpu().numpy()
