"""IMRNet's point patches (Eqs. 7-8): a cloud thinned evenly to n points, centres chosen by a
sampler (GPS by default; FPS or random for the Table 4 ablation), the k nearest points of each.

Thinning is farthest-point sampling from the pool's first point. Training items thin and choose
their centres in the DataLoader workers (`thin_points`: fpsample's compiled FPS, the same indices
as the torch loop; `CentrePlan.choose`), so the training step only groups and trains; scoring
thins the draws of a sample (`thin`: fpsample per draw on the host, whatever the device) and
chooses their centres as one batch (`make_patches`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from anomalygen.detectors.common.gps import sample_points
from anomalygen.detectors.common.points import farthest_point_indices, gather, knn


def thin_points(pool: np.ndarray, n_points: int) -> np.ndarray:
    """(P,3) -> (n_points,3) float32: farthest-point thinning of a random pool, from its first point."""
    if len(pool) == n_points:
        return np.ascontiguousarray(pool, np.float32)
    return np.ascontiguousarray(pool[farthest_point_indices(pool, n_points, start=0)], np.float32)


def thin(pool: torch.Tensor, n_points: int) -> torch.Tensor:
    """(B,P,3) -> (B,n_points,3): farthest-point thinning of each random pool, from its first point
    (a no-op for pools the loader thinned already). fpsample's compiled FPS on the host for every
    device: the same indices as the torch loop (farthest_point_sample), which on a GPU would launch a
    few small kernels per point picked (~20 k per cloud at 4096 points)."""
    if pool.shape[1] == n_points:
        return pool
    host = pool.detach().float().cpu().numpy()
    return torch.from_numpy(np.stack([thin_points(p, n_points) for p in host])).to(pool.device, pool.dtype)


@dataclass(frozen=True)
class CentrePlan:
    """How a training item's patch centres are chosen (the detector's settings of the same names)."""

    groups: int
    sampler: str = "gps"
    tau: float = 0.3
    ratio: float = 2.0
    geometry_k: int = 16

    def choose(self, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(groups,) int64 indices of the centres of one thinned cloud (n,3); `random` draws from `rng`."""
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        idx = sample_points(torch.from_numpy(points)[None], self.groups, self.sampler, self.tau, self.ratio,
                            self.geometry_k, gen)
        return idx[0].numpy()


def patches_at(points: torch.Tensor, centre_idx: torch.Tensor, patch_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """points (B,N,3), centre indices (B,G) -> centres (B,G,3) and patches (B,G,k,3) relative to their centres."""
    centres = gather(points, centre_idx)
    _, idx = knn(centres, points, patch_points)
    return centres, gather(points, idx) - centres.unsqueeze(2)


def make_patches(points: torch.Tensor, groups: int, patch_points: int, sampler: str = "gps", tau: float = 0.3,
                 ratio: float = 2.0, geometry_k: int = 16,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """points (B,N,3) -> centres (B,G,3) chosen by `sampler` and patches (B,G,k,3) relative to their centres."""
    return patches_at(points, sample_points(points, groups, sampler, tau, ratio, geometry_k, generator), patch_points)
