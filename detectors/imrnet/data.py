"""IMRNet's pretraining items: meshes from a shape source sampled and augmented on the fly
(self-supervised pretraining). Fine-tuning uses the shared point pools of the class's training
clouds (anomalygen.detectors.common.pools.PointPoolItems).

A pool holds POOL x n_points random points; the loss thins it to n_points by farthest-point
sampling on the device (as PatchAE does). Every draw comes from the (seed, epoch, index) rng.
"""

from __future__ import annotations

import numpy as np
import torch

from anomalygen.detectors.common.pools import POOL, normalize
from anomalygen.detectors.training import EpochItems
from anomalygen.mesh.sampling import sample_surface


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


class ShapeSourceMeshes:
    """`count` meshes of a shape source (anomalygen.shapes), round-robin over its classes, each made
    from its own seed on first use and kept (making one costs 30-150 ms; sampling it, less)."""

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
    """Item: {"points": (POOL x n_points, 3)}: a fresh area-uniform sample of one mesh, randomly
    rotated (`rotate`), anisotropically scaled by U(1 - scale, 1 + scale) per axis (Point-MAE's
    scale augmentation), normalized."""

    def __init__(self, meshes: ShapeSourceMeshes, n_points: int, seed: int, rotate: bool = True, scale: float = 0.2):
        super().__init__(meshes, seed, 1)
        self.n_points, self.rotate, self.scale = n_points, rotate, scale

    def item(self, mesh, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        points, _ = sample_surface(mesh, POOL * self.n_points, rng)
        if self.rotate:
            points = points @ random_rotation(rng).T
        points = points * rng.uniform(1 - self.scale, 1 + self.scale, size=3)
        return {"points": torch.from_numpy(normalize(points.astype(np.float32)))}
