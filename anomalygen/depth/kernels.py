"""The 2-D skew-normal kernel G_s of DAS3D (Eq. 3-4) and the masks around it (Eq. 1, 2, 7).

Eq. 3 (Azzalini & Capitanio): f_s(x; alpha, Sigma) = 2 phi_2(x; 0, Sigma) Phi(alpha^T x).
We evaluate it in standardized coordinates, Phi(alpha^T D^-1 x) with D = diag(sigma), so
alpha ~ U(-0.5, 0.5) skews a 12-pixel kernel as much as a 3-pixel one (the paper's Fig. 4
plots Sigma = I, where both forms agree). Eq. 4 centres the kernel at h/2; we centre it at
(h-1)/2 so the odd-sized kernel has no half-pixel shift. h = 2*ceil(3 sigma) + 1.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage
from scipy.signal import fftconvolve
from scipy.special import ndtr


def kernel_radius(sigma: tuple[float, float]) -> int:
    return int(math.ceil(3.0 * max(sigma)))


def skew_normal_kernel(sigma: tuple[float, float], alpha: tuple[float, float], radius: int | None = None) -> np.ndarray:
    """(h, h) float64 kernel of Eq. 4 with Sigma = diag(sigma^2) (rows, cols), normalized to sum 1 (norm(.) of Eq. 5)."""
    r = kernel_radius(sigma) if radius is None else int(radius)
    t = np.arange(-r, r + 1, dtype=np.float64)
    u = t[:, None] / sigma[0]
    v = t[None, :] / sigma[1]
    phi = np.exp(-0.5 * (u * u + v * v))
    k = 2.0 * phi * ndtr(alpha[0] * u + alpha[1] * v)
    return k / k.sum()


def convolve_full(patch: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """`scipy.signal.fftconvolve(patch, kernel, mode="full")` for 2-D float64 arrays, bit for bit (the same
    transforms, without fftconvolve's argument handling, which costs more than the transforms at this size;
    tests/test_depth_kernels.py checks it)."""
    (ph, pw), (kh, kw) = patch.shape, kernel.shape
    oh, ow = ph + kh - 1, pw + kw - 1
    if kh == 1 or kw == 1 or ph == 1 or pw == 1:  # fftconvolve multiplies along a length-1 axis
        return fftconvolve(patch, kernel, mode="full")
    fh, fw = sp_fft.next_fast_len(oh, True), sp_fft.next_fast_len(ow, True)
    spec = sp_fft.rfft2(patch, (fh, fw))
    spec *= sp_fft.rfft2(kernel, (fh, fw))
    return sp_fft.irfft2(spec, (fh, fw))[:oh, :ow]


def ternary_mask(noise: np.ndarray, t_p: float) -> np.ndarray:
    """Eq. 1: -1 where P < -t_p, +1 where P > t_p, else 0 (int8)."""
    return (noise > t_p).astype(np.int8) - (noise < -t_p).astype(np.int8)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square dilation by `radius` pixels: the support of (kernel * mask) for a (2r+1)^2 kernel."""
    if radius <= 0:
        return mask.astype(bool)
    return ndimage.maximum_filter(mask.astype(bool), size=2 * radius + 1, mode="constant", cval=False)
