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

from anomalygen.errors import LayoutError
from anomalygen.io._point_layout import PointLayout
from anomalygen.io.atomic import write_bytes_atomic
from anomalygen.io.gt_txt import COMMA
from anomalygen.io.samples import GOOD, PointSample

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


class AnomalyShapeNetDataset(PointLayout):
    layout = LAYOUT
    gt_dir = "GT"
    delimiter = COMMA
    normal_test_word = NORMAL_TEST

    def __init__(self, root: str | os.PathLike):
        super().__init__(root)
        if not self.classes_root.is_dir():
            raise LayoutError(f"{root}: not a directory")

    @property
    def classes_root(self) -> Path:
        return pcd_root(self.root)

    @property
    def pcd_root(self) -> Path:
        return self.classes_root

    def mesh_path(self, cls: str, name: str) -> Path:
        return Path(self.root) / "obj" / cls / f"{name}.obj"


def write_sample(root: str | os.PathLike, sample: PointSample, *, binary: bool = False) -> dict[str, Path]:
    """Write one sample under root/pcd: its .pcd, and for an anomalous sample its GT .txt (same points, same order)."""
    return AnomalyShapeNetDataset.write_sample(Path(root) / "pcd", sample, binary=binary)


def write_mesh(root: str | os.PathLike, cls: str, name: str, mesh) -> Path:
    """Write a trimesh mesh as obj/<cls>/<name>.obj atomically."""
    data = mesh.export(file_type="obj")
    return write_bytes_atomic(Path(root) / "obj" / cls / f"{name}.obj", data.encode() if isinstance(data, str) else data)
