"""IMRNet's point-masked reconstruction network (PMR, Section 4.2, Eqs. 9-11): Point-MAE's backbone.

Pure torch modules, tensors in, tensors out. Patches (relative to their centres) are embedded
by a mini-PointNet; centres by an MLP position embedding added before every transformer
block; visible tokens pass an encoder; the decoder sees the encoded visible tokens followed
by one learned mask token per masked patch and a linear head predicts each masked patch's
k points (Point-MAE: Pang et al., ECCV 2022, whose sizes the defaults follow).
`features` runs every patch visible through encoder and decoder and returns the outputs of
the first decoder blocks: the features IMRNet's dense comparison uses (Eqs. 16-17).
"""

from __future__ import annotations

import torch
from torch import nn


class PointNetEmbedding(nn.Module):
    """Point-MAE's patch embedding: per-point MLP (3->w->2w), max-pool, pooled feature appended to
    every point, MLP (4w->4w->dim), max-pool. (M,k,3) -> (M,dim). Linear layers on the points-last
    layout: the kernel-1 Conv1d of the original, 2-3x faster on CPU."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.first = nn.Sequential(nn.Linear(3, width), nn.LayerNorm(width), nn.GELU(), nn.Linear(width, 2 * width))
        self.second = nn.Sequential(nn.Linear(4 * width, 4 * width), nn.LayerNorm(4 * width), nn.GELU(),
                                    nn.Linear(4 * width, dim))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        f = self.first(patches)
        f = torch.cat([f.max(dim=1, keepdim=True).values.expand_as(f), f], dim=-1)
        return self.second(f).max(dim=1).values


class Blocks(nn.Module):
    """Pre-norm transformer blocks; the position embedding is added to the input of every block
    (Point-MAE). Returns the output of every block."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(depth))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for block in self.blocks:
            x = block(x + pos)
            outs.append(x)
        return outs


class MaskedPointReconstructor(nn.Module):
    """Point-MAE backbone with IMRNet's linear prediction head (Eq. 11).

    forward(centres (B,G,3), patches (B,G,k,3), masked (B,M) indices) -> predictions (B,M,k,3) of the
    masked patches, relative to their centres. Every row masks the same number M of patches."""

    def __init__(self, patch_points: int, dim: int = 384, width: int = 128, depth: int = 12, decoder_depth: int = 4,
                 heads: int = 6):
        super().__init__()
        self.patch_points = patch_points
        self.embed = PointNetEmbedding(dim, width)
        self.pos_encoder = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.pos_decoder = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.encoder = Blocks(dim, depth, heads)
        self.encoder_norm = nn.LayerNorm(dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder = Blocks(dim, decoder_depth, heads)
        self.decoder_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3 * patch_points)

    def _encode(self, centres: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        b, g, k, _ = patches.shape
        tokens = self.embed(patches.reshape(b * g, k, 3)).view(b, g, -1)
        return self.encoder_norm(self.encoder(tokens, self.pos_encoder(centres))[-1])

    def forward(self, centres: torch.Tensor, patches: torch.Tensor, masked: torch.Tensor,
                masked_centres: torch.Tensor | None = None) -> torch.Tensor:
        """masked_centres: where the masked tokens are placed (default: their centres); training may
        move them off the surface so that the head learns to put a patch back onto it."""
        b, g = centres.shape[:2]
        keep = torch.ones(b, g, dtype=torch.bool, device=centres.device)
        keep.scatter_(1, masked, False)
        visible = keep.nonzero()[:, 1].view(b, -1)                      # (B,V), same V in every row
        vis_c = torch.gather(centres, 1, visible.unsqueeze(-1).expand(-1, -1, 3))
        vis_p = torch.gather(patches, 1, visible.view(b, -1, 1, 1).expand(-1, -1, *patches.shape[2:]))
        if masked_centres is None:
            masked_centres = torch.gather(centres, 1, masked.unsqueeze(-1).expand(-1, -1, 3))
        encoded = self._encode(vis_c, vis_p)
        m = masked.shape[1]
        x = torch.cat([encoded, self.mask_token.expand(b, m, -1)], dim=1)
        pos = self.pos_decoder(torch.cat([vis_c, masked_centres], dim=1))
        out = self.decoder_norm(self.decoder(x, pos)[-1][:, -m:])
        return self.head(out).view(b, m, self.patch_points, 3)

    def features(self, centres: torch.Tensor, patches: torch.Tensor, layers: int = 3) -> torch.Tensor:
        """(B,G,layers x dim): the outputs of the first `layers` decoder blocks with every patch visible,
        concatenated (Eq. 17: F = f1 + f2 + f3)."""
        encoded = self._encode(centres, patches)
        outs = self.decoder(encoded, self.pos_decoder(centres))
        return torch.cat(outs[:layers], dim=-1)
