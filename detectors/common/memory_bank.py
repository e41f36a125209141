"""PatchCore memory bank: greedy coreset subsampling and nearest-neighbour scoring.

Follows PatchCore (Roth et al., CVPR 2022) as BTF (Horwitz & Hoshen, CVPRW 2023) uses it:
  - coreset: greedy k-center selection (= farthest point sampling in feature space),
    on a sparse random projection of the features to `projection_dim` dims for speed;
  - patch score: distance to the nearest bank feature;
  - object score: the largest patch score s*, reweighted by
        w = 1 - exp(s*/sqrt(D)) / sum_{m in N_b(m*)} exp(||m_test* - m|| / sqrt(D))
    where m* is the bank feature nearest to the worst test patch m_test* and N_b(m*)
    its `reweight_k` nearest bank neighbours (m* itself excluded), exactly as BTF's
    code does (the /sqrt(D) keeps exp() finite for high-dimensional features).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from anomalygen.detectors.common.points import farthest_point_sample, float32, knn


@float32
def greedy_coreset(features: torch.Tensor, fraction: float, projection_dim: int | None = 128,
                   seed: int = 0) -> torch.Tensor:
    """Indices of ceil(fraction * N) features chosen by greedy k-center selection.

    The first center is drawn with `seed`; when `projection_dim` is smaller than the feature
    dimension, distances are measured after a Gaussian random projection (Johnson-Lindenstrauss).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"coreset fraction must be in (0, 1], got {fraction}")
    n = features.shape[0]
    m = max(1, math.ceil(fraction * n))
    if m >= n:
        return torch.arange(n, device=features.device)
    gen = torch.Generator().manual_seed(seed)
    x = features.float()
    if projection_dim and projection_dim < x.shape[1]:
        proj = torch.randn(x.shape[1], projection_dim, generator=gen) / math.sqrt(projection_dim)
        x = x @ proj.to(x.device)
    start = int(torch.randint(n, (1,), generator=gen))
    return farthest_point_sample(x, m, start=start)


class MemoryBank:
    """Features of normal patches; scores new patches by their distance to the nearest one."""

    def __init__(self, features: torch.Tensor | None = None, reweight_k: int = 3):
        self.features = features
        self.reweight_k = reweight_k

    @classmethod
    def fit(cls, features: torch.Tensor, fraction: float = 0.1, projection_dim: int | None = 128,
            seed: int = 0, reweight_k: int = 3) -> "MemoryBank":
        idx = greedy_coreset(features, fraction, projection_dim, seed)
        return cls(features[idx].contiguous(), reweight_k)

    def __len__(self) -> int:
        return 0 if self.features is None else int(self.features.shape[0])

    def to(self, device) -> "MemoryBank":
        self.features = self.features.to(device)
        return self

    def patch_scores(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distance to nearest bank feature, its index) per patch; patches (P,D)."""
        d, i = knn(patches.to(self.features), self.features, 1)
        return d[:, 0], i[:, 0]

    def object_score(self, patches: torch.Tensor, dist: torch.Tensor, nn_idx: torch.Tensor) -> float:
        """PatchCore's reweighted object score from the patch scores (see module doc)."""
        s_idx = int(torch.argmax(dist))
        s_star = dist[s_idx]
        k = min(self.reweight_k, len(self))
        if k < 2:
            return float(s_star)
        m_test = patches[s_idx].to(self.features)
        m_star = self.features[nn_idx[s_idx]]
        _, nb = knn(m_star[None], self.features, k)
        d_knn = torch.linalg.norm(m_test[None] - self.features[nb[0, 1:]], dim=1)
        scale = math.sqrt(patches.shape[1])
        w = 1 - torch.exp(s_star / scale) / torch.exp(d_knn / scale).sum()
        return float(w * s_star)

    def score(self, patches: torch.Tensor) -> tuple[float, torch.Tensor]:
        """(reweighted object score, per-patch scores (P,))."""
        dist, idx = self.patch_scores(patches)
        return self.object_score(patches, dist, idx), dist

    def save(self, path: str | Path) -> None:
        from anomalygen.io import atomic_path

        with atomic_path(path) as tmp:
            np.save(tmp, self.features.detach().cpu().numpy())

    @classmethod
    def load(cls, path: str | Path, reweight_k: int = 3, device="cpu") -> "MemoryBank":
        from anomalygen.detectors.stored import load_array

        return cls(torch.from_numpy(load_array(path, "memory bank")).to(device), reweight_k)
