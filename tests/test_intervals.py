"""Bootstrap intervals (anomalygen.intervals): a resampled metric equals the metric on the repeated list."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from anomalygen.intervals import (ResampledAUPRO, ResampledAUROC, class_draws, difference, mean_interval,
                                  replicates)
from anomalygen.metrics import aupro


def _maps(rng, n=6, size=24):
    masks, maps = [], []
    for i in range(n):
        m = np.zeros((size, size), np.uint8)
        if i % 3:
            r, c = rng.integers(3, size - 8, 2)
            m[r:r + 5, c:c + 4] = 1
            m[(r + 9) % size, (c + 7) % size] = 1  # a second, one-pixel component
        s = rng.normal(size=(size, size)) + 1.5 * m
        s[0, :4] = s[0, 0]  # ties among GT-0 scores
        masks.append(m)
        maps.append(s.astype(np.float32))
    return masks, maps


def test_resampled_aupro_equals_aupro_on_the_repeated_list():
    rng = np.random.default_rng(0)
    masks, maps = _maps(rng)
    metric = ResampledAUPRO(masks, maps, 0.3, 100)
    assert metric(np.ones(len(masks), np.int64)) == pytest.approx(aupro(masks, maps, 0.3, variant="btf"), abs=1e-12)
    for counts in ([2, 0, 1, 1, 0, 2], [0, 3, 0, 0, 2, 1], [1, 1, 1, 0, 0, 3]):
        rep = [i for i, c in enumerate(counts) for _ in range(c)]
        expect = aupro([masks[i] for i in rep], [maps[i] for i in rep], 0.3, variant="btf")
        assert metric(np.array(counts)) == pytest.approx(expect, abs=1e-12), counts


def test_resampled_auroc_equals_auroc_on_the_repeated_list():
    rng = np.random.default_rng(1)
    labels, scores = np.array([0, 0, 0, 1, 1, 1, 1]), rng.normal(size=7)
    counts = np.array([2, 0, 1, 3, 0, 1, 0])
    rep = np.repeat(np.arange(7), counts)
    assert ResampledAUROC(labels, scores)(counts) == pytest.approx(roc_auc_score(labels[rep], scores[rep]))
    assert np.isnan(ResampledAUROC(labels, scores)(np.array([1, 1, 1, 0, 0, 0, 0])))


def test_intervals_hold_the_mean_and_narrow_with_more_samples():
    rng = np.random.default_rng(2)
    widths = []
    for n in (20, 200):
        labels = np.r_[np.zeros(n // 2), np.ones(n // 2)].astype(int)
        scores = rng.normal(size=n) + labels
        draws = class_draws({"a": n}, draws=300, seed=0)
        cell = replicates(ResampledAUROC(labels, scores), draws["a"])
        iv = mean_interval([cell])
        assert iv.low <= iv.value <= iv.high
        widths.append(iv.high - iv.low)
        # a detector minus itself: exactly zero on every draw
        zero = mean_interval([difference(cell, cell)])
        assert zero.low == zero.high == zero.value == 0
    assert widths[1] < widths[0] / 2
