"""Metrics against values computed by hand, and the exact AUPRO against the sampled variant."""

import numpy as np
import pytest

from anomalygen.errors import MetricError
from anomalygen.metrics import aupro, image_auroc, pixel_auroc, point_auroc, pro_curve, trapezoid_to


def test_four_sample_auroc_by_hand():
    # pos 0.35 beats neg 0.1, loses to 0.4; pos 0.8 beats both -> 3 of 4 pairs
    assert image_auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # a tie counts one half: (0.5 vs 0.5) = .5, the other three pairs won -> 3.5 / 4
    assert image_auroc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)


def test_pooled_point_and_pixel_auroc_pool_all_samples():
    labels = [np.array([0, 1]), np.array([0, 0, 1])]
    scores = [np.array([0.2, 0.9]), np.array([0.1, 0.95, 0.5])]
    # pooled: negatives .2 .1 .95, positives .9 .5 -> wins: .9>{.2,.1}, .5>{.2,.1} = 4 of 6
    assert point_auroc(labels, scores) == pytest.approx(4 / 6)
    masks = [l.reshape(1, -1) for l in labels]
    assert pixel_auroc(masks, [s.reshape(1, -1) for s in scores]) == pytest.approx(4 / 6)


# Worked on paper: a 2x4 image, components {(0,0),(0,1)} (size 2) and {(1,3)} (size 1).
MASK = np.array([[1, 1, 0, 0], [0, 0, 0, 1]])
SCORE = np.array([[0.9, 0.3, 0.5, 0.1], [0.2, 0.4, 0.05, 0.8]])
# thresholds in descending order -> (FPR over 5 GT-0 pixels, PRO = mean of the two components' overlap):
# .9:(0, .25) .8:(0, .75) .5:(.2, .75) .4:(.4, .75) .3:(.4, 1) .2:(.6, 1) .1:(.8, 1) .05:(1, 1)
# area to .3 = .2*.75 + .1*.75 = .225 -> /.3 = .75 ; area to .5 = .4*.75 + .1*1 = .4 -> /.5 = .8


def test_pro_curve_by_hand():
    fpr, pro = pro_curve([MASK], [SCORE])
    assert np.allclose(fpr, [0, 0, 0, .2, .4, .4, .6, .8, 1, 1])
    assert np.allclose(pro, [0, .25, .75, .75, .75, 1, 1, 1, 1, 1])


def test_tiny_aupro_by_hand():
    assert aupro([MASK], [SCORE]) == pytest.approx(0.75)
    assert aupro([MASK], [SCORE], fpr_limit=0.5) == pytest.approx(0.8)


def test_components_are_eight_connected():
    # (0,0) touches (1,1) only diagonally: 8-connected it is ONE region of 3 pixels, 4-connected two (1 + 2)
    mask = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    score = np.array([[0.9, 0.1, 0.1], [0.1, 0.2, 0.2], [0.1, 0.1, 0.1]])
    fpr, pro = pro_curve([mask], [score])
    assert fpr[1] == 0 and pro[1] == pytest.approx(1 / 3)  # 4-connectivity would give mean(1, 0) = 0.5


def test_trapezoid_interpolates_at_the_limit():
    assert trapezoid_to([0, 0.5, 1], [0, 1, 1], 0.3) == pytest.approx(0.5 * 0.3 * 0.6)
    assert trapezoid_to([0, 0.5, 1], [0, 1, 1], 0.5) == pytest.approx(0.25)


def test_exact_aupro_agrees_with_btf_variant_on_random_maps_without_ties():
    rng = np.random.default_rng(7)
    for trial in range(5):
        masks, maps = [], []
        for _ in range(6):
            m = np.zeros((48, 48), np.uint8)
            for _ in range(rng.integers(1, 4)):
                y, x = rng.integers(0, 40, 2)
                m[y:y + rng.integers(2, 9), x:x + rng.integers(2, 9)] = 1
            masks.append(m)
            maps.append(rng.random((48, 48)) + rng.uniform(0.2, 1.0) * m)
        exact = aupro(masks, maps)
        sampled = aupro(masks, maps, variant="btf")
        assert 0 < exact < 1
        assert abs(exact - sampled) < 0.01, (trial, exact, sampled)


