"""Anomaly-ShapeNet layout (FORMATS.md):

    pcd/<class>/train/<class>_template<k>.pcd
    pcd/<class>/test/<n>_<defect>.pcd          (<n>_positive.pcd = NORMAL)
    pcd/<class>/GT/<n>_<defect>.txt            x,y,z,label  (comma)
    obj/<class>/<name>.obj

An anomalous sample's points are read from its GT .txt (as the public loaders do).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FormatError, LayoutError
from ._paths import defect_from_stem, natural_key, subdirs
from .atomic import write_bytes_atomic
from .gt_txt import COMMA, read_gt_txt, write_gt_txt
from .pcd import read_pcd_xyz, write_pcd
from .samples import GOOD, Dataset, PointSample, SampleRef

LAYOUT = "anomaly-shapenet"
NORMAL_TEST = "positive"  # Anomaly-ShapeNet's word for a normal test sample
DEFECTS = ("bulge", "concavity", "hole", "break", "bending", "crack", "scratch")
CLASSES = (
    "ashtray0 bag0 bottle0 bottle1 bottle3 bowl0 bowl1 bowl2 bowl3 bowl4 bowl5 bucket0 bucket1 "
    "cap0 cap3 cap4 cap5 cup0 cup1 eraser0 headset0 headset1 helmet0 helmet1 helmet2 helmet3 jar0 "
    "microphone0 shelf0 tap0 tap1 vase0 vase1 vase2 vase3 vase4 vase5 vase7 vase8 vase9"
).split()


def pcd_root(root: str | os.PathLike) -> Path:
    """The folder holding the class folders: `root/pcd` when present, else `root`."""
    root = Path(root)
    return root / "pcd" if (root / "pcd").is_dir() else root


def sample_name(cls: str, split: str, index: int, defect: str = GOOD) -> str:
    """File stem of the index-th sample: '<cls>_template<k>' (train), '<n>_<defect>' / '<n>_positive' (test)."""
    if split == "train":
        return f"{cls}_template{index}"
    return f"{index}_{NORMAL_TEST if defect == GOOD else defect}"


def _load(ref: SampleRef) -> PointSample:
    f = ref.files
    if ref.anomalous:
        if "gt" not in f:
            raise FormatError(f"{f['pcd']}: anomalous sample has no GT file {ref.name}.txt")
        points, labels = read_gt_txt(f["gt"], COMMA)
        labels = labels.astype(np.uint8)
    else:
        points = read_pcd_xyz(f["pcd"])
        labels = np.zeros(len(points), np.uint8)
    return PointSample(points=points, labels=labels, cls=ref.cls, split=ref.split,
                       defect=ref.defect, name=ref.name, path=f["pcd"])


class AnomalyShapeNetDataset(Dataset):
    layout = LAYOUT

    def __init__(self, root: str | os.PathLike):
        super().__init__(root)
        self.pcd_root = pcd_root(root)
        if not self.pcd_root.is_dir():
            raise LayoutError(f"{root}: not a directory")

    def classes(self) -> list[str]:
        return [d.name for d in subdirs(self.pcd_root) if (d / "train").is_dir() or (d / "test").is_dir()]

    def _scan_class(self, cls: str) -> list[SampleRef]:
        d = self.pcd_root / cls
        refs = []
        for split in ("train", "test"):
            for p in sorted((d / split).glob("*.pcd"), key=natural_key):
                defect = GOOD if split == "train" else defect_from_stem(p.stem)
                defect = GOOD if defect == NORMAL_TEST else defect
                files = {"pcd": p}
                gt = d / "GT" / f"{p.stem}.txt"
                if gt.is_file():
                    files["gt"] = gt
                refs.append(SampleRef(LAYOUT, cls, split, defect, p.stem, files, _load))
        return refs

    def mesh_path(self, cls: str, name: str) -> Path:
        return Path(self.root) / "obj" / cls / f"{name}.obj"


def write_sample(root: str | os.PathLike, sample: PointSample, *, binary: bool = False) -> dict[str, Path]:
    """Write one sample: its .pcd, and for an anomalous sample its GT .txt (same points, same order)."""
    if not sample.name:
        raise ValueError("sample.name is required (see sample_name())")
    base = Path(root) / "pcd" / sample.cls
    pts = np.asarray(sample.points)
    out = {"pcd": write_pcd(base / sample.split / f"{sample.name}.pcd", pts, binary=binary)}
    if sample.split == "test" and sample.anomalous:
        out["gt"] = write_gt_txt(base / "GT" / f"{sample.name}.txt", pts, sample.labels, COMMA)
    return out


def write_mesh(root: str | os.PathLike, cls: str, name: str, mesh) -> Path:
    """Write a trimesh mesh as obj/<cls>/<name>.obj atomically."""
    data = mesh.export(file_type="obj")
    return write_bytes_atomic(Path(root) / "obj" / cls / f"{name}.obj", data.encode() if isinstance(data, str) else data)
