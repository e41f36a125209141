"""Detection and localization metrics, as the references define them (FORMATS.md).

- `image_auroc`: ROC AUC of one score per sample (normal 0, anomalous 1).
- `pixel_auroc` / `point_auroc`: ROC AUC over all pixels / points of all test
  samples of a class, pooled.
- `aupro`: area under the per-region-overlap curve up to FPR 0.3, divided by 0.3, with
  8-connected GT components, in one of two variants (`variant=`), each matching named public code:
  - "exact" (default): every distinct score is a threshold. FPR = share of all GT-0 pixels
    scored >= t; PRO = mean over ALL components of the share of each component's pixels scored
    >= t; the curve is closed with (0, 0) and (1, 1) and integrated with the trapezoid rule,
    interpolated at the limit. Matches anomalib's `AUPRO` metric (anomalib 2.x,
    `anomalib.metrics.AUPRO`) to 1e-7.
  - "btf": the sampled curve of `utils/au_pro_util.py` in 3D-ADS (Horwitz & Hoshen's BTF code,
    "based on the official MVTec 3D-AD evaluation code"), which the 3D AD papers' AUPRO tables run:
    `num_thresholds` (100) threshold ranks = floor(linspace(0, N-1)) into the sorted GT-0 scores,
    FPR = 1 - (rank + 1) / N taken from the rank, PRO counts component pixels STRICTLY above the
    threshold, the curve starts at (1, 1) with no (0, 0) point, same trapezoid rule at the limit.
  Without ties the two agree to ~1e-4; ties inside the integration range can move them apart a lot.

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


def _curve_inputs(masks, maps):
    """(scores, component id per pixel (0 = GT-0), component sizes, components, GT-0 count), checked."""
    _, scores = _pooled(masks, maps, "AUPRO")
    scores = _finite(scores, "AUPRO")
    comp, sizes, n_comp = _components(masks)
    n_neg = int((comp == 0).sum())
    if n_neg == 0:
        raise MetricError("AUPRO: no normal (GT-0) pixel, FPR is undefined")
    if n_comp == 0:
        raise MetricError("AUPRO: no anomalous region in the ground truth, PRO is undefined")
    return scores, comp, sizes, n_comp, n_neg


def pro_curve(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The exact (FPR, PRO) curve, FPR ascending, closed with (0,0) and (1,1). See module doc."""
    scores, comp, sizes, n_comp, n_neg = _curve_inputs(masks, maps)
    neg = comp == 0
    order = np.argsort(-scores, kind="stable")
    s_sorted = scores[order]
    fp = np.cumsum(neg[order], dtype=np.float64)
    pro_w = np.where(neg, 0.0, 1.0 / sizes[comp])
    tp = np.cumsum(pro_w[order])
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # tied scores cross the threshold together
    fprs = np.clip(fp[last_of_tie] / n_neg, None, 1.0)
    pros = np.clip(tp[last_of_tie] / n_comp, None, 1.0)
    return np.r_[0.0, fprs, 1.0], np.r_[0.0, pros, 1.0]


def pro_curve_btf(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray],
                  num_thresholds: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The (FPR, PRO) curve exactly as 3D-ADS's `au_pro_util.compute_pro` samples it (module doc),
    FPR ascending. Vectorized: a component's overlap at t is 1 - (its scores <= t) / its size,
    which is what that code's per-component pointer walk counts."""
    if int(num_thresholds) < 1:
        raise MetricError(f"AUPRO: num_thresholds must be >= 1, got {num_thresholds}")
    scores, comp, sizes, n_comp, n_neg = _curve_inputs(masks, maps)
    neg = comp == 0
    ok_sorted = np.sort(scores[neg])
    ranks = np.linspace(0, n_neg - 1, num=int(num_thresholds)).astype(int)  # numpy's dtype=int: floor
    thresholds = ok_sorted[ranks]
    fprs = 1.0 - (ranks + 1) / n_neg
    pos_scores, pos_comp = scores[~neg], comp[~neg]
    order = np.lexsort((pos_scores, pos_comp))  # by component, then score
    pos_scores, pos_comp = pos_scores[order], pos_comp[order]
    starts = np.searchsorted(pos_comp, np.arange(1, n_comp + 1), side="left")
    pros = np.empty(len(thresholds))
    for i, t in enumerate(thresholds):  # loop over the thresholds (100), not over pixels
        at_or_below = np.array([np.searchsorted(pos_scores[a:a + n], t, side="right")
                                for a, n in zip(starts, sizes[1:])])
        pros[i] = np.mean(1.0 - at_or_below / sizes[1:])
    return np.r_[fprs[::-1], 1.0], np.r_[pros[::-1], 1.0]


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