def test_perfect_and_inverted_maps():
    masks = [MASK]
    assert aupro(masks, [MASK.astype(float)]) == pytest.approx(1.0)
    assert aupro(masks, [1.0 - MASK]) == pytest.approx(0.0)


@pytest.mark.parametrize("call", [
    lambda: image_auroc([1, 1, 1], [0.1, 0.2, 0.3]),                      # one class only
    lambda: image_auroc([0, 1], [0.1, np.nan]),                           # NaN score
    lambda: image_auroc([0, 1, 1], [0.1, 0.2]),                           # length mismatch
    lambda: aupro([np.zeros((4, 4))], [np.random.rand(4, 4)]),            # no anomalous region
    lambda: aupro([np.ones((4, 4))], [np.random.rand(4, 4)]),             # no GT-0 pixel
    lambda: aupro([MASK], [SCORE[:, :3]]),                                # shape mismatch
    lambda: aupro([MASK], [np.where(MASK, np.inf, 0.0)]),                 # inf score
    lambda: point_auroc([], []),                                          # nothing to pool
])
def test_degenerate_inputs_raise_clear_errors(call):
    with pytest.raises(MetricError):
        call()


def test_tied_scores_cross_the_threshold_together():
    # one anomalous and one normal pixel with the same score: the curve jumps straight from (0,0) to (1,1);
    # the area under the diagonal up to .3 is .045 -> .15. Counting them one at a time would give 1.0.
    mask = np.array([[1, 0]])
    assert aupro([mask], [np.array([[0.5, 0.5]])]) == pytest.approx(0.15)
    assert aupro([mask[:, ::-1]], [np.array([[0.5, 0.5]])]) == pytest.approx(0.15)


# One 1 x 9 image: component A = pixels 0-1, component B = pixel 3, six GT-0 pixels with tied scores.
TIE_MASK = np.array([[1, 1, 0, 1, 0, 0, 0, 0, 0]])
TIE_SCORE = np.array([[0.6, 0.9, 0.2, 0.4, 0.4, 0.4, 0.6, 0.6, 0.8]])


def test_btf_variant_matches_a_hand_worked_tie_case():
    # 3D-ADS au_pro_util with 4 thresholds: GT-0 scores sorted [.2 .4 .4 .6 .6 .8], ranks floor(linspace(0, 5, 4))
    # = [0 1 3 5] -> thresholds .2 .4 .6 .8, FPR = 1 - (rank+1)/6 = 5/6, 2/3, 1/3, 0. PRO counts pixels
    # strictly above t: A {.6 .9}, B {.4} -> (1+1)/2, (1+0)/2, (.5+0)/2, (.5+0)/2. Curve by FPR:
    # (0,.25) (1/3,.25) (2/3,.5) (5/6,1) (1,1). Up to .3: .25 * .3 = .075 -> /.3 = .25.
    assert aupro([TIE_MASK], [TIE_SCORE], variant="btf", num_thresholds=4) == pytest.approx(0.25, abs=1e-12)
    # exact: thresholds .9 .8 .6 .4 .2 give (0,.25) (1/6,.25) (1/2,.5) (5/6,1) (1,1) after (0,0);
    # up to .3: .25/6 + (.25 + .35)/2 * (.3 - 1/6) = .0816667 -> .272222.
    assert aupro([TIE_MASK], [TIE_SCORE]) == pytest.approx(0.0816666667 / 0.3, abs=1e-9)


