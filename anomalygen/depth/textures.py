"""Texture images I_u for RGB anomaly mixing (DAS3D Eq. 8).

DAS3D draws I_u from DTD, which cannot be downloaded here. `TextureSource` reads any
image folder (DTD's `images/<category>/*.jpg` included, searched recursively) or, by
default, a source that needs no download: the texture photographs scikit-image ships
(brick, grass, gravel, ...) plus procedural textures (fractal Perlin, stripes, checks,
speckle), each tinted with a random colour when grey.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from anomalygen.errors import AnomalygenError
from anomalygen.perlin import perlin_grid_np, random_permutation

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
SKIMAGE_TEXTURES = ("brick", "grass", "gravel", "immunohistochemistry", "hubble_deep_field")
PROCEDURAL = ("perlin", "stripes", "checks", "speckle")


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    return np.asarray(getattr(skimage.data, name)())


def _to_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3].astype(np.uint8)


def procedural_texture(kind: str, size: int, rng: np.random.Generator, at: np.ndarray | None = None) -> np.ndarray:
    """(size, size, 3) uint8 texture drawn from rng.

    With `at` (flat indices into the size x size grid), only those pixels, (N, 3): the same rng
    draws and the same values as the whole texture read at `at` (Eq. 8 reads I_u under M* only).
    Perlin and speckle still make the whole field (Perlin's range normalization reads all of it;
    speckle's draw must consume the same random numbers); stripes and checks are evaluated at `at`."""
    if kind == "perlin":
        res = 2 ** int(rng.integers(1, 5))
        g = perlin_grid_np((size, size), (res, res), random_permutation(rng), octaves=4)
        g = (g - g.min()) / max(float(np.ptp(g)), 1e-6)
        g = g if at is None else g.reshape(-1)[at]
    elif kind == "stripes":
        t = np.arange(size, dtype=np.float32)  # a row and a column broadcast: the same values as a full grid
        th = rng.uniform(0, np.pi)
        period = rng.uniform(6, 40)
        x, y = (t[None, :], t[:, None]) if at is None else (t[at % size], t[at // size])
        g = 0.5 + 0.5 * np.sin(2 * np.pi * (x * np.cos(th) + y * np.sin(th)) / period)
    elif kind == "checks":
        t = np.arange(size)
        c = int(rng.integers(6, 40))
        x, y = (t[None, :], t[:, None]) if at is None else (at % size, at // size)
        g = ((y // c + x // c) % 2).astype(np.float32)
    elif kind == "speckle":
        g = rng.random((size, size))
        g = (g if at is None else g.reshape(-1)[at]).astype(np.float32)
    else:
        raise ValueError(f"unknown procedural texture {kind!r}")
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return _colour(g, c1 - c0, c0)


def _colour(g: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """uint8 g.shape + (3,): clip(g[..., None] * gain + offset) with its float64 values, computed channel by
    channel (a broadcast over a last axis of 3 runs ~5x slower)."""
    rgb = gain[:, None] * np.asarray(g, np.float64).reshape(1, -1)  # (3, N)
    rgb += offset[:, None]
    return _channels_last(np.clip(rgb, 0, 255, out=rgb), g.shape)


def _tint(img: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """uint8 clip(img * gain) of a uint8 (..., 3) image and per-channel gains: the float64 values of
    `img.astype(np.float32) * gain` (uint8 -> float64 is exact either way, in one pass instead of two)."""
    rgb = np.asarray(img, np.float64) * gain
    return np.clip(rgb, 0, 255, out=rgb).astype(np.uint8)


def _channels_last(planes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(3, N) float values in [0, 255] -> C-contiguous uint8 shape + (3,)."""
    return np.ascontiguousarray(planes.astype(np.uint8).T).reshape(shape + (3,))


def _crop_resize(img: np.ndarray | Image.Image, shape: tuple[int, int], rng: np.random.Generator,
                 box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Random crop (at least half of each side) resized to shape.

    `img` may be the PIL image of the array: PIL then crops in C, which saves the copy
    `Image.fromarray` makes of a non-contiguous numpy crop (the pixels are the same).
    `box` = (top, bottom, left, right) returns only those output rows and columns, the same
    bytes as slicing the whole resized crop (see `_sub_box`)."""
    pil = img if isinstance(img, Image.Image) else Image.fromarray(np.ascontiguousarray(img))
    w, h = pil.size
    ch = int(rng.integers(max(1, h // 2), h + 1))
    cw = int(rng.integers(max(1, w // 2), w + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    crop = pil.crop((x0, y0, x0 + cw, y0 + ch))
    if box is None:
        return np.asarray(crop.resize((shape[1], shape[0]), Image.BILINEAR))
    sub = _sub_box(box, shape, (ch, cw))
    if sub is None:
        top, bottom, left, right = box
        return np.asarray(crop.resize((shape[1], shape[0]), Image.BILINEAR))[top:bottom, left:right]
    (top, bottom, left, right), src = sub
    out = np.asarray(crop.resize((right - left, bottom - top), Image.BILINEAR, box=src))
    return out[box[0] - top:box[1] - top, box[2] - left:box[3] - left]


def _sub_box(box: tuple[int, int, int, int], shape: tuple[int, int], crop: tuple[int, int]):
    """(output box, PIL source box): `crop.resize(size, BILINEAR, box=source)` gives the output pixels
    `output box` = (top, bottom, left, right) of the whole (crop -> shape) resize byte for byte, and
    covers `box`; None where that cannot be guaranteed.

    PIL (libImaging/Resample.c) places output pixel xx of a resize of the source span [in0, in1) to n
    pixels at center = in0 + (xx + 0.5) * (in1 - in0) / n, clamps the filter window to the whole source
    image (here: the crop) and derives the fixed-point weights from center and scale alone. For a
    sub-span starting at output pixel o, in0 = o * scale, and center and scale equal the whole resize's
    when every one of these numbers is exact: an output side that is a power of two and source
    coordinates with fewer than 24 significant bits (in0 is passed as a C float). Each pass rounds to
    uint8, so the two passes must also run in the same order: Pillow >= 11 runs the vertical pass first
    when the height shrinks by more than twice the width (`horizontal_first` there, copied here), which
    a full-width or full-height box keeps as the whole resize has it."""
    top, bottom, left, right = box
    (h, w), (ch, cw) = shape, crop
    if any(n & (n - 1) or n * c >= 1 << 24 for n, c in ((h, ch), (w, cw))):
        return None

    def horizontal_first(out_h, out_w):
        return not (ch - out_h > 0 and ch - out_h > (cw - out_w) * 2)

    whole = horizontal_first(h, w)
    if horizontal_first(bottom - top, right - left) != whole:
        top, bottom, left, right = (top, bottom, 0, w) if not whole else (0, h, left, right)
    return (top, bottom, left, right), (left * cw / w, top * ch / h, right * cw / w, bottom * ch / h)


@lru_cache(maxsize=None)
def _skimage_texture(name: str) -> tuple[Image.Image, bool]:
    """A scikit-image texture as a PIL image and whether it is grey; loaded once per process
    (a build makes a TextureSource per image)."""
    img = _to_rgb(_skimage(name.split(":", 1)[1]))
    return Image.fromarray(img), bool(np.allclose(img[..., 0], img[..., 1]))


class TextureSource:
    """Draws texture images I_u of a requested size from a folder or the offline default."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = None if folder in (None, "default") else Path(folder)
        self._cache: dict[str, tuple[Image.Image, bool]] = {}
        if self.folder is not None:
            if not self.folder.is_dir():
                raise AnomalygenError(f"--textures {self.folder}: no such directory")
            self.names = sorted(str(p) for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.names:
                raise AnomalygenError(f"--textures {self.folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        else:
            self.names = [f"skimage:{n}" for n in SKIMAGE_TEXTURES] + [f"procedural:{k}" for k in PROCEDURAL]

    def __len__(self) -> int:
        return len(self.names)

    def _image(self, name: str) -> tuple[Image.Image, bool]:
        """The texture as a PIL image, and whether it is a grey scikit-image photograph (to tint)."""
        if name.startswith("skimage:"):
            return _skimage_texture(name)
        if name not in self._cache:
            try:
                with Image.open(name) as im:
                    img = im.convert("RGB")
            except OSError as exc:
                raise AnomalygenError(f"{name}: unreadable texture image ({exc})") from None
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[name] = (img, False)
        return self._cache[name]

    def draw(self, shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """(H, W, 3) uint8 texture and its name."""
        return self._draw(shape, rng, None)

    def draw_at(self, shape: tuple[int, int], rng: np.random.Generator, idx: np.ndarray) -> tuple[np.ndarray, str]:
        """The texture `draw` makes, read at the flat pixel indices `idx` of an (H, W)
        image: ((N, 3) uint8, name). The same rng draws and the same values; only
        what Eq. 8 reads is computed (the resize covers the pixels' bounding box)."""
        return self._draw(shape, rng, np.asarray(idx, dtype=np.intp))

    def _draw(self, shape: tuple[int, int], rng: np.random.Generator, idx: np.ndarray | None):
        name = self.names[int(rng.integers(len(self.names)))]
        if name.startswith("procedural:"):
            size = max(shape)
            at = None if idx is None else (idx // shape[1]) * size + idx % shape[1]
            tex = procedural_texture(name.split(":", 1)[1], size, rng, at)
            return (tex[: shape[0], : shape[1]] if idx is None else tex), name
        img, grey = self._image(name)
        if idx is None:
            tex = _crop_resize(img, shape, rng)
        else:
            rows, cols = idx // shape[1], idx % shape[1]
            box = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1) if len(idx) else (0, 1, 0, 1)
            sub = _crop_resize(img, shape, rng, box)
            tex = np.take(sub.reshape(-1, 3), (rows - box[0]) * (box[3] - box[2]) + (cols - box[2]), axis=0)
        if grey:  # grey photograph: random tint
            tex = _tint(tex, rng.uniform(0.4, 1.2, 3))
        return tex.astype(np.uint8), (Path(name).name if self.folder else name)
