"""DAS3D's network input (Section 4.1): removed depth := the largest remaining depth, depth
scaled to (0, 1) on the foreground, background rgb := 0."""

from __future__ import annotations

import numpy as np

from anomalygen.errors import AnomalygenError


def das3d_normalize(z: np.ndarray, fg: np.ndarray, rgb: np.ndarray | None = None):
    """DAS3D input: depth off the foreground := max foreground depth, min-max scaled to (0, 1) on the
    foreground; rgb off the foreground := 0, scaled to [0, 1]. Returns (depth float32, rgb float32|None, (lo, hi))."""
    if not fg.any():
        raise AnomalygenError("no foreground pixel to normalize")
    zf = z[fg]
    lo, hi = float(zf.min()), float(zf.max())
    d = np.where(fg, z, hi)
    d = ((d - lo) / max(hi - lo, 1e-9)).astype(np.float32)
    out_rgb = None if rgb is None else (rgb.astype(np.float32) / 255.0) * fg[..., None]
    return d, out_rgb, (lo, hi)
