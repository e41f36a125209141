"""Ground-truth point files: one point a line, `x,y,z,label` (Anomaly-ShapeNet,
comma) or `x y z label` (Real3D-AD, space). Loaders take an anomalous sample's
points from here, so the rows must be the sample's points in order."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from anomalygen.errors import FormatError
from anomalygen.io._text import Table, table_problem
from anomalygen.io.atomic import write_bytes_atomic

COMMA = ","
SPACE = " "


def read_gt_txt(path: str | os.PathLike, delimiter: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (points (N,3) float64, labels (N,) float64 as stored). Delimiter sniffed when None."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such GT file")
    text = path.read_text(errors="replace")
    if delimiter is None:
        first = text.lstrip().split("\n", 1)[0]
        delimiter = COMMA if "," in first else None  # None: any whitespace
    elif delimiter == SPACE:
        delimiter = None
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=delimiter, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise FormatError(f"{path}: corrupt GT text, {table_problem(exc, 'four numbers x, y, z, label')}") from None
    if table.size == 0:
        raise FormatError(f"{path}: GT file is empty")
    if table.shape[1] != 4:
        raise FormatError(f"{path}: GT rows need 4 columns (x, y, z, label), found {table.shape[1]}")
    return table[:, :3], table[:, 3]


def gt_txt_bytes(points: np.ndarray, labels: np.ndarray, delimiter: str = COMMA, xyz: Table | None = None) -> bytes:
    """The GT text; `xyz` (io._text.Table of the three coordinate columns, as an ASCII .pcd body is
    written from them) saves formatting the same floats again."""
    pts = np.asarray(points)
    lab = np.asarray(labels)
    if pts.ndim != 2 or pts.shape[1] != 3 or lab.shape != (len(pts),):
        raise ValueError(f"points (N,3) and labels (N,) expected, got {pts.shape} and {lab.shape}")
    if xyz is None:
        xyz = Table([pts[:, 0], pts[:, 1], pts[:, 2]])
    return xyz.bytes(delimiter, [lab.astype(np.int64)])


def write_gt_txt(path: str | os.PathLike, points: np.ndarray, labels: np.ndarray, delimiter: str = COMMA,
                 xyz: Table | None = None) -> Path:
    """Write a GT point file atomically; labels are written as integers 0/1."""
    return write_bytes_atomic(path, gt_txt_bytes(points, labels, delimiter, xyz))
