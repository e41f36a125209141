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


def procedural_texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size, 3) uint8 texture drawn from rng."""
    if kind == "perlin":
        res = 2 ** int(rng.integers(1, 5))
        g = perlin_grid_np((size, size), (res, res), random_permutation(rng), octaves=4)
        g = (g - g.min()) / max(float(np.ptp(g)), 1e-6)
    elif kind == "stripes":
        t = np.arange(size, dtype=np.float32)  # a row and a column broadcast: the same values as a full grid
        th = rng.uniform(0, np.pi)
        period = rng.uniform(6, 40)
        g = 0.5 + 0.5 * np.sin(2 * np.pi * (t[None, :] * np.cos(th) + t[:, None] * np.sin(th)) / period)
    elif kind == "checks":
        t = np.arange(size)
        c = int(rng.integers(6, 40))
        g = ((t[:, None] // c + t[None, :] // c) % 2).astype(np.float32)
    elif kind == "speckle":
        g = rng.random((size, size)).astype(np.float32)
    else:
        raise ValueError(f"unknown procedural texture {kind!r}")
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    rgb = g[..., None] * (c1 - c0)  # c0 + g (c1 - c0), computed in place (same float64 values)
    rgb += c0
    return np.clip(rgb, 0, 255, out=rgb).astype(np.uint8)


def _crop_resize(img: np.ndarray | Image.Image, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Random crop (at least half of each side) resized to shape.

    `img` may be the PIL image of the array: PIL then crops in C, which saves the copy
    `Image.fromarray` makes of a non-contiguous numpy crop (the pixels are the same)."""
    pil = img if isinstance(img, Image.Image) else Image.fromarray(np.ascontiguousarray(img))
    w, h = pil.size
    ch = int(rng.integers(max(1, h // 2), h + 1))
    cw = int(rng.integers(max(1, w // 2), w + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    crop = pil.crop((x0, y0, x0 + cw, y0 + ch))
    return np.asarray(crop.resize((shape[1], shape[0]), Image.BILINEAR))


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
        name = self.names[int(rng.integers(len(self.names)))]
        if name.startswith("procedural:"):
            tex = procedural_texture(name.split(":", 1)[1], max(shape), rng)[: shape[0], : shape[1]]
            return tex, name
        img, grey = self._image(name)
        tex = _crop_resize(img, shape, rng).astype(np.float32)
        if grey:
            tex = tex * rng.uniform(0.4, 1.2, 3)  # grey photograph: random tint
        return np.clip(tex, 0, 255).astype(np.uint8), (Path(name).name if self.folder else name)
