"""DAS3D's network input (Section 4.1): removed depth := the largest remaining depth, depth
scaled to (0, 1) on the foreground, background rgb := 0.

One rule for training and scoring: every network input is scaled by its OWN foreground range
(a training pair's augmented depth Z~_a by Z~_a's range, a test scan by the scan's), so the
network sees at test exactly what it saw in training for the same scan. A training target (the
normal Z that F_Z reconstructs) is scaled with its input's range (`span`), so it lies in the
input's frame and differs from it only where the defect is.
"""

from __future__ import annotations

import numpy as np

from anomalygen.errors import AnomalygenError


def das3d_normalize(z: np.ndarray, fg: np.ndarray, rgb: np.ndarray | None = None,
                    span: tuple[float, float] | None = None):
    """DAS3D input: depth off the foreground := the range's top, min-max scaled to (0, 1) with `span`
    (default: z's own foreground range); rgb off the foreground := 0, scaled to [0, 1].
    Returns (depth float32, rgb float32 | None, (lo, hi))."""
    if span is None:
        if not fg.any():
            raise AnomalygenError("no foreground pixel to normalize")
        zf = z[fg]
        span = (float(zf.min()), float(zf.max()))
    lo, hi = span
    d = np.where(fg, z, hi)
    d = ((d - lo) / max(hi - lo, 1e-9)).astype(np.float32)
    out_rgb = None if rgb is None else (rgb.astype(np.float32) / 255.0) * fg[..., None]
    return d, out_rgb, (lo, hi)
