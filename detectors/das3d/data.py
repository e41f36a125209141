"""DAS3D training pairs synthesized on the fly: the DAS3D detector's training data.

Each item: the normal (I, Z), its augmented (I~_a, Z~_a) after augmentation dropout
(Eq. 12) and the mask M~*. Images go through the paper's preprocessing once (`prepare`:
background plane removed at the scan's own resolution, removed rgb := 0, then resize to
`size`, as Section 4.1 orders it); synthesis runs on the metric depth, then the network input
Z~_a is scaled to (0, 1) by its own foreground range and the target Z with the same range
(anomalygen.depth.das3d_normalize: the rule scoring applies to a test scan). Draws come from
(seed, epoch, index): an item's key is an (epoch, index) pair, the shared training loop's
key, or an index for the epoch last given to `set_epoch(e)`; identical across workers. With `repeat`
> 1 each sample gives that many items (index i draws from sample i mod the sample count).
One coin decides which items are normal: a share `normal_fraction` of the items has an empty
M~* (drawn from its own stream, so the defect draws of the other items do not depend on it);
every other item carries its defect in at least one modality (Eq. 12's dropout never drops
both there). Prepared images are kept in a bounded cache (`cache_size`), so memory does not
grow with the split. Synthesis is anomalygen.depth's public functions; the recipe is read by
anomalygen.builds.settings.

Background removal (`foreground`): "plane" is the paper's Section 4.1 step alone (RANSAC
plane, numpy only: what the detector uses, so it trains where open3d is absent);
"plane+dbscan" also keeps only the largest DBSCAN cluster (BTF / M3DM; open3d).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from anomalygen.builds.settings import background_config, das3d_config
from anomalygen.depth import TextureSource, augmentation_dropout, das3d_normalize, resize_sample, synthesize
from anomalygen.depth.synth import measured
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


class Prepared(NamedTuple):
    """A scan as the networks take it: xyz, rgb uint8 (H,W,3) and foreground at size x size, and the
    foreground at the scan's own resolution (`object`: where a score map may be non-zero)."""

    xyz: np.ndarray
    rgb: np.ndarray
    fg: np.ndarray
    object: np.ndarray


def prepare(sample: ImageSample, size: int, bg: BackgroundConfig, foreground: str = "plane") -> Prepared:
    """Section 4.1 in the paper's order: background plane removed on the scan as measured, removed rgb
    := 0, then xyz and the foreground resized (nearest) and rgb resized (bilinear, so the object's
    edge blends into black, never into the support's colour) to size x size. A grey image is
    repeated to 3 channels; a sample without rgb gets a black image."""
    xyz = np.asarray(sample.xyz, np.float32)
    obj = FOREGROUND[foreground](xyz, bg, np.random.default_rng(0)) & measured(xyz)
    rgb = sample.rgb
    if rgb is None:
        rgb = np.zeros(xyz.shape[:2] + (3,), np.uint8)
    elif rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    rgb = rgb * obj[..., None].astype(rgb.dtype)
    xyz_s, rgb_s, fg = resize_sample(xyz, rgb, obj, size)
    return Prepared(xyz_s, rgb_s, fg & measured(xyz_s), obj)


def network_inputs(z: np.ndarray, rgb: np.ndarray, fg: np.ndarray, span: tuple[float, float] | None = None):
    """(rgb (3,H,W), depth (1,H,W)) float32 tensors and the depth range used: anomalygen.depth.das3d_normalize
    (depth scaled by its own foreground range unless `span` is given; removed rgb := 0)."""
    import torch

    d, r, span = das3d_normalize(z, fg, rgb, span)
    return torch.from_numpy(r.transpose(2, 0, 1).copy()), torch.from_numpy(d)[None], span


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
        out = prepare(self._load(i), self.size, self.bg, self.foreground)[:3]  # `object` is for scoring
        self._cache[i] = out
        while len(self._cache) > max(self.cache_size, 0):
            self._cache.popitem(last=False)
        return out

    def is_normal(self, epoch: int, i: int) -> bool:
        """Whether item (epoch, i) is normal, M~* empty (probability `normal_fraction`, its own seed stream)."""
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
                rgb_a, z_a, mask, d_i, d_z = augmentation_dropout(rgb, rgb_a, z, z_a, mask, rng, self.cfg.p_d,
                                                                  keep_anomaly=True)
        rgb_aug, depth_aug, span = network_inputs(z_a, rgb_a, fg)
        rgb_t, depth_t, _ = network_inputs(z, rgb, fg, span)
        return {"rgb": rgb_t, "depth": depth_t, "rgb_aug": rgb_aug, "depth_aug": depth_aug,
                "mask": torch.from_numpy(mask.astype(np.float32))[None], "foreground": torch.from_numpy(fg)[None],
                "drop_rgb": d_i, "drop_depth": d_z, "index": i}
