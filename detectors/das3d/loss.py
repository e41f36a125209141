"""DAS3D's training loss (Eq. 9-11, 13): depth L2 + RGB (L2 + SSIM) + focal loss on the mask.

    L = L_recZ(Z, Z~_a) + L_recI(I, I~_a) + L_dis(f_fuse, M~*)                      (Eq. 13)

L2 is the mean squared error (DRAEM's MSELoss). SSIM: Gaussian window 11, sigma 1.5, the
standard constants, loss = 1 - mean SSIM (DRAEM's SSIM loss). Focal loss (Lin et al. 2017)
on the discriminator's 2-class softmax, gamma 2, no class weighting (DRAEM's FocalLoss).
A single-modality network (3D only, RGB only) drops the other reconstruction term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anomalygen.detectors.common.points import float32

SSIM_WINDOW = 11  # DRAEM: SSIM(window_size=11)
SSIM_SIGMA = 1.5
FOCAL_GAMMA = 2.0  # DRAEM: FocalLoss() with gamma 2


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


@float32
def ssim(a: torch.Tensor, b: torch.Tensor, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Mean SSIM of (B,C,H,W) images in [0, 1] (Wang et al. 2004), Gaussian window, zero padding as DRAEM.
    Computed in float32 outside autocast: E[x^2] - E[x]^2 in bf16 loses the variances."""
    return _ssim(a.float(), b.float(), window, sigma)


def _ssim(a: torch.Tensor, b: torch.Tensor, window: int, sigma: float) -> torch.Tensor:
    c = a.shape[1]
    w = _gaussian_window(window, sigma, c, a)
    pad = window // 2
    mu_a, mu_b = F.conv2d(a, w, padding=pad, groups=c), F.conv2d(b, w, padding=pad, groups=c)
    var_a = F.conv2d(a * a, w, padding=pad, groups=c) - mu_a ** 2
    var_b = F.conv2d(b * b, w, padding=pad, groups=c) - mu_b ** 2
    cov = F.conv2d(a * b, w, padding=pad, groups=c) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean()


@float32
def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Mean focal loss of (B,2,H,W) logits against a (B,1,H,W) 0/1 mask: -(1 - p_t)^gamma log p_t."""
    logp = F.log_softmax(logits, dim=1)
    logp_t = logp.gather(1, target.long())
    p_t = logp_t.exp()
    return (-((1 - p_t) ** gamma) * logp_t).mean()


mse = float32(F.mse_loss)  # squared errors of [0, 1] images fall below bf16's resolution near convergence


def das3d_loss(network: nn.Module, batch: dict) -> dict:
    """Eq. 13 on one batch of DAS3DDataset items; the parts are logged beside the total."""
    out = network(batch["rgb_aug"], batch["depth_aug"])
    parts = {"focal": focal_loss(out["logits"], batch["mask"])}
    if out["depth"] is not None:
        parts["rec_depth"] = mse(out["depth"], batch["depth"])
    if out["rgb"] is not None:
        parts["rec_rgb_l2"] = mse(out["rgb"], batch["rgb"])
        parts["rec_rgb_ssim"] = 1 - ssim(out["rgb"], batch["rgb"])
    return {"loss": sum(parts.values()), **parts}
