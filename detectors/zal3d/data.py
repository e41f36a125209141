"""3DzAL's view of an organized cloud: prepared grids, point patches, and the training items.

A training scan is prepared once per task (xyz resized to `image_size`, background removed, FPFH
pooled per grid cell, the valid points' KD-tree) into a `Prepared` record. A patch is the
`patch_points` nearest valid points of an anchor (scipy KD-tree), centered on its centroid and
scaled to unit RMS radius, so that normal and pseudo-anomalous patches differ in shape, not in
where or how large they are. At scoring time a grid cell's patch is taken around the mean of the
cell's valid points.

Training items (`ZAL3DItems`, key (epoch, index)): an epoch covers every cell of every training
scan once. The (scan, cell) pairs are shuffled by (seed, epoch) and cut into items of `positives`
cells; per cell, the positive is the patch around a random valid pixel of the cell (with the
cell's FPFH for Eq. 2), and its `negatives` pseudo-anomalous patches (anomalygen.pseudo: adding /
removing 1:1 by default) are anchored at points of that positive patch, so that a negative differs
from its positive by the pseudo anomaly, not by where on the object it lies. All of it is CPU work
on the item's numpy Generator: it runs in the DataLoader's workers (`run.loader_workers`), beside
the training step, never inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch.utils.data import Dataset

from anomalygen.pseudo import PatchSettings, pseudo_patches

CAMERA = (0.0, 0.0, 0.0)  # MVTec 3D-AD xyz are camera coordinates: surfaces face the origin


@dataclass
class Prepared:
    """xyz (S,S,3) prepared grid (invalid = 0); fpfh (G*G,33) cell features; cell: pixels per cell side;
    rgb: the sample's image when the RGB branch is on. points / tree / pixel_cell: the valid points,
    their KD-tree and each one's cell id (row-major in the G x G grid; -1 outside it)."""

    xyz: np.ndarray
    fpfh: np.ndarray
    cell: int
    rgb: np.ndarray | None = None
    points: np.ndarray = field(init=False, repr=False)
    tree: cKDTree = field(init=False, repr=False)
    pixel_cell: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        valid = self.valid
        self.points = self.xyz[valid].astype(np.float64)
        self.tree = cKDTree(self.points) if len(self.points) else None
        g = self.xyz.shape[0] // self.cell
        rows, cols = np.nonzero(valid)
        inside = (rows < g * self.cell) & (cols < g * self.cell)
        self.pixel_cell = np.where(inside, (rows // self.cell) * g + cols // self.cell, -1)

    @property
    def valid(self) -> np.ndarray:
        return np.any(self.xyz != 0, axis=-1)

    @property
    def cells(self) -> np.ndarray:
        """The grid cells holding at least one valid point, ascending."""
        return np.unique(self.pixel_cell[self.pixel_cell >= 0])


def normalize_patches(patches: np.ndarray) -> np.ndarray:
    """(M,K,3) patches centered on their centroid and scaled to unit RMS radius."""
    c = patches - patches.mean(axis=1, keepdims=True)
    rms = np.sqrt((c ** 2).sum(-1).mean(-1))[:, None, None]
    return (c / np.maximum(rms, 1e-12)).astype(np.float32)


def cell_patches(xyz: np.ndarray, cell: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(patches (C,K,3) unnormalized, cell indices (C,) into the G*G grid) for the cells holding valid points."""
    s = xyz.shape[0]
    g = s // cell
    valid = np.any(xyz != 0, axis=-1)
    cloud = xyz[valid].astype(np.float64)
    if len(cloud) == 0:
        return np.zeros((0, k, 3), np.float32), np.zeros(0, np.int64)
    cells = xyz[:g * cell, :g * cell].reshape(g, cell, g, cell, 3).transpose(0, 2, 1, 3, 4).reshape(g * g, cell * cell, 3)
    cv = valid[:g * cell, :g * cell].reshape(g, cell, g, cell).transpose(0, 2, 1, 3).reshape(g * g, cell * cell)
    count = cv.sum(1)
    ids = np.flatnonzero(count > 0)
    centers = (cells[ids] * cv[ids, :, None]).sum(1) / count[ids, None]
    kk = min(k, len(cloud))
    _, near = cKDTree(cloud).query(centers, k=kk)
    near = near.reshape(len(ids), kk)
    if kk < k:  # fewer valid points than a patch holds: repeat them
        near = np.concatenate([near, near[:, np.arange(k - kk) % kk]], axis=1)
    return cloud[near].astype(np.float32), ids


def _knn_patch(sample: Prepared, anchor: np.ndarray, k: int) -> np.ndarray:
    """The k valid points of `sample` nearest `anchor` (repeated when it holds fewer), (k,3)."""
    kk = min(k, len(sample.points))
    _, near = sample.tree.query(anchor, k=kk)
    near = np.atleast_1d(near)
    if kk < k:
        near = near[np.arange(k) % kk]
    return sample.points[near]


@dataclass(frozen=True)
class ItemSettings:
    """What an item holds: positives cells, negatives pseudo patches per positive, patch_points per patch."""

    positives: int
    negatives: int
    patch_points: int
    kinds: tuple[str, ...]
    seed: int
    attach: str = "inserted"


class ZAL3DItems(Dataset):
    """Key (epoch, index) -> {"pos" (P,K,3), "neg" (P*Q,K,3), "fpfh" (P,33)}; see the module doc.
    Every draw is a function of (seed, epoch, index), so a key gives the same item in any process."""

    def __init__(self, prepared: list[Prepared], interest: list[np.ndarray], settings: ItemSettings):
        self.prepared, self.interest, self.settings = prepared, interest, settings
        self.pairs = np.array([(i, c) for i, p in enumerate(prepared) for c in p.cells], np.int64).reshape(-1, 2)
        if not len(self.pairs):
            raise ValueError("no training scan holds a valid point")
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return math.ceil(len(self.pairs) / self.settings.positives)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.settings.seed, 1, epoch]).permutation(len(self.pairs)))
        return self._order[1]

    def cells_of(self, epoch: int, index: int) -> np.ndarray:
        """(P,2) (scan, cell) pairs of item `index` of `epoch`; the last item wraps around to the epoch's
        first pairs, so that every item holds P positives."""
        p = self.settings.positives
        return self.pairs[self._epoch_order(epoch)[(index * p + np.arange(p)) % len(self.pairs)]]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        s = self.settings
        picks = self.cells_of(epoch, index)
        rng = np.random.default_rng([s.seed, epoch, index])
        patch = PatchSettings(k=s.patch_points, viewpoint=CAMERA, attach=s.attach)
        pos, neg, fpfh = [], [], []
        for scan, cell in picks:
            sample = self.prepared[scan]
            anchor = sample.points[rng.choice(np.flatnonzero(sample.pixel_cell == cell))]
            positive = _knn_patch(sample, anchor, s.patch_points)
            anchors = positive[rng.integers(len(positive), size=s.negatives)]
            drawn = pseudo_patches(sample.points, self.interest, s.negatives, rng, patch, s.kinds, sample.tree, anchors)
            pos.append(positive)
            neg += [_fill(d["points"], s.patch_points) for d in drawn]
            fpfh.append(sample.fpfh[cell])
        return {"pos": torch.from_numpy(normalize_patches(np.stack(pos))),
                "neg": torch.from_numpy(normalize_patches(np.stack(neg))),
                "fpfh": torch.from_numpy(np.stack(fpfh).astype(np.float32))}


def _fill(points: np.ndarray, k: int) -> np.ndarray:
    """A patch of a cloud smaller than k points, its points repeated up to k."""
    return points if len(points) == k else points[np.arange(k) % len(points)]
