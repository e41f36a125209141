"""A point-cloud detector's view of a cloud: normalized, then a random pool of points the network
thins evenly (PatchAE and IMRNet train and score on these).

The network keeps `n_points` of the pool by farthest-point sampling, batched on its device
(random points alone leave uneven patches whose sampling noise drowns small defects; FPS
per item in the loader would cost n_points sequential steps per sample instead of per batch).
Training draws a fresh pool per (epoch, index) key; scoring draws one from the seed, so a
sample always gets the same score.
"""

from __future__ import annotations

import numpy as np
import torch

from anomalygen.detectors.training import EpochItems

POOL = 2  # pool size in multiples of n_points: FPS then keeps every other point on average


def normalize(points: np.ndarray) -> np.ndarray:
    """Centered on the mean, scaled to unit RMS radius: a local defect barely moves either."""
    centered = points - points.mean(axis=0)
    rms = float(np.sqrt(np.mean(np.sum(centered ** 2, axis=1)))) or 1.0
    return (centered / rms).astype(np.float32)


def draw_pool(points: np.ndarray, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """POOL x n_points random points in random order (all of a smaller cloud, padded by random repeats)."""
    size = POOL * n_points
    if len(points) >= size:
        return points[rng.choice(len(points), size, replace=False)]
    return points[rng.permutation(np.r_[np.arange(len(points)), rng.choice(len(points), size - len(points))])]


class PointPoolItems(EpochItems):
    """Item: {"points": (POOL x n_points, 3) float32}, a random pool of one normalized training cloud."""

    def __init__(self, samples, n_points: int, seed: int, repeat: int):
        super().__init__(samples, seed, repeat)
        self.n_points = n_points

    def item(self, sample, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        points = normalize(np.asarray(sample.points, np.float32))
        return {"points": torch.from_numpy(draw_pool(points, self.n_points, rng))}
