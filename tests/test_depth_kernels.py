"""The fast paths of DAS3D synthesis give the bytes of the plain library calls they replace."""

import numpy as np
import pytest
from scipy.signal import fftconvolve

from anomalygen.depth.kernels import convolve_full, skew_normal_kernel, ternary_mask
from anomalygen.depth.textures import _crop_resize


@pytest.mark.parametrize("shape", [(160, 120), (7, 200), (1, 30)])
def test_convolve_full_is_fftconvolve_full_bit_for_bit(shape):
    rng = np.random.default_rng(4)
    for _ in range(8):
        k = skew_normal_kernel(tuple(rng.uniform(0.3, 6.0, 2)), tuple(rng.uniform(-0.5, 0.5, 2)))
        m = ternary_mask(rng.uniform(-1, 1, shape), 0.4).astype(np.float64)
        ref = fftconvolve(m, k, mode="full")
        assert convolve_full(m, k).tobytes() == ref.tobytes()


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


def _boxes(rng, shape, n):
    for _ in range(n):
        t = int(rng.integers(0, shape[0]))
        l = int(rng.integers(0, shape[1]))
        yield t, int(rng.integers(t + 1, shape[0] + 1)), l, int(rng.integers(l + 1, shape[1] + 1))


def test_crop_resize_of_a_box_is_the_box_of_the_whole_resize():
    """Up- and down-scaling, both of PIL's pass orders (it runs the vertical pass first when the height
    shrinks most), power-of-two outputs (resized per box) and others (the whole resize, sliced)."""
    from PIL import Image

    rng = np.random.default_rng(2)
    for i in range(60):
        h, w = int(rng.integers(60, 900)), int(rng.integers(60, 900))
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        shape = [(256, 256), (128, 256), (256, 64), (224, 224), (200, 256)][i % 5]
        whole = _crop_resize(img, shape, np.random.default_rng(i))
        for box in _boxes(rng, shape, 4):
            got = _crop_resize(img, shape, np.random.default_rng(i), box)
            assert np.array_equal(got, whole[box[0]:box[1], box[2]:box[3]]), (h, w, shape, box)


@pytest.mark.parametrize("shape", [(256, 256), (48, 70)])
def test_texture_draw_at_is_the_whole_texture_read_at_the_pixels(tmp_path, shape):
    from PIL import Image

    from anomalygen.depth.textures import TextureSource

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 130, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    rng = np.random.default_rng(4)
    seen = set()
    for src in (TextureSource(), TextureSource(tmp_path)):
        for seed in range(40):
            n = shape[0] * shape[1]
            idx = np.flatnonzero(rng.random(n) < rng.choice([0.002, 0.05, 0.3]))
            a, b = np.random.default_rng(seed), np.random.default_rng(seed)
            whole, name = src.draw(shape, a)
            part, name_at = src.draw_at(shape, b, idx)
            assert name_at == name and part.dtype == np.uint8
            assert np.array_equal(part, whole.reshape(-1, 3)[idx])
            assert a.bit_generator.state == b.bit_generator.state  # the same draws: later samples unchanged
            seen.add(name)
    assert {"procedural:perlin", "procedural:stripes", "procedural:checks", "procedural:speckle"} <= seen
    assert any(n.startswith("skimage:") for n in seen) and "a.png" in seen
