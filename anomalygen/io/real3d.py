"""Real3D-AD layout (FORMATS.md):

    <class>/train/<k>_template.pcd
    <class>/test/<n>_<bulge|sink|cut|copy>.pcd, <n>_good.pcd
    <class>/gt/<n>_<type>.txt                  x y z label  (SPACE)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FormatError, LayoutError
from ._paths import defect_from_stem, natural_key, subdirs
from .gt_txt import SPACE, read_gt_txt, write_gt_txt
from .pcd import read_pcd_xyz, write_pcd
from .samples import GOOD, Dataset, PointSample, SampleRef

LAYOUT = "real3d-ad"
DEFECTS = ("bulge", "sink", "cut", "copy")
CLASSES = ("airplane", "car", "candybar", "chicken", "diamond", "duck", "fish", "gemstone",
           "seahorse", "shell", "starfish", "toffees")


def sample_name(cls: str, split: str, index: int, defect: str = GOOD) -> str:
    return f"{index}_template" if split == "train" else f"{index}_{defect}"


def _load(ref: SampleRef) -> PointSample:
    f = ref.files
    if ref.anomalous:
        if "gt" not in f:
            raise FormatError(f"{f['pcd']}: anomalous sample has no gt file {ref.name}.txt")
        points, labels = read_gt_txt(f["gt"], SPACE)
        labels = labels.astype(np.uint8)
    else:
        points = read_pcd_xyz(f["pcd"])
        labels = np.zeros(len(points), np.uint8)
    return PointSample(points=points, labels=labels, cls=ref.cls, split=ref.split,
                       defect=ref.defect, name=ref.name, path=f["pcd"])


class Real3DADDataset(Dataset):
    layout = LAYOUT

    def __init__(self, root: str | os.PathLike):
        super().__init__(root)
        if not self.root.is_dir():
            raise LayoutError(f"{root}: not a directory")

    def classes(self) -> list[str]:
        return [d.name for d in subdirs(self.root) if (d / "train").is_dir() or (d / "test").is_dir()]

    def _scan_class(self, cls: str) -> list[SampleRef]:
        d = self.root / cls
        refs = []
        for split in ("train", "test"):
            for p in sorted((d / split).glob("*.pcd"), key=natural_key):
                defect = GOOD if split == "train" else defect_from_stem(p.stem)
                files = {"pcd": p}
                gt = d / "gt" / f"{p.stem}.txt"
                if gt.is_file():
                    files["gt"] = gt
                refs.append(SampleRef(LAYOUT, cls, split, defect, p.stem, files, _load))
        return refs


def write_sample(root: str | os.PathLike, sample: PointSample, *, binary: bool = False) -> dict[str, Path]:
    if not sample.name:
        raise ValueError("sample.name is required (see sample_name())")
    base = Path(root) / sample.cls
    pts = np.asarray(sample.points)
    out = {"pcd": write_pcd(base / sample.split / f"{sample.name}.pcd", pts, binary=binary)}
    if sample.split == "test" and sample.anomalous:
        out["gt"] = write_gt_txt(base / "gt" / f"{sample.name}.txt", pts, sample.labels, SPACE)
    return out
