"""IMRNet's training loss (Eq. 12): Chamfer-L2 between the predicted and the true masked patches.

`masked_chamfer_loss` is module-level (DDP pickles it); the detector binds its settings with
functools.partial. A batch carries each cloud's thinned points and the indices of its patch
centres, both drawn in the DataLoader workers (data.py). Masks and centre jitter draw from
torch's global RNG, which the shared loop seeds per epoch, so a resumed run draws the same masks.
"""

from __future__ import annotations

import torch
from torch import nn

from anomalygen.detectors.common.points import chamfer_distance
from anomalygen.detectors.imrnet.patches import patches_at


def random_masks(batch: int, groups: int, masked: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,masked) indices of distinct patches per row, uniformly drawn."""
    keys = torch.rand(batch, groups, generator=generator, device="cpu").to(device)
    return keys.argsort(dim=1)[:, :masked]


def masked_count(groups: int, mask_ratio: float) -> int:
    return min(groups - 1, max(1, round(mask_ratio * groups)))


def masked_chamfer_loss(network: nn.Module, batch: dict, *, groups: int, patch_points: int, mask_ratio: float,
                        centre_jitter: float) -> dict:
    """loss: mean Chamfer-L2 of the masked patches (Eq. 12); jitter moves each masked token's centre
    by N(0, centre_jitter^2) per axis and the target is the true patch seen from the moved centre."""
    points = batch["points"]
    with torch.no_grad():
        centres, patches = patches_at(points, batch["centres"], patch_points)
    b = points.shape[0]
    masked = random_masks(b, groups, masked_count(groups, mask_ratio), points.device)
    m_centres = torch.gather(centres, 1, masked.unsqueeze(-1).expand(-1, -1, 3))
    target = torch.gather(patches, 1, masked.view(b, -1, 1, 1).expand(-1, -1, patch_points, 3))
    moved = m_centres
    if centre_jitter > 0:
        moved = m_centres + centre_jitter * torch.randn(m_centres.shape, device="cpu").to(m_centres)
        target = target + (m_centres - moved).unsqueeze(2)
    pred = network(centres, patches, masked, moved)
    k = patch_points
    loss = chamfer_distance(pred.reshape(-1, k, 3), target.reshape(-1, k, 3), "l2").mean()
    return {"loss": loss}
