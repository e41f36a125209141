"""Points of interest of ordered xyz, as an untrained CNN sees them (3DzAL, Sec. 3.2).

An untrained, He-initialized ResNet-50 is fed the ordered cloud (H x W x 3, channels xyz).
The channel sums of its layer3, layer2 and layer1 outputs (14x14, 28x28 and 56x56 at 224 px)
are each normalized to [0, 1], resized to 56x56, averaged and resized to H x W: the soft mask A.
The top `tau` share of A's valid pixels are the points of interest (mask M). Sharp creases,
holes and bumps light up; flat surface does not.

The xyz are fed as they are, in camera coordinates, only divided by the mean distance of the
valid points from the camera (so the same object farther away gives the same mask; centering
them instead would turn the object's extent into a ramp that drowns every local feature, since a
bias-free ReLU network's activations grow with its input's magnitude), and invalid pixels (all zero)
take the value of their nearest valid pixel: otherwise the silhouette, a step to 0, would be the
sharpest feature of every cloud and the mask would trace the outline instead of the surface.
Everything runs batched on the tensors' device; the network is drawn from `seed` alone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from anomalygen.pseudo.resnet import ResNet, resnet50

TAU = 0.001          # top 0.1 % of the points (3DzAL, Sec. 4)
MAP_SIZE = 56        # the layer1 resolution at 224 px, where the three maps are fused
BATCH = 16          # clouds per forward pass (a 224 px cloud holds ~30 MB of activations up to layer3)
SMOOTH = 1 / 16      # sigma of the local mean removed from the input, as a share of the image size
_NETWORKS: dict[tuple[int, str], ResNet] = {}


def random_resnet(seed: int = 0, device: str | torch.device = "cpu") -> ResNet:
    """The untrained ResNet-50 drawn from `seed` (He init), in eval mode; cached per (seed, device)."""
    key = (int(seed), str(device))
    if key not in _NETWORKS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            net = resnet50()
        _NETWORKS[key] = net.to(device).eval()
    return _NETWORKS[key]


def normalized_xyz(xyz: torch.Tensor) -> torch.Tensor:
    """(B,H,W,3) -> (B,3,H,W): xyz divided by the valid points' mean distance from the origin (the
    camera), invalid (all-zero) pixels filled with their nearest valid pixel's value, local mean removed."""
    valid = (xyz != 0).any(-1, keepdim=True).to(xyz.dtype)
    n = valid.sum((1, 2), keepdim=True).clamp_min(1)
    dist = (torch.linalg.norm(xyz, dim=-1, keepdim=True) * valid).sum((1, 2), keepdim=True) / n
    x = (xyz / dist.clamp_min(1e-12)).permute(0, 3, 1, 2)
    m = valid.permute(0, 3, 1, 2)
    return ((x - local_plane(x, m, SMOOTH * max(x.shape[-2:]))) * m).contiguous()


def local_plane(x: torch.Tensor, m: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B,C,H,W): each channel's Gaussian-weighted least-squares plane a + b u + c v over the valid
    pixels (m (B,1,H,W)) around every pixel, evaluated there (normalized convolution; a linear ramp
    is reproduced exactly, also at the silhouette, so only creases, steps and bumps remain)."""
    b, c, h, w = x.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device) / max(h, w),
                          torch.arange(w, dtype=x.dtype, device=x.device) / max(h, w), indexing="ij")
    basis = torch.stack([torch.ones_like(u), u, v])                          # (3,H,W)
    blur = lambda t: gaussian_blur(t.reshape(-1, h, w), sigma).view(t.shape)  # noqa: E731
    gram = blur(m[:, None] * basis[None, :, None] * basis[None, None])       # (B,3,3,H,W)
    rhs = blur((m * x)[:, :, None] * basis[None, None])                      # (B,C,3,H,W)
    gram = gram.permute(0, 3, 4, 1, 2) + 1e-9 * torch.eye(3, dtype=x.dtype, device=x.device)
    coef = torch.linalg.solve(gram[:, None], rhs.permute(0, 1, 3, 4, 2)[..., None])[..., 0]  # (B,C,H,W,3)
    return (coef * basis.permute(1, 2, 0)).sum(-1)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B,H,W) maps, replicate padding (the detectors' blur is a higher stage)."""
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.pad(image[:, None], (radius, radius, 0, 0), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(x, k.view(1, 1, -1, 1))[:, 0]


def _unit(m: torch.Tensor) -> torch.Tensor:
    lo = m.amin((1, 2), keepdim=True)
    hi = m.amax((1, 2), keepdim=True)
    return (m - lo) / (hi - lo).clamp_min(1e-12)


@torch.no_grad()
def soft_mask(xyz, seed: int = 0, device: str | torch.device | None = None) -> torch.Tensor:
    """A: (B,H,W) in [0,1] for ordered clouds (B,H,W,3) (or one (H,W,3) cloud -> (H,W))."""
    x = torch.as_tensor(np.asarray(xyz) if not isinstance(xyz, torch.Tensor) else xyz, dtype=torch.float32)
    single = x.dim() == 3
    x = x[None] if single else x
    if device is not None:
        x = x.to(device)
    h, w = x.shape[1:3]
    net = random_resnet(seed, x.device)
    # the network works at 224 px in the paper; clouds of another size are resized (nearest keeps xyz values)
    inp = F.interpolate(normalized_xyz(x), size=(4 * MAP_SIZE, 4 * MAP_SIZE), mode="nearest")
    l1, l2, l3 = net(inp, depth=3)
    maps = [_unit(f.sum(1)) for f in (l3, l2, l1)]
    fused = torch.stack([F.interpolate(m[:, None], size=(MAP_SIZE, MAP_SIZE), mode="bilinear",
                                       align_corners=False)[:, 0] for m in maps]).mean(0)
    a = F.interpolate(fused[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return a[0] if single else a


def interest_mask(a: torch.Tensor, valid: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """M: the top `tau` share of the valid pixels of A (at least one), (B,H,W) or (H,W) bool."""
    single = a.dim() == 2
    a, valid = (a[None], valid[None]) if single else (a, valid)
    scores = torch.where(valid.bool(), a, torch.full_like(a, -1.0)).flatten(1)
    out = torch.zeros_like(scores, dtype=torch.bool)
    for i in range(len(scores)):
        n_valid = int(valid[i].sum())
        if n_valid == 0:
            continue
        k = max(1, math.ceil(tau * n_valid))
        out[i, scores[i].topk(k).indices] = True
    out = out.view_as(a)
    return out[0] if single else out


def points_of_interest(xyz: np.ndarray, tau: float = TAU, seed: int = 0,
                       device: str | torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(M as (H,W) bool, A as (H,W) float32) of one ordered cloud (H,W,3); or of a batch (B,H,W,3),
    run through the network in batches of `BATCH` on `device`: (B,H,W) each."""
    x = torch.as_tensor(np.asarray(xyz, np.float32))
    if x.dim() == 4 and len(x) > BATCH:
        parts = [points_of_interest(x[i:i + BATCH], tau, seed, device) for i in range(0, len(x), BATCH)]
        return np.concatenate([m for m, _ in parts]), np.concatenate([a for _, a in parts])
    a = soft_mask(x, seed, device)
    m = interest_mask(a, (x != 0).any(-1).to(a.device), tau)
    return m.cpu().numpy(), a.cpu().numpy().astype(np.float32)
