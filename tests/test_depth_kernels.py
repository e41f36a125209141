"""The fast paths of DAS3D synthesis give the bytes of the plain library calls they replace."""

import numpy as np
import pytest
from scipy.signal import fftconvolve

from anomalygen.depth.kernels import convolve_same, skew_normal_kernel, ternary_mask
from anomalygen.depth.textures import _crop_resize
from anomalygen.perlin import perlin_grid_np, random_permutation


@pytest.mark.parametrize("shape", [(256, 256), (200, 256), (255, 131), (64, 64)])
def test_convolve_same_is_fftconvolve_bit_for_bit(shape):
    rng = np.random.default_rng(3)
    for _ in range(12):
        sigma = tuple(rng.uniform(0.3, 6.0, 2))
        k = skew_normal_kernel(sigma, tuple(rng.uniform(-0.5, 0.5, 2)))
        noise = perlin_grid_np(shape, (int(rng.integers(1, 9)), int(rng.integers(1, 9))), random_permutation(rng))
        m = ternary_mask(noise, 0.3).astype(np.float64)
        got, ref = convolve_same(m, k), fftconvolve(m, k, mode="same")
        assert got.shape == ref.shape == shape
        assert np.array_equal(got, ref)


def test_convolve_same_length_one_kernel_axis():
    m = np.random.default_rng(0).random((40, 30))
    k = np.array([[0.25, 0.5, 0.25]])
    assert np.array_equal(convolve_same(m, k), fftconvolve(m, k, mode="same"))


def test_crop_resize_from_a_pil_image_equals_the_array_crop():
    from PIL import Image

    img = np.random.default_rng(1).integers(0, 256, (300, 410, 3), dtype=np.uint8)
    a = _crop_resize(img, (256, 256), np.random.default_rng(7))
    b = _crop_resize(Image.fromarray(img), (256, 256), np.random.default_rng(7))
    rng = np.random.default_rng(7)
    ch, cw = int(rng.integers(150, 301)), int(rng.integers(205, 411))
    y0, x0 = int(rng.integers(0, 300 - ch + 1)), int(rng.integers(0, 410 - cw + 1))
    ref = np.asarray(Image.fromarray(np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw])).resize((256, 256), Image.BILINEAR))
    assert np.array_equal(a, ref) and np.array_equal(b, ref)
