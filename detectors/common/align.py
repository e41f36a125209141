"""Rigid alignment of one point cloud onto another, in pure torch (CPU or GPU, no open3d).

A detector that compares a sample with a training template position by position (IMRNet's
template regularization, Eq. 19) needs both in one pose. Scans of a class come in their own
poses, so the sample is moved onto the template first: candidate rotations from the principal
axes of both clouds (the 24 proper axis permutations and sign flips, since principal axes carry
no sign and near-equal spreads no order), plus the identity (clouds already in one pose stay
put), each refined by trimmed point-to-point ICP (Kabsch on the nearest-neighbour pairs, the
farthest pairs left out so that a partial view or a defect does not pull the fit), all
candidates at once as one batch; the candidate with the lowest trimmed residual wins.
open3d's ICP is CPU-only and not a dependency of the neural detectors, hence this small loop.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from anomalygen.detectors.common.points import knn

# the identity candidate wins unless another fits clearly better: a cloud already in the template's
# pose keeps it, instead of taking a rotation about a symmetry axis that fits as well within noise
IDENTITY_MARGIN = 0.95


def _nearest(moved: torch.Tensor, target: torch.Tensor, tree=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices (C,N) of the nearest target point of every moved point (C,N,3); on the
    CPU from a KD-tree of the target (scipy's cKDTree), on a GPU by torch's distance blocks."""
    if tree is None:
        dist, idx = knn(moved, target, 1)
        return dist[..., 0], idx[..., 0]
    d, i = tree.query(moved.reshape(-1, 3).numpy())
    shape = moved.shape[:2]
    return torch.from_numpy(np.asarray(d)).reshape(shape).to(moved.dtype), torch.from_numpy(np.asarray(i, np.int64)).reshape(shape)


def proper_axis_permutations() -> torch.Tensor:
    """(24,3,3) the rotations that permute the coordinate axes with sign flips (determinant +1)."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = torch.zeros(3, 3, dtype=torch.float64)
            for row, (col, s) in enumerate(zip(perm, signs)):
                m[row, col] = s
            if torch.det(m) > 0:
                mats.append(m)
    return torch.stack(mats)


def principal_axes(points: torch.Tensor) -> torch.Tensor:
    """(3,3) matrix whose columns are the principal axes of a centred cloud, largest spread first,
    completed to a proper rotation (determinant +1)."""
    cov = points.T @ points / len(points)
    _, vecs = torch.linalg.eigh(cov)
    vecs = vecs.flip(1)
    if torch.det(vecs) < 0:
        vecs[:, 2] = -vecs[:, 2]
    return vecs


def kabsch(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched weighted least-squares rotation R (C,3,3) and translation t (C,3) with R s + t ~ t.
    source, target (C,n,3) paired points; weights (C,n), non-negative."""
    w = weights / weights.sum(1, keepdim=True).clamp_min(1e-12)
    ms = (w.unsqueeze(-1) * source).sum(1)
    mt = (w.unsqueeze(-1) * target).sum(1)
    cov = (w.unsqueeze(-1) * (source - ms.unsqueeze(1))).transpose(1, 2) @ (target - mt.unsqueeze(1))
    u, _, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.det(vh.transpose(1, 2) @ u.transpose(1, 2)))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    rot = vh.transpose(1, 2) @ fix @ u.transpose(1, 2)
    return rot, mt - (rot @ ms.unsqueeze(-1)).squeeze(-1)


def _icp(src: torch.Tensor, tgt: torch.Tensor, rots: torch.Tensor, shifts: torch.Tensor, iterations: int,
         kept: int, tree=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Trimmed ICP from each candidate pose (C,3,3), (C,3); returns the poses and their residuals (C,)."""
    c, n = len(rots), len(src)
    for _ in range(iterations):
        moved = src @ rots.transpose(1, 2) + shifts.unsqueeze(1)                      # (C,N,3)
        dist, idx = _nearest(moved, tgt, tree)
        order = dist.argsort(1)[:, :kept]
        weights = torch.zeros(c, n, dtype=src.dtype, device=src.device).scatter_(1, order, 1.0)
        step_r, step_t = kabsch(moved, tgt[idx], weights)
        rots = step_r @ rots
        shifts = (step_r @ shifts.unsqueeze(-1)).squeeze(-1) + step_t
    dist = _nearest(src @ rots.transpose(1, 2) + shifts.unsqueeze(1), tgt, tree)[0]
    return rots, shifts, dist.sort(1).values[:, :kept].square().mean(1).sqrt()


def rigid_align(source: torch.Tensor, target: torch.Tensor, coarse: int = 8, fine: int = 24, survivors: int = 3,
                keep: float = 0.9) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(R (3,3), t (3,), residual) such that source @ R.T + t lies on target.

    source (N,3), target (M,3): keep them to a few hundred points (a step computes candidates x N x M
    distances). Every candidate runs `coarse` ICP steps, the `survivors` best run `fine` more.
    `keep`: the share of nearest pairs each step fits (trimmed ICP). residual: the root mean square
    distance of the kept pairs after the fit."""
    src, tgt = source.double(), target.double()
    ms, mt = src.mean(0), tgt.mean(0)
    axes = principal_axes(tgt - mt) @ proper_axis_permutations().to(src.device) @ principal_axes(src - ms).T
    rots = torch.cat([torch.eye(3, dtype=torch.float64, device=src.device)[None], axes])  # (C,3,3)
    shifts = mt - (rots @ ms)                                                          # (C,3)
    shifts[0] = 0.0  # the identity candidate keeps the pose the clouds came in
    kept = max(3, int(round(keep * len(src))))
    tree = None
    if src.device.type == "cpu":
        from scipy.spatial import cKDTree

        tree = cKDTree(tgt.numpy())
    rots, shifts, residual = _icp(src, tgt, rots, shifts, coarse, kept, tree)
    best = torch.cat([torch.zeros(1, dtype=torch.long), residual[1:].argsort()[:survivors] + 1])  # identity stays
    rots, shifts, residual = _icp(src, tgt, rots[best], shifts[best], fine, kept, tree)
    i = int(residual[1:].argmin()) + 1
    if residual[0] <= residual[i] / IDENTITY_MARGIN:
        i = 0
    return rots[i].to(source.dtype), shifts[i].to(source.dtype), float(residual[i])
