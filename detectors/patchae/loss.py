"""PatchAE's training loss: Chamfer-L2 between each patch and its reconstruction."""

from __future__ import annotations

import torch
from torch import nn

from anomalygen.detectors.common.points import chamfer_distance


def patch_errors(patches: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """(B,G) Chamfer-L2 distance of each (K,3) patch to its reconstruction (also the anomaly score)."""
    b, g, k, _ = patches.shape
    return chamfer_distance(patches.reshape(b * g, k, 3), recon.reshape(b * g, -1, 3), "l2").view(b, g)


def patch_chamfer_loss(network: nn.Module, batch: dict) -> dict:
    """loss: mean patch error; worst_patch: each cloud's largest patch error, averaged (what scoring sees)."""
    _, patches, recon = network(batch["points"])
    err = patch_errors(patches, recon)
    return {"loss": err.mean(), "worst_patch": err.max(dim=1).values.mean()}
