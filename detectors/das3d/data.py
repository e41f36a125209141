"""DAS3D training pairs synthesized on the fly: the DAS3D detector's training data.

Each item: the normal (I, Z), its augmented (I~_a, Z~_a) after augmentation dropout
(Eq. 12) and the mask M~*. Images go through the paper's preprocessing once (`prepare`:
resize to `size`, background removal), synthesis runs on the metric depth, then depth is
scaled to (0, 1) with the NORMAL image's foreground range (background := 1, rgb
background := 0), so Z~_a - Z is the defect in the same units for both. Draws come from
(seed, epoch, index): an item's key is an (epoch, index) pair, the shared training loop's
key, or an index for the epoch last given to `set_epoch(e)`; identical across workers. With `repeat`
> 1 each sample gives that many items (index i draws from sample i mod the sample count).
With `normal_fraction` > 0 that share of items is left normal (mask all zero), drawn from
its own stream so the defect draws of the other items do not depend on it. Prepared
images are kept in a bounded cache (`cache_size`), so memory does not grow with the split.
Synthesis is anomalygen.depth's public functions; the recipe is read by anomalygen.builds.settings.

Background removal (`foreground`): "plane" is the paper's Section 4.1 step alone (RANSAC
plane, numpy only: what the detector uses, so it trains where open3d is absent);
"plane+dbscan" also keeps only the largest DBSCAN cluster (BTF / M3DM; open3d).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from anomalygen.builds.settings import background_config, das3d_config
from anomalygen.depth import TextureSource, augmentation_dropout, resize_sample, synthesize
from anomalygen.errors import AnomalygenError
from anomalygen.io import GOOD, ImageSample, open_dataset
from anomalygen.io.samples import SampleRef
from anomalygen.recipes import load_recipe, require
from anomalygen.scans import BackgroundConfig, remove_background, remove_plane

try:
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # torch is a dependency; keep the module importable for docs
    _TorchDataset = object

FOREGROUND = {"plane": remove_plane, "plane+dbscan": remove_background}
_NORMAL_STREAM = 1  # seed stream of the "leave this item normal" draw


def prepare(sample: ImageSample, size: int, bg: BackgroundConfig, foreground: str = "plane"):
    """(xyz, rgb uint8 (H,W,3), fg) of a sample after resize to size x size and background removal.
    A grey image is repeated to 3 channels; a sample without rgb gets a black image."""
    xyz, rgb, _ = resize_sample(np.asarray(sample.xyz, np.float32), sample.rgb, None, size)
    if rgb is None:
        rgb = np.zeros(xyz.shape[:2] + (3,), np.uint8)
    elif rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    fg = FOREGROUND[foreground](xyz, bg, np.random.default_rng(0)) & np.any(xyz != 0, axis=-1)
    return xyz, rgb, fg


def depth_range(z: np.ndarray, fg: np.ndarray) -> tuple[float, float]:
    """(lo, hi) of the foreground depth: the (0, 1) scaling of Section 4.1."""
    if not fg.any():
        raise AnomalygenError("no foreground pixel left after background removal")
    zf = z[fg]
    return float(zf.min()), float(zf.max())


def depth_tensor(z: np.ndarray, fg: np.ndarray, lo: float, hi: float):
    """(1,H,W) float32: removed pixels := the largest remaining depth, then (z - lo) / (hi - lo)."""
    import torch

    span = max(hi - lo, 1e-9)
    return torch.from_numpy(((np.where(fg, z, hi) - lo) / span).astype(np.float32))[None]


def image_tensor(rgb: np.ndarray, fg: np.ndarray):
    """(3,H,W) float32 in [0, 1], removed pixels := 0."""
    import torch

    return torch.from_numpy((rgb.astype(np.float32) / 255.0 * fg[..., None]).transpose(2, 0, 1).copy())


class DAS3DDataset(_TorchDataset):
    """Training pairs for one class of an MVTec 3D-AD-layout folder (train/good), or for given samples
    (a list, or any indexable of samples such as anomalygen.detectors.data.SampleDataset)."""

    def __init__(self, source, cls: str | None = None, size: int | None = None,
                 recipe: dict | str = "das3d", seed: int | None = None, textures: str | None = None,
                 dropout: bool = True, split: str = "train", cache_size: int = 256,
                 foreground: str = "plane+dbscan", normal_fraction: float = 0.0, repeat: int = 1):
        recipe = load_recipe(recipe) if isinstance(recipe, (str, Path)) else recipe
        self.cfg = das3d_config(recipe)
        self.bg = background_config(recipe)
        self.size = require(recipe, "size", int, 0, 4096) if size is None else size
        self.seed = require(recipe, "seed", int) if seed is None else seed
        self.textures = TextureSource(textures or require(recipe, "rgb.textures", str))
        self.dropout = dropout
        if foreground not in FOREGROUND:
            raise AnomalygenError(f"foreground must be one of {', '.join(FOREGROUND)}, got {foreground!r}")
        self.foreground = foreground
        self.normal_fraction = float(normal_fraction)
        self.repeat = max(int(repeat), 1)
        self.epoch = 0
        if isinstance(source, (str, Path)):
            ds = open_dataset(source)
            refs = [r for r in ds.samples(cls, split) if r.defect == GOOD]
            self._source = [r.load for r in refs]
        elif isinstance(source, (list, tuple)):
            self._source = [(lambda s=s: s) for s in source]
        else:
            self._source = source  # indexable: source[i] loads sample i
        self._cache: OrderedDict[int, tuple] = OrderedDict()
        self.cache_size = int(cache_size)

    def __len__(self) -> int:
        return len(self._source) * self.repeat

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _load(self, i: int) -> ImageSample:
        s = self._source[i]
        s = s() if callable(s) else s
        return s.load() if isinstance(s, SampleRef) else s

    def prepared(self, i: int):
        """(xyz, rgb, fg) after resize and background removal (the most recent `cache_size` kept)."""
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        out = prepare(self._load(i), self.size, self.bg, self.foreground)
        self._cache[i] = out
        while len(self._cache) > max(self.cache_size, 0):
            self._cache.popitem(last=False)
        return out

    def is_normal(self, epoch: int, i: int) -> bool:
        """Whether item (epoch, i) is left normal (probability `normal_fraction`, its own seed stream)."""
        if self.normal_fraction <= 0:
            return False
        return bool(np.random.default_rng([self.seed, epoch, i, _NORMAL_STREAM]).random() < self.normal_fraction)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        import torch

        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        xyz, rgb, fg = self.prepared(i % len(self._source))
        z = xyz[..., 2]
        if self.is_normal(epoch, i):
            z_a, rgb_a, mask, d_i, d_z = z, rgb, np.zeros(fg.shape, np.float32), 1, 1
        else:
            rng = np.random.default_rng([self.seed, epoch, i])
            syn = synthesize(xyz, rgb, fg, self.cfg, rng, self.textures)
            z_a, rgb_a, mask = syn.xyz[..., 2], syn.rgb, syn.mask
            d_i = d_z = 0
            if self.dropout:
                rgb_a, z_a, mask, d_i, d_z = augmentation_dropout(rgb, rgb_a, z, z_a, mask, rng, self.cfg.p_d)
        lo, hi = depth_range(z, fg)
        return {"rgb": image_tensor(rgb, fg), "depth": depth_tensor(z, fg, lo, hi),
                "rgb_aug": image_tensor(rgb_a, fg), "depth_aug": depth_tensor(z_a, fg, lo, hi),
                "mask": torch.from_numpy(mask.astype(np.float32))[None], "foreground": torch.from_numpy(fg)[None],
                "drop_rgb": d_i, "drop_depth": d_z, "index": i}
