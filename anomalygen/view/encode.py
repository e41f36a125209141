"""One sample -> the compact binary the page decodes (and the facts shown beside it).

Layout of a sample's bytes (little-endian, uint16 block first so typed-array views stay aligned):
  positions  uint16 x 3 per point, quantized over the sample's bounding cube (lossless at screen size:
             1/65535 of the object)
  normals    uint8 x 2 per point, octahedral encoding (headlight shading in the page)
  rgb        uint8 x 3 per point, when the sample has colour
  scores     uint8 per point, the predicted map quantized over its group's score range, when present
Points are ordered anomalous first, so the ground truth is one count (`k`) and costs no bytes.
Clouds above the point cap are thinned by farthest-point sampling (even coverage, so a defect keeps
its share of points); the page states how many points it shows of how many.
"""

from __future__ import annotations

import numpy as np

from anomalygen.preview.points import best_view
from anomalygen.preview.splat import estimate_normals, point_spacing, view_direction
from anomalygen.view.samples import ViewSample

QUANT = 65535
SCORE_BINS = 256
NORMAL_BASE = 5000  # shading normals come from at most this many evenly spread points
VIEW_POINTS = 4000  # the first view is chosen on at most this many points (a coarse z-buffer needs no more)


def bytes_per_point(sample: ViewSample) -> int:
    return 8 + (3 if sample.rgb is not None else 0) + (1 if sample.scores is not None else 0)


