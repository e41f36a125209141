"""Real3D-AD layout (FORMATS.md):

    <class>/train/<k>_template.pcd
    <class>/test/<n>_<bulge|sink|cut|copy>.pcd, <n>_good.pcd
    <class>/gt/<n>_<type>.txt                  x y z label  (SPACE)
"""

from __future__ import annotations

import os
from pathlib import Path

from anomalygen.io._point_layout import PointLayout
from anomalygen.io.gt_txt import SPACE
from anomalygen.io.samples import GOOD, PointSample

LAYOUT = "real3d-ad"
DEFECTS = ("bulge", "sink", "cut", "copy")
CLASSES = ("airplane", "car", "candybar", "chicken", "diamond", "duck", "fish", "gemstone",
           "seahorse", "shell", "starfish", "toffees")


def sample_name(cls: str, split: str, index: int, defect: str = GOOD) -> str:
    return f"{index}_template" if split == "train" else f"{index}_{defect}"


class Real3DADDataset(PointLayout):
    layout = LAYOUT
    gt_dir = "gt"
    delimiter = SPACE
    normal_test_word = GOOD


def write_sample(root: str | os.PathLike, sample: PointSample, *, binary: bool = False) -> dict[str, Path]:
    return Real3DADDataset.write_sample(root, sample, binary=binary)
