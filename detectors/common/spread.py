"""Map patch scores back onto the input: every point, or every pixel.

- points: each point takes the score of its nearest patch center (nearest-neighbour spreading);
- pixels: a (h,w) patch-score grid is bilinearly upsampled to the image size and smoothed
  with a Gaussian blur, as PatchCore/BTF do (sigma 4 at 224 px in BTF).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from anomalygen.detectors.common.points import float32, knn


@float32
def spread_to_points(points: torch.Tensor, centers: torch.Tensor, center_scores: torch.Tensor, k: int = 1) -> torch.Tensor:
    """(N,) scores: each of `points` (N,3) takes the score of its nearest center (k=1), or the
    inverse-distance weighted mean of its k nearest centers (k>1). On the CPU the neighbours come
    from a KD-tree (scipy's cKDTree: O(N log M) instead of torch's N x M distance blocks)."""
    if centers.device.type == "cpu":
        from scipy.spatial import cKDTree

        c = centers.detach().numpy()
        d_np, i_np = cKDTree(c).query(points.detach().cpu().numpy().astype(c.dtype, copy=False), k=k)
        d = torch.from_numpy(np.asarray(d_np, np.float64).reshape(len(points), k)).to(centers.dtype)
        idx = torch.from_numpy(np.asarray(i_np, np.int64).reshape(len(points), k))
    else:
        d, idx = knn(points.to(centers), centers, k)
    s = center_scores.to(centers)[idx]
    if k == 1:
        return s[:, 0]
    w = 1.0 / (d + 1e-12)
    return (w * s).sum(1) / w.sum(1)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    radius = max(1, int(truncate * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (H,W) or (B,H,W) maps, reflect padding (scipy.ndimage's mode='mirror')."""
    if sigma <= 0:
        return image
    x = image[None] if image.dim() == 2 else image
    k = gaussian_kernel1d(sigma).to(x)
    r = (len(k) - 1) // 2
    x = x[:, None]
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    x = x[:, 0]
    return x[0] if image.dim() == 2 else x


@float32
def spread_to_pixels(grid_scores: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """(h,w) or (B,h,w) patch scores -> (H,W) / (B,H,W) map: bilinear upsampling, then Gaussian blur."""
    x = grid_scores[None] if grid_scores.dim() == 2 else grid_scores
    up = F.interpolate(x[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    up = gaussian_blur(up, sigma)
    return up[0] if grid_scores.dim() == 2 else up


def scaled_sigma(sigma_at_224: float, size: tuple[int, int]) -> float:
    """BTF's sigma=4 is for 224-px maps; keep the same relative smoothing at other sizes."""
    return sigma_at_224 * math.sqrt(size[0] * size[1]) / 224.0
