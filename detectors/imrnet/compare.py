"""IMRNet at test time: iterative mask reconstruction (Algorithm 1) and dense comparison (DFC, Eqs. 13-20).

- `cover_masks`: the masks of the iterations, cyclic windows over one random permutation of
  the patches per cloud, so that together they cover every patch (each window holds at least
  ceil(G / iterations) patches, more when the mask ratio asks for more).
- `iterative_reconstruction`: each iteration predicts its masked patches from the others and
  writes the predictions back in place (Algorithm 1 line 9: P = P_pre + P_vis), so later
  iterations see the repaired patches.
- `point_scores` (Eqs. 13-15): around every centre, the k nearest points of the input cloud
  (distinct points) and the reconstructed points of the same neighbourhood are compared by
  Chamfer-L2, each point matched in the whole other cloud.
- `feature_scores` (Eqs. 16-19): decoder blocks 1-3 features of the input and of the
  reconstruction; a reconstruction feature farther than `threshold` from the template's
  corresponding vector (the template's feature at the same centre: the features of
  `template_patches`, both clouds in one pose) is replaced by that vector (template
  regularization), then the distance input - reconstruction per centre.
"""

from __future__ import annotations

import math

import torch

from anomalygen.detectors.common.points import float32, gather, knn


def cover_masks(groups: int, iterations: int, mask_ratio: float, generator: torch.Generator | None = None,
                batch: int = 1) -> list[torch.Tensor]:
    """`iterations` index tensors (batch, M) whose union is, per row, every one of `groups` patches."""
    m = min(groups, max(math.ceil(groups / iterations), round(mask_ratio * groups)))
    perm = torch.stack([torch.randperm(groups, generator=generator) for _ in range(batch)])
    return [perm[:, (torch.arange(m) + t * m) % groups] for t in range(iterations)]


def iterative_reconstruction(network, centres: torch.Tensor, patches: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
    """(B,G,k,3) patches after each mask (B,M) in turn was predicted from the rest and written back."""
    out = patches.clone()
    b, _, k, _ = patches.shape
    for mask in masks:
        idx = mask.to(patches.device).expand(b, -1)
        pred = network(centres, out, idx)
        out = out.scatter(1, idx.view(b, -1, 1, 1).expand(-1, -1, k, 3), pred.to(out.dtype))  # bf16 under autocast
    return out


@float32
def point_scores(centres: torch.Tensor, inputs: torch.Tensor, outputs: torch.Tensor, k: int) -> torch.Tensor:
    """(B,G) A_p of each centre (Eqs. 13-15): Chamfer-L2 between P_i, the k nearest points of the input
    cloud (distinct points), and P_o, the nearest points of the reconstruction, as many as cover the
    same area (k x M / N: overlapping patches predict each part of the surface M / N times), each
    point matched in the whole other cloud rather than only in the other patch. Both sets then
    cover the same neighbourhood whatever the densities, and a perfect reconstruction scores 0
    (the patch-to-patch Chamfer of unequal neighbourhoods scores their rims instead).
    inputs (B,N,3): the input cloud; outputs (B,M,3): the reconstructed points, absolute."""
    k_out = min(outputs.shape[1], max(k, round(k * outputs.shape[1] / inputs.shape[1])))
    pi = gather(inputs, knn(centres, inputs, k)[1])                     # (B,G,k,3)
    po = gather(outputs, knn(centres, outputs, k_out)[1])               # (B,G,k_out,3)
    d_i = knn(pi.flatten(1, 2), outputs, 1)[0].view(pi.shape[:3])
    d_o = knn(po.flatten(1, 2), inputs, 1)[0].view(po.shape[:3])
    return d_i.square().mean(-1) + d_o.square().mean(-1)


def template_patches(centres: torch.Tensor, template: torch.Tensor, k: int) -> torch.Tensor:
    """(B,G,k,3) the template cloud's (T,3) k nearest points around each of `centres` (B,G,3), relative to
    the centre: the template's patches at the sample's own centres, whose features are the template's
    corresponding vectors (Eq. 19), the sample already moved into the template's pose."""
    ref = template.to(centres).expand(centres.shape[0], -1, -1)
    return gather(ref, knn(centres, ref, k)[1]) - centres.unsqueeze(2)


@float32
def regularize(features: torch.Tensor, reference: torch.Tensor, threshold: float) -> torch.Tensor:
    """Eq. 19: every feature (B,G,D) farther than `threshold` from its corresponding template vector
    (`reference`, (B,G,D)) is replaced by that vector."""
    far = (features - reference).norm(dim=-1, keepdim=True) > threshold
    return torch.where(far, reference, features)


@float32
def feature_scores(f_in: torch.Tensor, f_out: torch.Tensor, reference: torch.Tensor | None = None,
                   threshold: float | None = None) -> torch.Tensor:
    """(B,G) distance between input and (regularized) reconstruction features (Eq. 18)."""
    if reference is not None and threshold is not None:
        f_out = regularize(f_out, reference, threshold)
    return (f_in - f_out).norm(dim=-1)
