"""3DzAL's view of an organized cloud: prepared grids, point patches, and the training items.

A training sample is prepared once (xyz resized to `image_size`, background removed, FPFH
per grid cell) into a `Prepared` record. A patch is the `patch_points` nearest valid points
of an anchor (scipy KD-tree), centered on its centroid and scaled to unit RMS radius, so that
normal and pseudo-anomalous patches differ in shape, not in where or how large they are.
At scoring time a grid cell's patch is taken around the mean of the cell's valid points.

A training item (one draw of one training sample): `positives` normal patches around random
valid pixels with the FPFH of their cells, and `negatives` pseudo-anomalous patches per
positive (anomalygen.pseudo: adding / removing 1:1 by default), drawn from the item's Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from anomalygen.pseudo import PatchSettings, pseudo_patches
from anomalygen.detectors.training import EpochItems


@dataclass
class Prepared:
    """xyz (S,S,3) prepared grid (invalid = 0); fpfh (G*G,33) cell features; cell: pixels per cell side;
    rgb: the sample's image when the RGB branch is on."""

    xyz: np.ndarray
    fpfh: np.ndarray
    cell: int
    rgb: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        return np.any(self.xyz != 0, axis=-1)


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


class ZAL3DItems(EpochItems):
    """Item: {"pos" (P,K,3), "neg" (P*Q,K,3), "fpfh" (P,33), and the loss weights} from one prepared sample."""

    def __init__(self, prepared: list[Prepared], interest: list[np.ndarray], cfg, repeat: int):
        super().__init__(prepared, cfg.train.seed, repeat)
        self.interest = interest
        self.cfg = cfg

    def item(self, sample: Prepared, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        c = self.cfg
        valid = sample.valid
        cloud = sample.xyz[valid].astype(np.float64)
        rows, cols = np.nonzero(valid)
        g = sample.xyz.shape[0] // sample.cell
        inside = (rows < g * sample.cell) & (cols < g * sample.cell)
        pick = rng.choice(np.flatnonzero(inside), c.positives, replace=int(inside.sum()) < c.positives)
        k = min(c.patch_points, len(cloud))
        _, near = cKDTree(cloud).query(cloud[pick], k=k)
        pos = cloud[near.reshape(c.positives, k)]
        cells = (rows[pick] // sample.cell) * g + cols[pick] // sample.cell
        settings = PatchSettings(k=k)
        neg = pseudo_patches(cloud, self.interest, c.positives * c.negatives, rng, settings, tuple(c.kinds))
        neg = np.stack([p["points"] for p in neg])
        w = lambda v: torch.tensor(float(v))  # noqa: E731
        return {"pos": torch.from_numpy(normalize_patches(pos)), "neg": torch.from_numpy(normalize_patches(neg)),
                "fpfh": torch.from_numpy(sample.fpfh[cells].astype(np.float32)),
                "w_con": w(c.w_con), "w_rd": w(c.w_rd), "w_bce": w(c.w_bce), "temperature": w(c.temperature)}
