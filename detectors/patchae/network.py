"""PatchAE's networks: split a cloud into point patches, encode each with a mini-PointNet, decode it back.

Pure torch modules: tensors in, tensors out. A patch is encoded on its own (relative to its
center), so a surface that normal training clouds never showed reconstructs badly wherever
it sits; how many patches a cloud is split into can differ between training and scoring.
"""

from __future__ import annotations

import torch
from torch import nn

from anomalygen.detectors.common.points import farthest_point_sample, gather, group


class SharedMLP(nn.Module):
    """Linear, BatchNorm, ReLU, Linear on every point of (M,K,C) features: PointNet's kernel-1 Conv1d
    written as matrix products on the points-last layout (2-3x faster than Conv1d on CPU)."""

    def __init__(self, c_in: int, hidden: int, c_out: int):
        super().__init__()
        self.inner = nn.Linear(c_in, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.outer = nn.Linear(hidden, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inner(x)
        h = self.norm(h.reshape(-1, h.shape[-1])).view_as(h)
        return self.outer(torch.relu(h))


class PatchEncoder(nn.Module):
    """Mini-PointNet (Point-MAE's patch embedding): a shared per-point MLP, max-pool, the pooled
    feature appended to every point, a second shared MLP, max-pool. (M,K,3) -> (M,latent)."""

    def __init__(self, latent: int, width: int):
        super().__init__()
        self.first = SharedMLP(3, width, 2 * width)
        self.second = SharedMLP(4 * width, 4 * width, latent)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        f = self.first(patches)                                      # (M, K, 2w)
        pooled = f.max(dim=1, keepdim=True).values
        f = torch.cat([pooled.expand_as(f), f], dim=-1)              # (M, K, 4w)
        return self.second(f).max(dim=1).values                      # (M, latent)


class PatchDecoder(nn.Module):
    """MLP from a patch latent to its K points (relative to the patch center). (M,latent) -> (M,K,3)."""

    def __init__(self, latent: int, width: int, patch_points: int):
        super().__init__()
        self.patch_points = patch_points
        self.mlp = nn.Sequential(nn.Linear(latent, 4 * width), nn.ReLU(inplace=True),
                                 nn.Linear(4 * width, 4 * width), nn.ReLU(inplace=True),
                                 nn.Linear(4 * width, patch_points * 3))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.mlp(latent).view(-1, self.patch_points, 3)


class PatchAutoencoder(nn.Module):
    """(B,m,3) normalized point pools -> centers (B,G,3), patches (B,G,K,3), reconstructions (B,G,K,3).

    The pool is thinned to n_points by farthest-point sampling (an even subsample; the pool's
    random order makes its first point random); patches are the K nearest of those points
    around G farthest-point-sampled centers, relative to their center."""

    def __init__(self, n_points: int, n_patches: int, patch_points: int, latent: int, width: int):
        super().__init__()
        self.n_points = n_points
        self.n_patches = n_patches
        self.patch_points = patch_points
        self.encoder = PatchEncoder(latent, width)
        self.decoder = PatchDecoder(latent, width, patch_points)

    def forward(self, pool: torch.Tensor, n_patches: int | None = None):
        points = gather(pool, farthest_point_sample(pool, self.n_points))
        centers, _, patches = group(points, n_patches or self.n_patches, self.patch_points)
        b, g, k, _ = patches.shape
        recon = self.decoder(self.encoder(patches.reshape(b * g, k, 3)))
        return centers, patches, recon.view(b, g, k, 3)
