"""95 % bootstrap intervals of the detection metrics (docs: /work/shared/design/BENCHMARKS.md).

A draw resamples each class's test samples with replacement (the same draw for every detector
scored on those files, so differences between detectors are paired); the metric is computed on
the resampled set, and a table's mean over classes is taken per draw. The interval is the 2.5 and
97.5 percentiles of the draws.

A draw is given as multiplicities (how often each test sample was drawn), and the metrics are
computed from them without copying maps:
- `ResampledAUROC`: image AUROC, scikit-learn's roc_auc_score with the multiplicities as sample
  weights (the AUROC of the repeated list).
- `ResampledAUPRO`: the "btf" AUPRO variant (anomalygen.metrics, 3D-ADS's au_pro_util.py): the
  GT-0 scores are sorted once with their sample ids; a draw's threshold ranks index the weighted
  cumulative count, and each component's overlap is counted on its own sorted scores. With every
  multiplicity 1 it equals `aupro(..., variant="btf")`; with others, `aupro` on the repeated list
  (tests/test_intervals.py checks both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from anomalygen.errors import MetricError
from anomalygen.metrics import EIGHT_CONNECTED, trapezoid_to

DRAWS = 1000
LEVEL = 0.95


def draw_counts(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n) multiplicities of n samples drawn n times with replacement, per draw."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=draws)


class ResampledAUROC:
    """Image AUROC of one class's test set under multiplicities (see the module doc)."""

    def __init__(self, labels: Sequence[int], scores: Sequence[float]):
        self.labels = np.asarray(labels, np.int64)
        self.scores = np.asarray(scores, np.float64)

    def __call__(self, counts: np.ndarray) -> float:
        keep = counts > 0
        if len(np.unique(self.labels[keep])) < 2:
            return float("nan")
        return float(roc_auc_score(self.labels[keep], self.scores[keep], sample_weight=counts[keep]))


class ResampledAUPRO:
    """The btf-variant AUPRO (up to `fpr_limit`) of one class's test set under multiplicities."""

    def __init__(self, masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], fpr_limit: float = 0.3,
                 num_thresholds: int = 100):
        if len(masks) != len(maps):
            raise MetricError(f"AUPRO: {len(masks)} masks but {len(maps)} maps")
        self.fpr_limit, self.num_thresholds = float(fpr_limit), int(num_thresholds)
        neg_scores, neg_ids, self.components = [], [], []  # components: (sample id, sorted scores)
        for i, (m, s) in enumerate(zip(masks, maps)):
            m, s = np.asarray(m), np.asarray(s, np.float64)
            if m.shape != s.shape:
                raise MetricError(f"AUPRO: mask {m.shape} and map {s.shape} differ in shape")
            if not np.all(np.isfinite(s)):
                raise MetricError("AUPRO: the maps hold NaN or infinite scores")
            lab, n = ndimage.label(m > 0, structure=EIGHT_CONNECTED)
            neg_scores.append(s[lab == 0])
            neg_ids.append(np.full(int((lab == 0).sum()), i, np.int64))
            order = np.argsort(lab.ravel(), kind="stable")
            flat_lab, flat_s = lab.ravel()[order], s.ravel()[order]
            bounds = np.searchsorted(flat_lab, np.arange(1, n + 2))
            self.components += [(i, np.sort(flat_s[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]
        scores, ids = np.concatenate(neg_scores), np.concatenate(neg_ids)
        order = np.argsort(scores, kind="stable")
        self.neg_sorted, self.neg_ids = scores[order], ids[order]
        self.n_samples = len(masks)

    def __call__(self, counts: np.ndarray) -> float:
        counts = np.asarray(counts, np.int64)
        cum = np.cumsum(counts[self.neg_ids])
        n_neg = int(cum[-1]) if len(cum) else 0
        weights = np.array([counts[i] for i, _ in self.components], np.float64)
        if n_neg == 0 or weights.sum() == 0:
            return float("nan")
        ranks = np.linspace(0, n_neg - 1, num=self.num_thresholds).astype(int)
        thresholds = self.neg_sorted[np.searchsorted(cum, ranks, side="right")]
        fprs = 1.0 - (ranks + 1) / n_neg
        overlap = np.zeros(len(thresholds))
        for w, (_, s) in zip(weights, self.components):
            if w:
                overlap += w * (1.0 - np.searchsorted(s, thresholds, side="right") / len(s))
        pros = overlap / weights.sum()
        return trapezoid_to(np.r_[fprs[::-1], 1.0], np.r_[pros[::-1], 1.0], self.fpr_limit) / self.fpr_limit


@dataclass(frozen=True)
class Interval:
    """A mean over classes (every test sample once) and its bootstrap interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{100 * self.value:.1f} [{100 * self.low:.1f}, {100 * self.high:.1f}]"

    def overlaps(self, other: "Interval") -> bool:
        return self.low <= other.high and other.low <= self.high


def class_draws(sizes: dict[str, int], draws: int = DRAWS, seed: int = 0) -> dict[str, np.ndarray]:
    """Per class, (draws, n) multiplicities of its n test samples: the draws every detector shares."""
    rng = np.random.default_rng(seed)
    return {c: draw_counts(n, draws, rng) for c, n in sorted(sizes.items())}


def replicates(metric: Callable[[np.ndarray], float], counts: np.ndarray) -> tuple[float, np.ndarray]:
    """(the metric on every test sample once, its value under each draw of `counts` (draws, n))."""
    return metric(np.ones(counts.shape[1], np.int64)), np.array([metric(c) for c in counts])


def mean_interval(cells: Sequence[tuple[float, np.ndarray]], level: float = LEVEL) -> Interval:
    """The mean over a table's cells, each given as `replicates` returns it, with its interval: per draw
    the mean over the cells, then the percentiles. Cells of one class must share that class's draws;
    the difference of two detectors is the interval of their cells' differences (same draws: paired)."""
    full = np.array([f for f, _ in cells], np.float64)
    means = np.nanmean(np.stack([r for _, r in cells]), axis=0)
    lo, hi = np.nanpercentile(means, [50 * (1 - level), 50 * (1 + level)])
    return Interval(float(np.nanmean(full)), float(lo), float(hi))


def difference(a: tuple[float, np.ndarray], b: tuple[float, np.ndarray]) -> tuple[float, np.ndarray]:
    """Cell a minus cell b, draw by draw (both scored on the same test files and draws)."""
    return a[0] - b[0], a[1] - b[1]