AUPRO_VARIANTS = ("exact", "btf")


def aupro(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], fpr_limit: float = 0.3,
          variant: str = "exact", num_thresholds: int = 100) -> float:
    """AUPRO up to `fpr_limit`, normalized by it (1.0 = perfect). `variant`: "exact" (anomalib's) or
    "btf" (3D-ADS's au_pro_util.py, sampled at `num_thresholds` ranks); see the module doc."""
    if not 0 < fpr_limit <= 1:
        raise MetricError(f"AUPRO: fpr_limit must be in (0, 1], got {fpr_limit}")
    if variant == "exact":
        fprs, pros = pro_curve(masks, maps)
    elif variant == "btf":
        fprs, pros = pro_curve_btf(masks, maps, num_thresholds)
    else:
        raise MetricError(f"AUPRO: variant {variant!r}; use one of {', '.join(AUPRO_VARIANTS)}")
    return trapezoid_to(fprs, pros, fpr_limit) / fpr_limit


# -- bootstrap intervals of a mean over classes (benchmarks/, BENCHMARKS.md) -----------------------

BOOTSTRAP_BINS = 4096  # point scores are binned at the pooled quantiles of each class: ties only within a bin


def _pairwise_auroc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC (B,) of samples (S,) counted `weights` (B,S) times each; NaN where a draw lacks a class."""
    y = np.asarray(labels) > 0
    s = np.asarray(scores, np.float64)
    wins = (s[y][:, None] > s[~y][None, :]) + 0.5 * (s[y][:, None] == s[~y][None, :])
    wp, wn = weights[:, y], weights[:, ~y]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("bi,ij,bj->b", wp, wins, wn) / (wp.sum(1) * wn.sum(1))


def _binned_point_auroc(targets: Sequence[np.ndarray], maps: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Pooled point AUROC (B,) of clouds counted `weights` (B,S) times each, from per-cloud histograms of
    the scores over BOOTSTRAP_BINS quantile bins (points in one bin count as ties)."""
    pooled = np.concatenate([np.asarray(m, np.float64).ravel() for m in maps])
    edges = np.unique(np.quantile(pooled, np.linspace(0, 1, BOOTSTRAP_BINS + 1)[1:-1]))
    pos, neg = [], []
    for t, m in zip(targets, maps):
        b = np.searchsorted(edges, np.asarray(m, np.float64).ravel(), side="right")
        t = np.asarray(t).ravel() > 0
        pos.append(np.bincount(b[t], minlength=len(edges) + 1))
        neg.append(np.bincount(b[~t], minlength=len(edges) + 1))
    p = weights @ np.array(pos, np.float64)
    n = weights @ np.array(neg, np.float64)
    below = np.cumsum(n, 1) - n
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((p * below).sum(1) + 0.5 * (p * n).sum(1)) / (p.sum(1) * n.sum(1))


def bootstrap_class_means(classes: Sequence[dict], draws: int = 1000, seed: int = 0,
                          level: float = 0.95) -> dict[str, tuple[float, float]]:
    """The `level` interval of the mean over classes of I-AUROC and of point AUROC when each class's
    test samples are resampled with replacement (`draws` times; BENCHMARKS.md). Each class is a dict:
    "labels" (S,) 0/1 per sample, "scores" (S,) object scores, and optionally "targets"/"maps", the
    per-point labels and scores of each sample (point AUROC). Returns {"i_auroc": (lo, hi)[,
    "point_auroc": (lo, hi)]}; point AUROC bins the scores (BOOTSTRAP_BINS), a draw that lacks
    normal or anomalous samples in a class leaves that class out of the draw's mean."""
    rng = np.random.default_rng(seed)
    per = {"i_auroc": [], "point_auroc": []}
    for c in classes:
        size = len(c["labels"])
        weights = rng.multinomial(size, np.full(size, 1.0 / size), size=draws).astype(np.float64)
        per["i_auroc"].append(_pairwise_auroc(c["labels"], c["scores"], weights))
        if c.get("maps") is not None:
            per["point_auroc"].append(_binned_point_auroc(c["targets"], c["maps"], weights))
    tail = (1 - level) / 2 * 100
    out = {}
    for name, rows in per.items():
        if rows:
            with np.errstate(all="ignore"):
                means = np.nanmean(np.array(rows), axis=0)
            lo, hi = np.nanpercentile(means, [tail, 100 - tail])
            out[name] = (float(lo), float(hi))
    return out
