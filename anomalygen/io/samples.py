"""Typed samples and the lazy dataset interface every layout implements.

A `SampleRef` is cheap (paths + metadata); `.load()` reads the arrays. Datasets
list refs, so scanning a 1600-sample tree touches no file contents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from anomalygen.errors import LayoutError

GOOD = "good"  # our name for a normal sample's "defect" in every layout


@dataclass
class PointSample:
    """An unorganized point cloud: (N,3) points and (N,) 0/1 labels (all 0 when normal)."""

    points: np.ndarray
    labels: np.ndarray
    cls: str
    split: str
    defect: str = GOOD
    name: str = ""
    path: Path | None = None
    rgb: np.ndarray | None = None

    @property
    def anomalous(self) -> bool:
        return self.defect != GOOD

    @property
    def anomaly_ratio(self) -> float:
        return float(np.mean(self.labels)) if len(self.labels) else 0.0


@dataclass
class ImageSample:
    """An organized point cloud: xyz (H,W,3) float32 with zeros where invalid, rgb (H,W,3) uint8, mask (H,W) 0/1."""

    xyz: np.ndarray
    rgb: np.ndarray | None
    mask: np.ndarray
    cls: str
    split: str
    defect: str = GOOD
    name: str = ""
    path: Path | None = None

    @property
    def anomalous(self) -> bool:
        return self.defect != GOOD

    @property
    def valid(self) -> np.ndarray:
        """(H,W) bool: pixels with a measured point (not all-zero xyz)."""
        return np.any(self.xyz != 0, axis=-1)

    @property
    def anomaly_ratio(self) -> float:
        return float(np.mean(self.mask > 0))


Sample = PointSample | ImageSample


@dataclass(frozen=True)
class SampleRef:
    """Where a sample lives and what it is, without its arrays."""

    layout: str
    cls: str
    split: str
    defect: str
    name: str
    files: dict = field(hash=False, compare=False)
    loader: Callable[["SampleRef"], Sample] = field(hash=False, compare=False, repr=False)

    @property
    def anomalous(self) -> bool:
        return self.defect != GOOD

    @property
    def path(self) -> Path:
        return next(iter(self.files.values()))

    def load(self) -> Sample:
        return self.loader(self)


class Dataset:
    """A dataset on disk in one layout. Subclasses fill `_scan_class`."""

    layout: str = ""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise LayoutError(f"{root}: not a directory")
        self._cache: dict[str, list[SampleRef]] = {}

    def classes(self) -> list[str]:
        raise NotImplementedError

    def _scan_class(self, cls: str) -> list[SampleRef]:
        raise NotImplementedError

    def samples(self, cls: str | None = None, split: str | None = None) -> list[SampleRef]:
        out: list[SampleRef] = []
        for c in ([cls] if cls else self.classes()):
            if c not in self._cache:
                self._cache[c] = self._scan_class(c)
            out.extend(r for r in self._cache[c] if split is None or r.split == split)
        return out

    def missing(self, ref: SampleRef) -> str | None:
        """'<path>: why' when `ref` cannot be read for want of a file (an anomalous sample without its
        ground truth), known without opening any file; None otherwise. The layout's loader refuses the
        same sample with the same words."""
        return None

    def splits(self, cls: str) -> list[str]:
        return sorted({r.split for r in self.samples(cls)})

    def __iter__(self) -> Iterator[SampleRef]:
        return iter(self.samples())

    def __len__(self) -> int:
        return len(self.samples())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, classes={len(self.classes())})"
