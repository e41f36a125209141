"""Readers and writers for the layouts our users bring and expect (FORMATS.md).

    open_dataset(root)      -> Dataset (layout detected)
    detect_layout(root)     -> 'anomaly-shapenet' | 'real3d-ad' | 'mvtec3d-ad'
    read_pcd / write_pcd, read_gt_txt / write_gt_txt
    anomaly_shapenet.write_sample, real3d.write_sample, mvtec3d.write_sample
"""

from __future__ import annotations

import os
from pathlib import Path

from anomalygen.errors import LayoutError
from anomalygen.io import anomaly_shapenet, mvtec3d, real3d
from anomalygen.io._paths import natural_key, subdirs
from anomalygen.io.anomaly_shapenet import AnomalyShapeNetDataset
from anomalygen.io.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from anomalygen.io.gt_txt import read_gt_txt, write_gt_txt
from anomalygen.io.mvtec3d import MVTec3DDataset
from anomalygen.io.pcd import read_pcd, read_pcd_xyz, write_pcd
from anomalygen.io.real3d import Real3DADDataset
from anomalygen.io.samples import GOOD, Dataset, ImageSample, PointSample, Sample, SampleRef

LAYOUTS = {
    anomaly_shapenet.LAYOUT: AnomalyShapeNetDataset,
    real3d.LAYOUT: Real3DADDataset,
    mvtec3d.LAYOUT: MVTec3DDataset,
}


def detect_layout(root: str | os.PathLike) -> str:
    """Name the layout of a dataset folder, or raise LayoutError saying what was expected."""
    root = Path(root)
    if not root.exists():
        raise LayoutError(f"{root}: no such directory")
    if not root.is_dir():
        raise LayoutError(f"{root}: not a directory")
    if (root / "pcd").is_dir():
        return anomaly_shapenet.LAYOUT
    for d in subdirs(root):
        if any(x.is_dir() for s in mvtec3d.SPLITS for x in (d / s).glob("*/xyz")):
            return mvtec3d.LAYOUT
        if (d / "GT").is_dir() or any((d / "train").glob("*_template[0-9]*.pcd")):
            return anomaly_shapenet.LAYOUT
        if (d / "gt").is_dir() or any((d / "train").glob("*_template.pcd")):
            return real3d.LAYOUT
    raise LayoutError(
        f"{root}: not a dataset layout we know. Expected Anomaly-ShapeNet (pcd/<class>/train|test|GT), "
        "Real3D-AD (<class>/train|test|gt) or MVTec 3D-AD (<class>/train/good/xyz/*.tiff)"
    )


def open_dataset(root: str | os.PathLike, layout: str | None = None) -> Dataset:
    """Open a dataset folder, detecting its layout unless given."""
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[layout](root)


__all__ = [
    "GOOD", "LAYOUTS", "AnomalyShapeNetDataset", "Dataset", "ImageSample", "MVTec3DDataset", "PointSample",
    "Real3DADDataset", "Sample", "SampleRef", "anomaly_shapenet", "atomic_path", "detect_layout", "mvtec3d", "natural_key", "subdirs",
    "open_dataset", "read_gt_txt", "read_pcd", "read_pcd_xyz", "real3d", "write_bytes_atomic", "write_gt_txt",
    "write_pcd", "write_text_atomic",
]
