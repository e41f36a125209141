"""DAS3D's networks (Section 3.3): reconstruction nets F_Z (depth), F_I (RGB) and the discriminator D.

Pure torch modules, tensors in, tensors out. The official code is not public; where the
paper is silent the layout follows DRAEM (Zavrtanik et al., ICCV 2021), which DAS3D builds on:

  Reconstruction  DRAEM's reconstructive subnetwork: an encoder of `depth` + 1 blocks
                  (two 3x3 conv + BatchNorm + ReLU each, widths w, 2w, 4w, 8w, 8w, ...) with
                  2x max-pooling between them, and a mirrored decoder (bilinear 2x upsampling
                  then a block), no skip connections (a skip would copy the defect through),
                  then a 3x3 conv to the image's channels.
  Features        "the first two layer features and last two layer features" of each net:
                  the first two encoder blocks and the last two decoder blocks, upsampled
                  (bilinear) to the input resolution and concatenated over both nets: f_fuse.
  Discriminator   DRAEM's discriminative subnetwork: a UNet (skip connections) of
                  `disc_depth` + 1 encoder blocks over f_fuse, 2 output logits (normal, anomalous).

The input side must be divisible by 2**max(depth, disc_depth).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODALITIES = ("rgb+3d", "3d", "rgb")
PRIOR = 0.01  # the focal loss paper's initial probability of the rare class


def block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + ReLU (DRAEM's block)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def level_widths(width: int, depth: int) -> list[int]:
    """Block widths per resolution level: w, 2w, 4w, 8w, then 8w (DRAEM caps at 8w)."""
    return [width * min(2 ** i, 8) for i in range(depth + 1)]


def upsample(x: torch.Tensor, size) -> torch.Tensor:
    return x if x.shape[-2:] == tuple(size) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Reconstruction(nn.Module):
    """(B,C,H,W) augmented image -> (reconstruction (B,C,H,W), [first two encoder and last two decoder features])."""

    def __init__(self, channels: int, width: int, depth: int):
        super().__init__()
        if depth < 2:
            raise ValueError("a reconstruction net needs depth >= 2 (two encoder and two decoder feature blocks)")
        w = level_widths(width, depth)
        self.encoder = nn.ModuleList([block(channels, w[0])] + [block(w[i - 1], w[i]) for i in range(1, depth + 1)])
        self.decoder = nn.ModuleList([block(w[i + 1], w[i]) for i in reversed(range(depth))])
        self.out = nn.Conv2d(w[0], channels, 3, padding=1)
        self.feature_channels = 2 * w[0] + 2 * w[1]  # encoder blocks 0, 1; decoder blocks at levels 1, 0

    def forward(self, x: torch.Tensor):
        h, enc = x, []
        for i, b in enumerate(self.encoder):
            h = b(h if i == 0 else F.max_pool2d(h, 2))
            enc.append(h)
        dec = []
        for b in self.decoder:
            h = b(F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False))
            dec.append(h)
        return self.out(h), enc[:2] + dec[-2:]


class Discriminator(nn.Module):
    """UNet: (B,C,H,W) fused features -> (B,2,H,W) logits (channel 1: anomalous)."""

    def __init__(self, channels: int, width: int, depth: int):
        super().__init__()
        w = level_widths(width, depth)
        self.encoder = nn.ModuleList([block(channels, w[0])] + [block(w[i - 1], w[i]) for i in range(1, depth + 1)])
        self.up = nn.ModuleList([nn.Sequential(nn.Conv2d(w[i + 1], w[i], 3, padding=1), nn.BatchNorm2d(w[i]),
                                               nn.ReLU(inplace=True)) for i in reversed(range(depth))])
        self.decoder = nn.ModuleList([block(2 * w[i], w[i]) for i in reversed(range(depth))])
        self.out = nn.Conv2d(w[0], 2, 3, padding=1)
        with torch.no_grad():  # focal loss's prior initialization (Lin et al. 2017): P(anomalous) = PRIOR at the start
            self.out.bias.copy_(torch.tensor([0.0, float(np.log(PRIOR / (1 - PRIOR)))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, skips = x, []
        for i, b in enumerate(self.encoder):
            h = b(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        for up, b, skip in zip(self.up, self.decoder, reversed(skips[:-1])):
            h = b(torch.cat([up(F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)), skip], 1))
        return self.out(h)


class DAS3DNetwork(nn.Module):
    """F_Z and/or F_I (by `modalities`) and D over their fused features.

    forward(rgb_aug (B,3,H,W), depth_aug (B,1,H,W)) -> {"rgb": F_I(I~_a) or None, "depth": F_Z(Z~_a) or None,
    "logits": D(f_fuse) (B,2,H,W)}; a modality the network does not use may be passed as None."""

    def __init__(self, modalities: str = "rgb+3d", width: int = 128, depth: int = 4, disc_width: int = 64,
                 disc_depth: int = 5):
        super().__init__()
        if modalities not in MODALITIES:
            raise ValueError(f"modalities must be one of {MODALITIES}, got {modalities!r}")
        self.modalities = modalities
        self.f_z = Reconstruction(1, width, depth) if modalities in ("rgb+3d", "3d") else None
        self.f_i = Reconstruction(3, width, depth) if modalities in ("rgb+3d", "rgb") else None
        channels = sum(n.feature_channels for n in (self.f_z, self.f_i) if n is not None)
        self.discriminator = Discriminator(channels, disc_width, disc_depth)

    def reconstruct(self, rgb_aug: torch.Tensor | None, depth_aug: torch.Tensor | None):
        """(rgb reconstruction, depth reconstruction, feature list): depth's features first, then rgb's."""
        rec_i = rec_z = None
        feats: list[torch.Tensor] = []
        if self.f_z is not None:
            rec_z, fz = self.f_z(depth_aug)
            feats += fz
        if self.f_i is not None:
            rec_i, fi = self.f_i(rgb_aug)
            feats += fi
        return rec_i, rec_z, feats

    @staticmethod
    def fuse(features: list[torch.Tensor], size) -> torch.Tensor:
        """f_fuse: every feature map upsampled to `size` and concatenated over channels."""
        return torch.cat([upsample(f, size) for f in features], dim=1)

    def forward(self, rgb_aug: torch.Tensor | None, depth_aug: torch.Tensor | None) -> dict:
        rec_i, rec_z, feats = self.reconstruct(rgb_aug, depth_aug)
        ref = depth_aug if depth_aug is not None else rgb_aug
        logits = self.discriminator(self.fuse(feats, ref.shape[-2:]))
        return {"rgb": rec_i, "depth": rec_z, "logits": logits}
