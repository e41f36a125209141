"""The point-splat renderer's per-point colours and the shared score colour ramp."""

import hashlib

import numpy as np
import pytest

from anomalygen.preview.colors import SCORE_RAMP, score_colors
from anomalygen.preview.splat import NORMAL_RGB, render, view_direction


def _capped_sphere(n=1500, seed=5):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3))
    pts = v / np.linalg.norm(v, axis=1, keepdims=True)
    return pts, (pts[:, 0] > 0.7).astype(np.uint8)


def test_labelled_render_pixels_are_pinned():
    # Digest of this exact labelled render: the label colouring that every dataset preview uses
    # is pinned pixel for pixel, whatever else the renderer learns.
    pts, lab = _capped_sphere()
    img = render(pts, lab, view_direction(20, 25), 96)
    assert hashlib.sha256(img.tobytes()).hexdigest() == \
        "8c27017dccac40a409e0d16dcaf538b713f51669b474fb13ce05de93b6eca6d3"
    assert ((img[..., 0] > 200) & (img[..., 1] < 120)).sum() > 100  # the labelled cap is drawn red


@pytest.mark.parametrize("shading", ["depth", "points"])
def test_colors_equal_to_the_label_colouring_give_the_same_pixels(shading):
    pts, _ = _capped_sphere()
    normal = np.zeros(len(pts), np.uint8)
    by_label = render(pts, normal, view_direction(20, 25), 96, shading=shading)
    grey = np.tile(NORMAL_RGB.astype(np.uint8), (len(pts), 1))
    by_color = render(pts, normal, view_direction(20, 25), 96, shading=shading, colors=grey)
    np.testing.assert_array_equal(by_color, by_label)
    as_float = render(pts, normal, view_direction(20, 25), 96, shading=shading, colors=grey / 255.0)
    assert np.abs(as_float.astype(int) - by_label).max() <= 1  # float colours are 0..1


def test_colors_replace_the_label_colouring_and_are_checked():
    pts, lab = _capped_sphere()
    green = np.tile([0, 200, 0], (len(pts), 1)).astype(np.uint8)
    img = render(pts, lab, view_direction(20, 25), 96, colors=green)
    drawn = np.any(img != 255, axis=-1)
    assert drawn.sum() > 1000
    assert (img[drawn][:, 0] == 0).all() and (img[drawn][:, 1] > 0).all()  # no red left, only shaded green
    with pytest.raises(ValueError, match="colors must be"):
        render(pts, lab, view_direction(20, 25), 96, colors=green[:, :2])
    with pytest.raises(ValueError, match="rows for"):
        render(pts, lab, view_direction(20, 25), 96, colors=green[:10])


def test_score_colors_run_dark_to_bright_and_clip():
    c = score_colors(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]), 0.0, 1.0)
    assert c.dtype == np.uint8 and c.shape == (5, 3)
    np.testing.assert_array_equal(c[0], SCORE_RAMP[0])
    np.testing.assert_array_equal(c[1], SCORE_RAMP[0])
    np.testing.assert_array_equal(c[3], SCORE_RAMP[-1])
    np.testing.assert_array_equal(c[4], SCORE_RAMP[-1])
    brightness = score_colors(np.linspace(0, 1, 50), 0, 1).astype(int).sum(1)
    assert (np.diff(brightness) >= -3).all() and brightness[-1] > brightness[0] + 500
    assert score_colors(np.ones((4, 6)), 1.0, 1.0).shape == (4, 6, 3)  # flat maps do not divide by zero
