"""Colour ramps shared by the previews.

`score_colors` maps anomaly scores to an inferno-like ramp (black - purple - orange - pale
yellow): dark for normal, bright for anomalous, readable in greyscale too. The dataset
previews and the detector-run previews colour scores with it, so a map looks the same
wherever it is drawn.
"""

from __future__ import annotations

import numpy as np

SCORE_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64)


def score_colors(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scalar values -> (..., 3) uint8 colours on the score ramp, `lo` darkest and `hi` brightest
    (values outside [lo, hi] are clipped)."""
    t = np.clip((np.asarray(values, np.float64) - lo) / max(hi - lo, 1e-12), 0, 1) * (len(SCORE_RAMP) - 1)
    i = np.minimum(t.astype(int), len(SCORE_RAMP) - 2)
    f = (t - i)[..., None]
    return (SCORE_RAMP[i] * (1 - f) + SCORE_RAMP[i + 1] * f).astype(np.uint8)
