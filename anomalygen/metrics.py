"""Detection and localization metrics, as the references define them (FORMATS.md).

- `image_auroc`: ROC AUC of one score per sample (normal 0, anomalous 1).
- `pixel_auroc` / `point_auroc`: ROC AUC over all pixels / points of all test
  samples of a class, pooled.
- `aupro`: area under the per-region-overlap curve up to FPR 0.3, divided by 0.3.
  GT components are 8-connected. FPR = share of all GT-0 pixels scored >= t; PRO =
  mean over ALL components of the share of each component's pixels scored >= t.
  The curve is closed with (0, 0) and (1, 1) and integrated with the trapezoid rule,
  interpolated at the limit. `num_thresholds=None` (default) is EXACT: every
  distinct score is a threshold (as MVTec's au_pro_util computes it).
  `num_thresholds=100` is the sampled variant common in public detector code:
  thresholds taken at evenly spaced ranks of the sorted GT-0 scores.

Degenerate inputs raise MetricError (a ValueError) instead of returning a silent
number: one class only, no GT-0 pixel, no anomalous component, NaN/inf scores,
mismatched shapes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from anomalygen.errors import MetricError

EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def _finite(scores: np.ndarray, what: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise MetricError(f"{what}: {int(bad.sum())} score(s) are NaN or infinite")
    return scores


def auroc(labels: Sequence, scores: Sequence, what: str = "AUROC") -> float:
    """ROC AUC with label 1 = anomalous. Raises MetricError when only one class is present."""
    y = np.asarray(labels).ravel()
    s = _finite(np.asarray(scores).ravel(), what)
    if y.shape != s.shape:
        raise MetricError(f"{what}: {y.size} labels but {s.size} scores")
    y = (y > 0).astype(np.int8)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise MetricError(f"{what}: needs both normal and anomalous items, got {n_pos} anomalous of {y.size}")
    return float(roc_auc_score(y, s))


def image_auroc(labels: Sequence, scores: Sequence) -> float:
    """I-AUROC: one label and one score per sample."""
    return auroc(labels, scores, "I-AUROC")


def _pooled(targets: Sequence[np.ndarray], maps: Sequence[np.ndarray], what: str) -> tuple[np.ndarray, np.ndarray]:
    if len(targets) != len(maps) or not len(targets):
        raise MetricError(f"{what}: {len(targets)} ground truths but {len(maps)} score maps")
    for i, (t, m) in enumerate(zip(targets, maps)):
        if np.shape(t) != np.shape(m):
            raise MetricError(f"{what}: sample {i} ground truth {np.shape(t)} vs scores {np.shape(m)}")
    return (np.concatenate([np.asarray(t).ravel() for t in targets]),
            np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps]))


def pixel_auroc(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> float:
    """P-AUROC: pixels of all test maps of a class pooled (mask > 0 = anomalous)."""
    return auroc(*_pooled(masks, maps, "P-AUROC"), what="P-AUROC")


def point_auroc(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> float:
    """Point-level AUROC: points of all test clouds of a class pooled."""
    return auroc(*_pooled(labels, scores, "point AUROC"), what="point AUROC")


def _components(masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat component id per pixel (0 = GT-0, ids unique across images) and component sizes."""
    ids, offset = [], 0
    for m in masks:
        m = np.asarray(m)
        if m.ndim != 2:
            raise MetricError(f"AUPRO: masks must be 2-D images, got shape {m.shape}")
        lab, n = ndimage.label(m > 0, structure=EIGHT_CONNECTED)
        lab = lab.astype(np.int64)
        lab[lab > 0] += offset
        ids.append(lab.ravel())
        offset += n
    comp = np.concatenate(ids)
    sizes = np.bincount(comp, minlength=offset + 1)
    return comp, sizes, offset


def pro_curve(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray],
              num_thresholds: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) points with FPR ascending, closed with (0,0) and (1,1). See module doc."""
    _, scores = _pooled(masks, maps, "AUPRO")
    scores = _finite(scores, "AUPRO")
    comp, sizes, n_comp = _components(masks)
    neg = comp == 0
    n_neg = int(neg.sum())
    if n_neg == 0:
        raise MetricError("AUPRO: no normal (GT-0) pixel, FPR is undefined")
    if n_comp == 0:
        raise MetricError("AUPRO: no anomalous region in the ground truth, PRO is undefined")

    if num_thresholds is None:
        order = np.argsort(-scores, kind="stable")
        s_sorted = scores[order]
        fp = np.cumsum(neg[order], dtype=np.float64)
        pro_w = np.where(neg, 0.0, 1.0 / sizes[comp])
        tp = np.cumsum(pro_w[order])
        last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
        fprs, pros = fp[last_of_tie] / n_neg, tp[last_of_tie] / n_comp
    else:
        if num_thresholds < 2:
            raise MetricError("AUPRO: num_thresholds must be >= 2")
        neg_sorted = np.sort(scores[neg])[::-1]
        ranks = np.round(np.linspace(0, n_neg - 1, num_thresholds)).astype(np.int64)
        thresholds = neg_sorted[ranks]
        asc = neg_sorted[::-1]
        fprs = (n_neg - np.searchsorted(asc, thresholds, side="left")) / n_neg
        pos_scores, pos_comp = scores[~neg], comp[~neg]
        pros = np.array([np.mean(np.bincount(pos_comp, weights=(pos_scores >= t), minlength=n_comp + 1)[1:] / sizes[1:])
                         for t in thresholds])  # loop over 100 thresholds, not over pixels
    fprs = np.clip(fprs, None, 1.0)
    pros = np.clip(pros, None, 1.0)
    return np.r_[0.0, fprs, 1.0], np.r_[0.0, pros, 1.0]


def trapezoid_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under y(x) for x in [0, x_max], x ascending, y interpolated at x_max."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    correction = 0.0
    if not np.any(x == x_max):
        ins = int(np.searchsorted(x, x_max, side="right"))
        if not 0 < ins < len(x):
            raise MetricError(f"integration limit {x_max} outside the curve's FPR range")
        y_at = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_at + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def aupro(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], fpr_limit: float = 0.3,
          num_thresholds: int | None = None) -> float:
    """AUPRO up to `fpr_limit`, normalized by it (1.0 = perfect). Exact unless num_thresholds is given."""
    if not 0 < fpr_limit <= 1:
        raise MetricError(f"AUPRO: fpr_limit must be in (0, 1], got {fpr_limit}")
    fprs, pros = pro_curve(masks, maps, num_thresholds)
    return trapezoid_to(fprs, pros, fpr_limit) / fpr_limit
