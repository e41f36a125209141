"""Dataset folders (Anomaly-ShapeNet, Real3D-AD, MVTec 3D-AD, depth-defects output) as page groups:
one group per class, every sample of every split, each beside its manifest record.

Organized clouds (MVTec 3D-AD) become their valid pixels as points, coloured by their RGB, with
normals from the pixel grid, first seen from the scanner's own camera.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from anomalygen.errors import AnomalygenError
from anomalygen.io import open_dataset
from anomalygen.io.samples import ImageSample, SampleRef
from anomalygen.preview.images import surface_normals
from anomalygen.view.samples import SCAN_UP, SCAN_VIEW, ViewGroup, ViewSample

SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


def manifest_records(root: str | Path) -> tuple[dict, dict]:
    """(the manifest's header without its per-sample list and recipe, {key: sample record}) of a
    dataset folder; keys are (class, split, defect, name) and (class, split, name). Empty when the
    folder has no readable manifest.json (a dataset anomalygen did not write)."""
    path = Path(root) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}, {}
    if not isinstance(manifest, dict):
        return {}, {}
    records = {}
    for r in manifest.get("samples") or []:
        if isinstance(r, dict):
            records.setdefault((r.get("cls"), r.get("split"), r.get("name")), r)
            records[(r.get("cls"), r.get("split"), r.get("defect"), r.get("name"))] = r
    header = {k: v for k, v in manifest.items() if k not in ("samples", "recipe")}
    return header, records


def record_of(records: dict, ref: SampleRef) -> dict:
    return records.get((ref.cls, ref.split, ref.defect, ref.name)) or records.get((ref.cls, ref.split, ref.name)) or {}


def view_sample(ref: SampleRef, record: dict, score_map: np.ndarray | None = None,
                object_score: float | None = None) -> ViewSample:
    """Load one sample as the page shows it (an organized cloud: its valid pixels), with a detector's
    map of it when given (per point, or per pixel of the organized cloud)."""
    s = ref.load()
    target = s.mask if isinstance(s, ImageSample) else s.labels
    if score_map is not None and np.shape(score_map) != np.shape(target):
        raise AnomalygenError(f"{ref.path}: the predicted map has shape {np.shape(score_map)}, the sample "
                              f"{np.shape(target)}; the dataset changed after the run")
    if isinstance(s, ImageSample):
        valid = s.valid
        rgb = s.rgb if s.rgb is not None else np.full(s.xyz.shape[:2] + (3,), 190, np.uint8)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        return ViewSample(ref.split, ref.defect, ref.name, s.xyz[valid], s.mask[valid] > 0, rgb=rgb[valid],
                          normals=surface_normals(s.xyz)[valid], record=record, view=SCAN_VIEW, up=SCAN_UP,
                          scores=None if score_map is None else score_map[valid], object_score=object_score)
    return ViewSample(ref.split, ref.defect, ref.name, s.points, s.labels, rgb=s.rgb, record=record,
                      scores=score_map, object_score=object_score)


def dataset_groups(directory: str | Path, classes: list[str] | None = None) -> tuple[list[ViewGroup], dict]:
    """(one group per class, the page's 'about': layout and manifest header)."""
    ds = open_dataset(directory)
    have = ds.classes()
    bad = [c for c in classes or [] if c not in have]
    if bad:
        raise AnomalygenError(f"no class {', '.join(bad)} in {directory}; classes: {', '.join(have)}")
    header, records = manifest_records(directory)
    groups = []
    for cls in classes or have:
        refs = sorted(ds.samples(cls), key=lambda r: (SPLIT_ORDER.get(r.split, 3), r.split))  # stable: keeps name order
        groups.append(ViewGroup(cls, [partial(view_sample, r, record_of(records, r)) for r in refs]))
    return groups, {"folder": str(Path(directory).resolve()), "layout": ds.layout, **header}
