"""IMRNet's training items, each thinned to n_points, its patch centres chosen, in the DataLoader
worker that draws it.

- `CloudItems` (fine-tuning): a random pool of POOL x n_points points of one of the class's
  training clouds, already normalized and moved into the template's pose by the detector.
- `PretrainItems` (self-supervised pretraining): a fresh area-uniform sample of one mesh of a
  shape source, randomly rotated and scaled, normalized.

Farthest-point thinning (patches.thin_points: fpsample, compiled) and the centre sampler (GPS:
normals, curvature and their rates for every point) run in the worker, so the training step
receives {"points": (n_points, 3), "centres": (groups,)} and only groups and trains. Every draw
comes from the (seed, epoch, index) rng.
"""

from __future__ import annotations

import numpy as np
import torch

from anomalygen.detectors.common.pools import POOL, draw_pool, normalize
from anomalygen.detectors.imrnet.patches import CentrePlan, thin_points
from anomalygen.detectors.training import EpochItems
from anomalygen.mesh.sampling import sample_surface


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def thinned_item(pool: np.ndarray, n_points: int, plan: CentrePlan, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """{"points": (n_points, 3) float32, "centres": (groups,) int64}: a pool thinned, its centres chosen."""
    points = thin_points(pool, n_points)
    return {"points": torch.from_numpy(points), "centres": torch.from_numpy(plan.choose(points, rng))}


class CloudItems(EpochItems):
    """Item: a random pool of one prepared training cloud, thinned, its centres chosen (thinned_item)."""

    def __init__(self, clouds: list[np.ndarray], n_points: int, plan: CentrePlan, seed: int, repeat: int):
        super().__init__(clouds, seed, repeat)
        self.n_points, self.plan = n_points, plan

    def item(self, cloud: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return thinned_item(draw_pool(cloud, self.n_points, rng), self.n_points, self.plan, rng)


class ShapeSourceMeshes:
    """`count` meshes of a shape source (anomalygen.shapes), round-robin over its classes, each made
    from its own seed on first use and kept (making one costs 30-150 ms; sampling it, less). Each
    DataLoader worker keeps its own."""

    def __init__(self, source, count: int, seed: int):
        self.source, self.count, self.seed = source, count, seed
        self.classes = list(source.classes())
        self._meshes: dict[int, object] = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        if i not in self._meshes:
            cls = self.classes[i % len(self.classes)]
            self._meshes[i] = self.source.mesh(cls, np.random.default_rng([self.seed, i]))
        return self._meshes[i]


class PretrainItems(EpochItems):
    """Item: a fresh area-uniform sample of POOL x n_points points of one mesh, randomly rotated
    (`rotate`), anisotropically scaled by U(1 - scale, 1 + scale) per axis (Point-MAE's scale
    augmentation), normalized, thinned, its centres chosen (thinned_item)."""

    def __init__(self, meshes: ShapeSourceMeshes, n_points: int, plan: CentrePlan, seed: int, rotate: bool = True,
                 scale: float = 0.2):
        super().__init__(meshes, seed, 1)
        self.n_points, self.plan, self.rotate, self.scale = n_points, plan, rotate, scale

    def item(self, mesh, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        points, _ = sample_surface(mesh, POOL * self.n_points, rng)
        if self.rotate:
            points = points @ random_rotation(rng).T
        points = points * rng.uniform(1 - self.scale, 1 + self.scale, size=3)
        return thinned_item(normalize(points.astype(np.float32)), self.n_points, self.plan, rng)
