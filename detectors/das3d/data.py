"""DAS3D training pairs synthesized on the fly: the DAS3D detector's training data.

Each item: the normal (I, Z), its augmented (I~_a, Z~_a) after augmentation dropout
(Eq. 12) and the mask M~*. Images go through the paper's preprocessing once (background
removal, resize to `size`); synthesis runs on the metric depth, then depth is scaled to
(0, 1) with the NORMAL image's foreground range (background := 1, rgb background := 0),
so Z~_a - Z is the defect in the same units for both. Draws come from (seed, epoch,
index): an item's key is an (epoch, index) pair, the shared training loop's key, or an
index for the epoch last given to `set_epoch(e)`; identical across workers. Prepared
images are kept in a bounded cache (`cache_size`), so memory does not grow with the split.
Synthesis is anomalygen.depth's public functions; the recipe is read by anomalygen.builds.settings.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from anomalygen.builds.settings import background_config, das3d_config
from anomalygen.depth import TextureSource, augmentation_dropout, remove_background, resize_sample, synthesize
from anomalygen.io import GOOD, ImageSample, open_dataset
from anomalygen.recipes import load_recipe, require

try:
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # torch is a dependency; keep the module importable for docs
    _TorchDataset = object


class DAS3DDataset(_TorchDataset):
    """Training pairs for one class of an MVTec 3D-AD-layout folder (train/good), or for given samples."""

    def __init__(self, source: str | Path | list[ImageSample], cls: str | None = None, size: int | None = None,
                 recipe: dict | str = "das3d", seed: int | None = None, textures: str | None = None,
                 dropout: bool = True, split: str = "train", cache_size: int = 256):
        recipe = load_recipe(recipe) if isinstance(recipe, (str, Path)) else recipe
        self.cfg = das3d_config(recipe)
        self.bg = background_config(recipe)
        self.size = require(recipe, "size", int, 0, 4096) if size is None else size
        self.seed = require(recipe, "seed", int) if seed is None else seed
        self.textures = TextureSource(textures or require(recipe, "rgb.textures", str))
        self.dropout = dropout
        self.epoch = 0
        if isinstance(source, (str, Path)):
            ds = open_dataset(source)
            refs = [r for r in ds.samples(cls, split) if r.defect == GOOD]
            self._loaders = [r.load for r in refs]
        else:
            self._loaders = [(lambda s=s: s) for s in source]
        self._cache: OrderedDict[int, tuple] = OrderedDict()
        self.cache_size = int(cache_size)

    def __len__(self) -> int:
        return len(self._loaders)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def prepared(self, i: int):
        """(xyz, rgb, fg) after resize and background removal (the most recent `cache_size` kept)."""
        if i in self._cache:
            self._cache.move_to_end(i)
        else:
            s = self._loaders[i]()
            xyz, rgb, _ = resize_sample(s.xyz, s.rgb, None, self.size)
            if rgb is None:
                rgb = np.zeros(xyz.shape[:2] + (3,), np.uint8)
            elif rgb.ndim == 2:
                rgb = np.repeat(rgb[..., None], 3, axis=2)
            fg = remove_background(xyz, self.bg, np.random.default_rng(0)) & np.any(xyz != 0, axis=-1)
            self._cache[i] = (xyz, rgb, fg)
            while len(self._cache) > max(self.cache_size, 0):
                self._cache.popitem(last=False)
            return xyz, rgb, fg
        return self._cache[i]

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        import torch

        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        xyz, rgb, fg = self.prepared(i)
        rng = np.random.default_rng([self.seed, epoch, i])
        syn = synthesize(xyz, rgb, fg, self.cfg, rng, self.textures)
        z, z_a = xyz[..., 2], syn.xyz[..., 2]
        mask = syn.mask
        rgb_a = syn.rgb
        d_i = d_z = 0
        if self.dropout:
            rgb_a, z_a, mask, d_i, d_z = augmentation_dropout(rgb, rgb_a, z, z_a, mask, rng, self.cfg.p_d)
        zf = z[fg]
        lo, hi = float(zf.min()), float(zf.max())
        span = max(hi - lo, 1e-9)

        def depth(zz):
            return torch.from_numpy(((np.where(fg, zz, hi) - lo) / span).astype(np.float32))[None]

        def image(im):
            return torch.from_numpy((im.astype(np.float32) / 255.0 * fg[..., None]).transpose(2, 0, 1).copy())

        return {"rgb": image(rgb), "depth": depth(z), "rgb_aug": image(rgb_a), "depth_aug": depth(z_a),
                "mask": torch.from_numpy(mask.astype(np.float32))[None], "foreground": torch.from_numpy(fg)[None],
                "drop_rgb": d_i, "drop_depth": d_z}
