"""IMRNet at test time: iterative mask reconstruction (Algorithm 1) and dense comparison (DFC, Eqs. 13-20).

- `cover_masks`: the masks of the iterations, cyclic windows over one random permutation of
  the patches, so that together they cover every patch (each window holds at least
  ceil(G / iterations) patches, more when the mask ratio asks for more).
- `iterative_reconstruction`: each iteration predicts its masked patches from the others and
  writes the predictions back in place (Algorithm 1 line 9: P = P_pre + P_vis), so later
  iterations see the repaired patches.
- `point_scores` (Eqs. 13-15): around every centre, the k nearest input points and the k nearest
  reconstructed points are compared by Chamfer-L2.
- `feature_scores` (Eqs. 16-19): decoder blocks 1-3 features of the input and of the reconstruction;
  reconstruction features farther than `threshold` from their nearest template feature are
  replaced by it (template regularization), then the distance input - reconstruction per centre.
"""

from __future__ import annotations

import math

import torch

from anomalygen.detectors.common.points import chamfer_distance, float32, gather, knn


def cover_masks(groups: int, iterations: int, mask_ratio: float, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """`iterations` index tensors (M,) whose union is every one of `groups` patches."""
    m = min(groups, max(math.ceil(groups / iterations), round(mask_ratio * groups)))
    perm = torch.randperm(groups, generator=generator)
    return [perm[(torch.arange(m) + t * m) % groups] for t in range(iterations)]


def iterative_reconstruction(network, centres: torch.Tensor, patches: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
    """(B,G,k,3) patches after each mask in turn was predicted from the rest and written back."""
    out = patches.clone()
    b, _, k, _ = patches.shape
    for mask in masks:
        idx = mask.to(patches.device).unsqueeze(0).expand(b, -1)
        pred = network(centres, out, idx)
        out = out.scatter(1, idx.view(b, -1, 1, 1).expand(-1, -1, k, 3), pred.to(out.dtype))  # bf16 under autocast
    return out


@float32
def point_scores(centres: torch.Tensor, inputs: torch.Tensor, outputs: torch.Tensor, k: int) -> torch.Tensor:
    """(B,G) Chamfer-L2 between the k nearest input points and the k nearest output points of each centre
    (Eqs. 13-15). inputs (B,N,3), outputs (B,M,3) absolute clouds."""
    _, ii = knn(centres, inputs, k)
    _, io = knn(centres, outputs, k)
    b, g = centres.shape[:2]
    pi, po = gather(inputs, ii), gather(outputs, io)
    return chamfer_distance(pi.reshape(b * g, k, 3), po.reshape(b * g, k, 3), "l2").view(b, g)


@float32
def regularize(features: torch.Tensor, template: torch.Tensor, threshold: float) -> torch.Tensor:
    """Eq. 19: every feature (B,G,D) farther than `threshold` from its nearest template feature (T,D) is
    replaced by that template feature."""
    b, g, d = features.shape
    dist, idx = knn(features.reshape(-1, d), template, 1)
    nearest = template[idx[:, 0]].view(b, g, d)
    far = (dist[:, 0] > threshold).view(b, g, 1)
    return torch.where(far, nearest, features)


@float32
def feature_scores(f_in: torch.Tensor, f_out: torch.Tensor, template: torch.Tensor | None = None,
                   threshold: float | None = None) -> torch.Tensor:
    """(B,G) distance between input and (regularized) reconstruction features (Eq. 18)."""
    if template is not None and threshold is not None:
        f_out = regularize(f_out, template, threshold)
    return (f_in - f_out).norm(dim=-1)
