"""What a viewer page shows: groups of samples (a class of a dataset, or a task of a detector run),
each sample loaded lazily so a page of 1600 clouds never holds more than one in memory.

The collectors (anomalygen.view.datasets for dataset folders, anomalygen.detectors.reports.view
for run folders) fill these; anomalygen.view.page encodes and writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# the camera's up vector per kind of cloud: objects stand on z (as in the PNG previews);
# organized scans are seen from their own camera (x right, y down, z away)
OBJECT_UP = (0.0, 0.0, 1.0)
SCAN_UP = (0.0, -1.0, 0.0)
SCAN_VIEW = (0.0, 0.0, -1.0)


@dataclass
class ViewSample:
    """One cloud as the page shows it.

    points (N,3); labels (N,) 0/1 ground truth; rgb (N,3) uint8 or None; normals (N,3) or None
    (estimated when missing); scores (N,) predicted map or None; object_score: the detector's
    sample score; record: the sample's manifest record (shown beside it); view: the direction
    from the object toward the first camera (None: facing the anomaly), up: the camera's up."""

    split: str
    defect: str
    name: str
    points: np.ndarray
    labels: np.ndarray
    rgb: np.ndarray | None = None
    normals: np.ndarray | None = None
    scores: np.ndarray | None = None
    object_score: float | None = None
    record: dict = field(default_factory=dict)
    view: tuple[float, float, float] | None = None
    up: tuple[float, float, float] = OBJECT_UP


@dataclass
class ViewGroup:
    """A sidebar section: its name, facts shown under it (e.g. a task's metrics), and one loader
    per sample. `score_range` (lo, hi) is set where samples carry predicted maps: scores are
    quantized over it and the threshold slider spans it."""

    name: str
    loaders: list[Callable[[], ViewSample]]
    info: dict = field(default_factory=dict)
    score_range: tuple[float, float] | None = None
