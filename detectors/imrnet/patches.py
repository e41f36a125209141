"""IMRNet's point patches (Eqs. 7-8): a cloud thinned evenly to n points, centres chosen by a
sampler (GPS by default; FPS or random for the Table 4 ablation), the k nearest points of each.

Batched on the network's device, used alike by the training loss and by scoring.
"""

from __future__ import annotations

import torch

from anomalygen.detectors.common.gps import sample_points
from anomalygen.detectors.common.points import farthest_point_sample, gather, knn


def thin(pool: torch.Tensor, n_points: int) -> torch.Tensor:
    """(B,P,3) -> (B,n_points,3): farthest-point thinning of a random pool (an even subsample)."""
    if pool.shape[1] == n_points:
        return pool
    return gather(pool, farthest_point_sample(pool, n_points))


def make_patches(points: torch.Tensor, groups: int, patch_points: int, sampler: str = "gps", tau: float = 0.3,
                 ratio: float = 2.0, geometry_k: int = 16,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """points (B,N,3) -> centres (B,G,3) and patches (B,G,k,3) relative to their centres."""
    centres = gather(points, sample_points(points, groups, sampler, tau, ratio, geometry_k, generator))
    _, idx = knn(centres, points, patch_points)
    return centres, gather(points, idx) - centres.unsqueeze(2)
