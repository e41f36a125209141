"""3DzAL's networks: a PointNet++ feature net E_theta and a PointNet++ normalcy classifier C_w on point patches.

Both take (M,K,3) patches (centered, unit RMS radius) and share one architecture: PointNet++'s
single-scale classification net (Qi et al., NeurIPS 2017) at 3DzAL's input resolution (K = 64):
a set-abstraction level (farthest-point centers, their nearest points grouped relative to the
center, a shared MLP, max-pool), a global level (shared MLP on all centers, max-pool) and an MLP
head. Grouping uses k nearest neighbours (pure torch, anomalygen.detectors.common.points)
instead of the CUDA ball query. E_theta outputs a feature vector, C_w two logits (class 1 =
anomalous). Pure modules: tensors in, tensors out.

BatchNorm's running statistics follow the batches with momentum 0.1: after a short training they
still lag the batch statistics the weights were trained with, and E_theta scored in eval mode gave
every cell nearly the same feature (mean pairwise cosine 0.999 after 12 steps; 0.41 for the same
weights in train mode). `precise_batchnorm` re-estimates them once training ends, as the plain
average over training batches.
"""

from __future__ import annotations

import torch
from torch import nn

from anomalygen.detectors.common.points import farthest_point_sample, gather, knn


class PointMLP(nn.Module):
    """Shared per-point MLP (Linear, BatchNorm, ReLU per layer) on (..., C) features."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in sizes[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lin, norm in zip(self.linears, self.norms):
            x = lin(x)
            x = torch.relu(norm(x.reshape(-1, x.shape[-1])).view_as(x))
        return x


class PointNet2(nn.Module):
    """(M,K,3) patches -> (M,out). centers: first-level centers; group: points per center."""

    def __init__(self, out: int, width: int = 32, centers: int = 16, group: int = 16):
        super().__init__()
        self.centers, self.group = centers, group
        self.local = PointMLP([3, width, width, 2 * width])
        self.globl = PointMLP([2 * width + 3, 4 * width, 8 * width])
        self.head = nn.Sequential(nn.Linear(8 * width, 4 * width), nn.BatchNorm1d(4 * width), nn.ReLU(inplace=True),
                                  nn.Linear(4 * width, out))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        k = patches.shape[1]
        g = min(self.centers, k)
        c_idx = farthest_point_sample(patches.detach(), g, start=0)
        centers = gather(patches, c_idx)                                         # (M,g,3)
        _, idx = knn(centers.detach(), patches.detach(), min(self.group, k))     # (M,g,n)
        local = gather(patches, idx) - centers.unsqueeze(2)                      # (M,g,n,3)
        f = self.local(local).max(dim=2).values                                  # (M,g,2w)
        f = self.globl(torch.cat([f, centers], dim=-1)).max(dim=1).values        # (M,8w)
        return self.head(f)


class ZAL3DNetworks(nn.Module):
    """E_theta (`features`, (M,K,3) -> (M,feature_dim)) and C_w (`classifier`, (M,K,3) -> (M,2) logits)."""

    def __init__(self, feature_dim: int = 33, width: int = 32, centers: int = 16, group: int = 16):
        super().__init__()
        self.features = PointNet2(feature_dim, width, centers, group)
        self.classifier = PointNet2(2, width, centers, group)

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features(patches), self.classifier(patches)


def anomaly_probability(classifier: nn.Module, patches: torch.Tensor) -> torch.Tensor:
    """p(x|w): C_w's softmax probability of class 1 (anomalous), (M,)."""
    return torch.softmax(classifier(patches), dim=-1)[:, 1]


def perturb(classifier: nn.Module, patches: torch.Tensor, eta: float) -> torch.Tensor:
    """Eq. 8: x~ = x + eta * (-grad_x log p^(x|w)), p^ = max(p, 1 - p): a step that lowers the softmax
    of the class C_w predicts. Gradients are taken per patch (the classifier must be in eval mode)."""
    if eta == 0:
        return patches
    with torch.enable_grad():
        x = patches.detach().clone().requires_grad_(True)
        log_p = torch.log_softmax(classifier(x), dim=-1)
        log_p_hat = log_p.max(dim=-1).values
        (grad,) = torch.autograd.grad(log_p_hat.sum(), x)
    return (patches - eta * grad).detach()


@torch.no_grad()
def precise_batchnorm(network: nn.Module, batches) -> None:
    """Set every BatchNorm's running mean and variance to their average over `batches` (inputs of
    `network`'s forward, e.g. the training patches; "precise BN", Wu & Johnson 2021), in train mode
    with a cumulative average; the weights are untouched and the mode is restored."""
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    mode, momenta = network.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the plain mean over the batches seen
    network.train()
    try:
        for batch in batches:
            network(batch)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        network.train(mode)
