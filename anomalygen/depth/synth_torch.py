"""Batched DAS3D depth defects (Eq. 1-7) in torch, for GPUs and for on-the-fly training.

The random draws are the numpy ones (`draw_params` on each item's own Generator), so a
batch gives the same defects as `synth.depth_defect` item by item, up to float round-off
(float32 FFT here, float64 FFT there). Kernels of different sizes are zero-padded to the
largest and applied as one batched FFT convolution.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import next_fast_len

from anomalygen.depth.kernels import kernel_radius, skew_normal_kernel
from anomalygen.perlin import perlin_grid_torch
from anomalygen.depth.synth import FFT_EPS, DAS3DConfig, DefectParams


def depth_defect_batch(z, fg, params: list[DefectParams], cfg: DAS3DConfig, scale):
    """z, fg: (B, H, W) tensors; scale: (B,) magnitudes. Returns (z_a, delta, mask uint8, m_t int8), all (B, H, W)."""
    import torch

    dev = z.device
    b, h, w = z.shape
    fgf = fg.to(torch.float32)
    res = torch.tensor([p.res for p in params], dtype=torch.float64)
    off = torch.tensor([p.offset for p in params], dtype=torch.float64)
    perm = torch.as_tensor(np.stack([p.perm for p in params]), device=dev)
    noise = perlin_grid_torch(b, (h, w), res, perm=perm, octaves=cfg.octaves, persistence=cfg.persistence,
                              lacunarity=cfg.lacunarity, offset=off, device=dev)
    m_t = ((noise > cfg.t_p).to(torch.int8) - (noise < -cfg.t_p).to(torch.int8)) * fg.to(torch.int8)
    r = max(kernel_radius(p.sigma) for p in params)
    ks = np.zeros((b, 1, 2 * r + 1, 2 * r + 1), np.float32)
    for i, p in enumerate(params):
        k = skew_normal_kernel(p.sigma, p.alpha)
        ri = (k.shape[0] - 1) // 2
        ks[i, 0, r - ri:r + ri + 1, r - ri:r + ri + 1] = k
    # Eq. 5 as a batched FFT convolution ('same' crop of the full linear convolution)
    kt = torch.as_tensor(ks[:, 0], device=dev)
    # padded to FFT-friendly sizes (2, 3, 5, 7 factors): h + 2r is often 4 x a large prime (292 = 4 x 73)
    fh, fw = next_fast_len(h + 2 * r), next_fast_len(w + 2 * r)
    spec = torch.fft.rfft2(m_t.to(torch.float32), s=(fh, fw)) * torch.fft.rfft2(kt, s=(fh, fw))
    rows = torch.fft.ifft(spec, dim=-2)[:, r:r + h]  # the inverse of rfft2, keeping only the 'same' rows
    delta = torch.fft.irfft(rows, n=fw, dim=-1)[:, :, r:r + w]
    delta = torch.where(delta.abs() < FFT_EPS, torch.zeros_like(delta), delta) * fgf
    pz = torch.tensor([p.p_z for p in params], dtype=torch.float32, device=dev)[:, None, None]
    sc = torch.as_tensor(scale, dtype=torch.float32, device=dev).reshape(b, 1, 1)
    change = pz * sc * delta
    mask = ((change.abs() >= cfg.t_h * sc) & fg.bool() & (delta != 0)).to(torch.uint8)
    return z + change, delta, mask, m_t
