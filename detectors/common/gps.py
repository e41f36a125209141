"""Geometry-aware point sampling (GPS, IMRNet Section 4.1, Eqs. 1-6), batched in pure torch.

Every point gets a normal and a curvature from the covariance of its k nearest neighbours
(Eq. 1: the plane fit's normal is the covariance eigenvector of the smallest eigenvalue;
Eq. 2: K = min(l1, l2) / (l1 + l2 + eps) with l1, l2 the two smallest eigenvalues, so a
flat patch scores 0 and an isotropic blob 0.5), then a rate of change: the mean over its
neighbours of |N_i - N_j| / |v_ij| + |K_i - K_j| (Eqs. 3-5; normals are unoriented, so
the closer of N_j and -N_j is used). Points are ranked by that rate (Eq. 6) and the top
`tau` share is "salient": a sample keeps salient points at `ratio` times the density of
the rest (the paper: tau = 0.3, twice the density), each share spread evenly over its
part by farthest-point sampling. No library here computes curvature rates on a batch of
clouds on the GPU (open3d is CPU-only and not a dependency of the neural detectors).
"""

from __future__ import annotations

import numpy as np
import torch

from anomalygen.detectors.common.points import farthest_point_sample, gather, knn

SAMPLERS = ("gps", "fps", "random")


def local_geometry(points: torch.Tensor, k: int = 16, eps: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """points (B,N,3) -> normals (B,N,3), curvature (B,N), neighbour indices (B,N,k) (self first).
    Computed in float32/float64 even under autocast: bf16 covariances would blur flat from curved."""
    with torch.autocast(points.device.type, enabled=False):
        return _local_geometry(points.float(), k, eps)


def _neighbours(points: torch.Tensor, k: int) -> torch.Tensor:
    """(B,N,k) indices of each point's k nearest points (itself first): on the CPU from a KD-tree (scipy's
    cKDTree, O(N log N); torch's N x N distance blocks cost 7x more at 4096 points), else torch."""
    if points.device.type != "cpu":
        return knn(points, points, k)[1]
    from scipy.spatial import cKDTree

    rows = [cKDTree(p).query(p, k=k)[1].reshape(len(p), k) for p in points.detach().numpy()]
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def _local_geometry(points: torch.Tensor, k: int, eps: float):
    idx = _neighbours(points, k)
    neigh = gather(points, idx)                                        # (B,N,k,3)
    centred = neigh - neigh.mean(dim=2, keepdim=True)
    cov = centred.transpose(2, 3) @ centred / k                        # (B,N,3,3)
    evals, evecs = torch.linalg.eigh(cov.double())                     # ascending eigenvalues
    evals = evals.clamp_min(0).to(points.dtype)
    normals = evecs[..., :, 0].to(points.dtype)                        # Eq. 1: least-variance direction
    curvature = evals[..., 0] / (evals[..., 0] + evals[..., 1] + eps)  # Eq. 2
    return normals, curvature, idx


def rate_of_change(points: torch.Tensor, k: int = 16, eps: float = 1e-9) -> torch.Tensor:
    """(B,N) rate of change of normals and curvature around each point (Eqs. 3-5)."""
    points = points.float()
    normals, curvature, idx = local_geometry(points, k, eps)
    idx = idx[..., 1:]                                                 # neighbours without the point itself
    nj = gather(normals, idx)                                          # (B,N,k-1,3)
    ni = normals.unsqueeze(2)
    dn = torch.minimum((ni - nj).norm(dim=-1), (ni + nj).norm(dim=-1))
    dist = (points.unsqueeze(2) - gather(points, idx)).norm(dim=-1)
    r_norm = dn / (dist + 1e-6)                                        # Eq. 3
    kj = torch.gather(curvature.unsqueeze(1).expand(-1, curvature.shape[1], -1), 2, idx)
    r_curv = (curvature.unsqueeze(2) - kj).abs()                       # Eq. 4
    return (r_norm + r_curv).mean(dim=2)                               # Eq. 5


def salient_counts(n_points: int, n: int, tau: float, ratio: float) -> tuple[int, int]:
    """(salient, other) sample sizes: n split so that the salient tau-share is sampled `ratio` times
    as densely as the rest, each at most its part's size."""
    n_sal_pool = max(1, min(n_points - 1, int(tau * n_points)))
    n_sal = round(n * ratio * tau / (ratio * tau + 1 - tau))
    n_sal = max(0, min(n_sal, n_sal_pool, n))
    n_rest = n - n_sal
    if n_rest > n_points - n_sal_pool:  # the rest is too small: take more salient points
        n_rest = n_points - n_sal_pool
        n_sal = n - n_rest
    return n_sal, n_rest


def geometry_aware_sample(points: torch.Tensor, n: int, tau: float = 0.3, ratio: float = 2.0, k: int = 16,
                          start: int = 0) -> torch.Tensor:
    """Indices (B,n) of n of `points` (B,N,3): the top `tau` by rate of change (Eq. 6) sampled `ratio`
    times as densely as the rest, each part thinned evenly by farthest-point sampling."""
    b, num, _ = points.shape
    if not 0 < n <= num:
        raise ValueError(f"cannot sample {n} of {num} points")
    order = rate_of_change(points, min(k, num)).argsort(dim=1, descending=True)  # rank 1 = largest rate
    n_pool = max(1, min(num - 1, int(tau * num)))
    n_sal, n_rest = salient_counts(num, n, tau, ratio)
    parts = []
    for pool_idx, m in ((order[:, :n_pool], n_sal), (order[:, n_pool:], n_rest)):
        if m > 0:
            sub = farthest_point_sample(gather(points, pool_idx), m, start=start)
            parts.append(torch.gather(pool_idx, 1, sub))
    return torch.cat(parts, dim=1)


def sample_points(points: torch.Tensor, n: int, method: str = "gps", tau: float = 0.3, ratio: float = 2.0,
                  k: int = 16, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices (B,n) chosen by `method`: gps (geometry-aware), fps (farthest point) or random
    (a uniform draw without replacement from `generator`): the samplers of IMRNet's Table 4."""
    if method == "gps":
        return geometry_aware_sample(points, n, tau, ratio, k)
    if method == "fps":
        return farthest_point_sample(points, n)
    if method == "random":
        b, num, _ = points.shape
        keys = torch.rand(b, num, generator=generator, device="cpu").to(points.device)
        return keys.argsort(dim=1)[:, :n]
    raise ValueError(f"unknown sampler {method!r}; use one of {', '.join(SAMPLERS)}")
