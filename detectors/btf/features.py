"""BTF's handcrafted features: FPFH where BTF computes it, for both kinds of data.

Point clouds: FPFH on a farthest-point subsample (one feature per subsampled point).
Organized clouds: xyz resized (nearest) to `image_size` (never up, for BTF), background removed, FPFH on the
valid pixels' points laid back on the grid, smoothed with a 3x3 mean and pooled to a
`feature_grid` x `feature_grid` patch grid.

FPFH radii are in point spacings (`spacing`, the training samples' median nearest-neighbour
distance; anomalygen.detectors.common.fpfh) so that every sample is measured with the same ruler.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from anomalygen.detectors.common.fpfh import FPFH_DIM, FPFHSettings
from anomalygen.detectors.common.points import farthest_point_indices, farthest_point_sample
from anomalygen.detectors.settings import as_section
from anomalygen.scans import BackgroundConfig, remove_background

if TYPE_CHECKING:
    from anomalygen.detectors.btf.detector import ImageSettings, PointSettings


def subsample(points: np.ndarray, n_points: int, device: torch.device) -> np.ndarray:
    """Indices of the FPS subsample where features are computed (deterministic: starts at point 0)."""
    n = min(n_points, len(points))
    if device.type == "cpu":
        return farthest_point_indices(points, n, start=0)
    pts = torch.as_tensor(points, dtype=torch.float32, device=device)
    return farthest_point_sample(pts, n, start=0).cpu().numpy()


def point_features(points: np.ndarray, settings: PointSettings, spacing: float,
                   device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(subsampled points (n,3), their FPFH features (n,33)) of a point cloud."""
    sub = points[subsample(points, settings.n_points, device)]
    return sub, settings.fpfh.features(sub, spacing)


def prepare_xyz(xyz: np.ndarray, settings: ImageSettings, seed: int, upsample: bool = True) -> np.ndarray:
    """xyz resized (nearest) to image_size^2, background zeroed as BTF preprocesses MVTec 3D-AD:
    RANSAC plane on the border pixels, points within plane_distance dropped, largest DBSCAN
    cluster kept (anomalygen.scans.remove_background, seeded, deterministic).

    upsample=False keeps a scan smaller than image_size at its own size (the shorter side): nearest
    upsampling repeats every point, and FPFH over neighbourhoods of exact duplicates degenerates
    (a 64 px scan upsampled to 224 gave every patch the same feature: a constant map)."""
    s = settings.image_size if upsample else min(settings.image_size, *np.shape(xyz)[:2])
    t = torch.as_tensor(np.asarray(xyz), dtype=torch.float32).permute(2, 0, 1)[None]
    small = F.interpolate(t, size=(s, s), mode="nearest")[0].permute(1, 2, 0).numpy().copy()
    if settings.remove_background and np.any(small != 0):
        fg = remove_background(small, BackgroundConfig(**as_section(settings.background)), np.random.default_rng(seed))
        small[~fg] = 0
    return small


@lru_cache(maxsize=8)
def pool_matrix(size: int, grid: int) -> torch.Tensor:
    """(grid, size) float32: one axis of BTF's pooling, a 3-wide mean (stride 1, zero padding counted,
    as torch's avg_pool2d(3, 1, 1)) followed by adaptive average pooling to `grid` cells (bins
    [floor(i s / g), ceil((i+1) s / g)), as torch's adaptive_avg_pool2d). Both are linear and act on
    rows and columns separately, so the pair is P X P^T per channel: two small matrix products
    instead of two pooling passes over the 33 x s x s map (~10x less time at 224 -> 28)."""
    box = np.zeros((size, size))
    for y in range(size):
        box[y, max(0, y - 1):min(size, y + 2)] = 1.0 / 3.0
    adaptive = np.zeros((grid, size))
    for i in range(grid):
        a, b = (i * size) // grid, -(-(i + 1) * size // grid)
        adaptive[i, a:b] = 1.0 / (b - a)
    return torch.from_numpy((adaptive @ box).astype(np.float32))


def pool_features(feature_grid: np.ndarray, grid: int) -> torch.Tensor:
    """(G*G, C) patch features of an (s, s, C) per-pixel feature map: the 3x3 mean, then the
    adaptive pool to G x G (equal to F.adaptive_avg_pool2d(F.avg_pool2d(f, 3, 1, 1), G) up to
    float32 rounding; tests/test_detectors_btf.py checks it)."""
    s, c = feature_grid.shape[0], feature_grid.shape[-1]
    p = pool_matrix(s, grid)
    rows = (p @ torch.from_numpy(feature_grid).reshape(s, s * c)).reshape(grid, s, c)
    return torch.matmul(p[None], rows).reshape(grid * grid, c)


def image_features(small: np.ndarray, feature_grid: int, settings: FPFHSettings, spacing: float) -> torch.Tensor:
    """(G*G, 33) patch features of a prepared organized cloud (BTF: FPFH on grid, 3x3 mean, adaptive pool
    to G = feature_grid, or the cloud's side when smaller)."""
    s, g = small.shape[0], min(feature_grid, small.shape[0])
    valid = (small[..., 0] != 0) | (small[..., 1] != 0) | (small[..., 2] != 0)
    grid = np.zeros((s, s, FPFH_DIM), np.float32)
    if valid.sum() >= 3:
        # MVTec xyz is in camera coordinates: orient normals toward the camera at the origin.
        grid[valid] = settings.features(small[valid], spacing, toward=np.zeros(3))
    return pool_features(grid, g)