def _btf_reference(masks, maps, num_thresholds):
    """The au_pro_util algorithm written out loop by loop: a pointer walk per component."""
    from scipy import ndimage
    ok, comps = [], []
    for m, a in zip(masks, maps):
        lab, n = ndimage.label(m, np.ones((3, 3), int))
        ok += list(a[lab == 0])
        comps += [sorted(a[lab == k + 1]) for k in range(n)]
    ok = sorted(ok)
    fprs, pros, ptr = [1.0], [1.0], [0] * len(comps)
    for pos in np.linspace(0, len(ok) - 1, num=num_thresholds, dtype=int):
        t = ok[pos]
        total = 0.0
        for i, c in enumerate(comps):
            while ptr[i] < len(c) and c[ptr[i]] <= t:
                ptr[i] += 1
            total += 1.0 - ptr[i] / len(c)
        fprs.append(1.0 - (pos + 1) / len(ok))
        pros.append(total / len(comps))
    return trapezoid_to(fprs[::-1], pros[::-1], 0.3) / 0.3


def test_btf_variant_equals_the_pointer_walk_on_quantized_maps():
    rng = np.random.default_rng(3)
    for trial in range(4):
        masks = [(rng.random((20, 20)) < 0.08).astype(np.uint8) for _ in range(3)]
        maps = [np.round(rng.random((20, 20)) * 6) / 6 + 0.5 * m for m in masks]  # heavy ties
        for k in (7, 100):
            assert aupro(masks, maps, variant="btf", num_thresholds=k) == pytest.approx(
                _btf_reference(masks, maps, k), abs=1e-12), (trial, k)


def test_unknown_aupro_variant_is_refused():
    with pytest.raises(MetricError, match="variant"):
        aupro([MASK], [SCORE], variant="mvtec")


def _replicated(weights, items):
    return [x for w, x in zip(weights, items) for _ in range(int(w))]


def test_bootstrap_draws_score_the_resampled_samples_as_the_exact_metrics_do():
    from anomalygen.metrics import _binned_point_auroc, _pairwise_auroc

    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    scores = rng.random(7)
    targets = [(rng.random(30) < 0.2 * (1 + l)).astype(np.uint8) for l in labels]
    maps = [np.round(rng.random(30) + t, 2) for t in targets]  # few distinct values: every bin is one value
    weights = rng.multinomial(7, np.full(7, 1 / 7), size=5).astype(float)
    weights[0] = [2, 0, 1, 1, 0, 3, 0]
    got_i = _pairwise_auroc(labels, scores, weights)
    got_p = _binned_point_auroc(targets, maps, weights)
    for w, gi, gp in zip(weights, got_i, got_p):
        y = _replicated(w, labels)
        if 0 < sum(y) < len(y):
            assert gi == pytest.approx(image_auroc(y, _replicated(w, scores)))
        assert gp == pytest.approx(point_auroc(_replicated(w, targets), _replicated(w, maps)))


def test_bootstrap_interval_holds_the_estimate_and_a_perfect_detector_is_exact():
    from anomalygen.metrics import bootstrap_class_means

    rng = np.random.default_rng(1)
    classes = []
    for _ in range(3):
        labels = np.r_[np.zeros(12), np.ones(24)].astype(int)
        scores = rng.normal(size=36) + labels  # an imperfect detector
        classes.append({"labels": labels, "scores": scores})
    lo, hi = bootstrap_class_means(classes, draws=400)["i_auroc"]
    mean = np.mean([image_auroc(c["labels"], c["scores"]) for c in classes])
    assert lo < mean < hi and hi - lo > 0.02
    perfect = [{"labels": c["labels"], "scores": c["labels"] + 0.0, "targets": [np.array([0, 1])] * 36,
                "maps": [np.array([0.1, 0.9])] * 36} for c in classes]
    out = bootstrap_class_means(perfect, draws=100)
    assert out["i_auroc"] == (1.0, 1.0) and out["point_auroc"] == (1.0, 1.0)