def quantize_scores(scores: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scores -> uint8 bins over [lo, hi] (outside values clipped); the page flags bin >= threshold bin."""
    t = (np.asarray(scores, np.float64) - lo) / max(hi - lo, 1e-12)
    return np.round(np.clip(t, 0, 1) * (SCORE_BINS - 1)).astype(np.uint8)


def oct_encode(normals: np.ndarray) -> np.ndarray:
    """Unit vectors -> (N,2) uint8 octahedral codes (about 1 degree of error, enough for shading)."""
    n = np.asarray(normals, np.float64)
    n = n / np.maximum(np.abs(n).sum(1, keepdims=True), 1e-12)
    xy = n[:, :2].copy()
    back = n[:, 2] < 0
    xy[back] = (1 - np.abs(n[back][:, [1, 0]])) * np.where(n[back][:, :2] >= 0, 1.0, -1.0)
    return np.round((xy * 0.5 + 0.5) * 255).astype(np.uint8)


def thin(n: int, cap: int, points: np.ndarray) -> np.ndarray | None:
    """Indices of `cap` evenly spread points (farthest-point sampling), or None when n <= cap."""
    if n <= cap:
        return None
    import fpsample

    return np.sort(fpsample.bucket_fps_kdline_sampling(points, cap, h=5 if n < 100_000 else 7, start_idx=0))


def splat_spacing(points: np.ndarray, rng: np.random.Generator | None = None) -> float:
    """Median over points of the mean distance to their 4 nearest neighbours: the page sizes its splats
    by it. Unlike the nearest-neighbour distance it reads about the same for a random cloud and for a
    farthest-point-thinned one (evenly spaced), so splats cover both without swelling the thinned."""
    from scipy.spatial import cKDTree

    rng = rng or np.random.default_rng(0)
    sub = points[rng.choice(len(points), min(len(points), 2000), replace=False)]
    d, _ = cKDTree(points).query(sub, k=5)
    return float(np.median(d[:, 1:].mean(1)))


def shading_normals(points: np.ndarray) -> np.ndarray:
    """Smooth unoriented normals for shading: PCA normals of an evenly spread base of at most
    NORMAL_BASE points, each point taking its nearest base point's. A PCA over 40 neighbours of a
    dense cloud spans less than a thin wall is thick, so its normals flip at random (a speckled
    surface); over the sparser base the same 40 neighbours span the wall's surface (measured on
    catalog bowls and vases: >= 98% of neighbouring normals within 37 degrees, against ~65%)."""
    if len(points) < 3:
        return np.tile([0.0, 0.0, 1.0], (len(points), 1))
    base_idx = thin(len(points), NORMAL_BASE, points)
    base = points if base_idx is None else points[base_idx]
    normals = estimate_normals(base, 12.0 * point_spacing(base))
    if base_idx is None:
        return normals
    from scipy.spatial import cKDTree

    return normals[cKDTree(base).query(points, k=1)[1]]


def encode_sample(sample: ViewSample, max_points: int,
                  score_range: tuple[float, float] | None = None) -> tuple[bytes, dict, np.ndarray | None]:
    """(bytes, facts for the page, (2, 256) histogram of the full-resolution score bins of normal /
    anomalous points or None). The histogram gives the group's default threshold (best F1)."""
    pts = np.asarray(sample.points, np.float64)
    lab = np.asarray(sample.labels).astype(bool)
    total = len(pts)
    hist = None
    bins = None
    if sample.scores is not None:
        lo, hi = score_range or (float(np.min(sample.scores)), float(np.max(sample.scores)))
        bins = quantize_scores(sample.scores, lo, hi)
        hist = np.stack([np.bincount(bins[~lab], minlength=SCORE_BINS), np.bincount(bins[lab], minlength=SCORE_BINS)])
    keep = thin(total, max_points, pts)
    keep = np.arange(total) if keep is None else keep
    normals = np.asarray(sample.normals, np.float64)[keep] if sample.normals is not None else shading_normals(pts[keep])
    order = np.argsort(~lab[keep], kind="stable")  # anomalous first
    keep, normals = keep[order], normals[order]
    p, k = pts[keep], int(lab[keep].sum())
    lo3 = p.min(0) if len(p) else np.zeros(3)
    extent = float((p.max(0) - lo3).max()) if len(p) else 1.0
    extent = extent if extent > 0 else 1.0
    blocks = [np.round((p - lo3) / extent * QUANT).astype("<u2").tobytes(), oct_encode(normals).tobytes()]
    if sample.rgb is not None:
        blocks.append(np.ascontiguousarray(np.asarray(sample.rgb)[keep], np.uint8).tobytes())
    if bins is not None:
        blocks.append(bins[keep].tobytes())
    view = sample.view
    if view is None and len(p):
        center = (p.max(0) + lo3) / 2
        diag = float(np.linalg.norm(p.max(0) - lo3))
        few = slice(None, None, max(1, len(p) // VIEW_POINTS))
        view = best_view(p[few], lab[keep][few], center, diag) if k else view_direction(30, 25)
    facts = {
        "split": sample.split, "defect": sample.defect, "name": sample.name,
        "n": int(len(p)), "total": int(total), "k": k, "anomalous_total": int(lab.sum()),
        "box": [*map(float, lo3), extent],  # world = box[:3] + box[3] * normalized position
        "size": [round(float(v), 6) for v in ((p.max(0) - lo3) / extent if len(p) else np.zeros(3))],
        "spacing": splat_spacing(p) / extent if len(p) > 4 else 0.01,
        "view": [round(float(v), 5) for v in (view if view is not None else (0, 0, 1))],
        "up": list(sample.up),
        "rgb": sample.rgb is not None, "scores": bins is not None,
        "object_score": None if sample.object_score is None else float(sample.object_score),
        "record": sample.record,
    }
    return b"".join(blocks), facts, hist


def best_f1_bin(hist: np.ndarray) -> int | None:
    """The threshold bin (flag bins >= it) with the best point-level F1 over a group's histogram
    ((2, bins): normal, anomalous); None when the group has no anomalous point."""
    neg, pos = np.asarray(hist, np.float64)
    if pos.sum() == 0:
        return None
    tp = np.cumsum(pos[::-1])[::-1]
    fp = np.cumsum(neg[::-1])[::-1]
    f1 = 2 * tp / np.maximum(2 * tp + fp + (pos.sum() - tp), 1e-12)
    return int(np.argmax(f1))
