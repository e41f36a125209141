"""`anomalygen preview RUN`: predicted anomaly maps beside the ground truth, one PNG per task.

Point clouds: per picked sample two views (the first facing the defect, the second from
the other side), each as ground truth (anomalous points red) beside the prediction (score
colours), rendered by anomalygen.preview.splat with the same shading as dataset previews.
Organized clouds: the shaded surface, the ground-truth mask over it, the predicted map, and
the map over the surface. Scores use one colour scale per task (1st to 99.5th percentile of
all its maps) so samples compare; anomalous samples come first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from anomalygen.errors import AnomalygenError
from anomalygen.io import atomic_path, open_dataset
from anomalygen.io.samples import PointSample
from anomalygen.preview.colors import score_colors
from anomalygen.preview.images import mask_overlay, relief
from anomalygen.preview.points import plan_views
from anomalygen.preview.splat import render
from anomalygen.detectors.runs import read_run
from anomalygen.detectors.scores import read_scores, task_scores_file

PANEL = 192
LABEL_H = 12


def _label(img: np.ndarray, text: str) -> np.ndarray:
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, im.width, LABEL_H], fill=(255, 255, 255))
    d.text((2, 0), text, fill=(0, 0, 0))
    return np.asarray(im)


def _resize(img: np.ndarray, size: int = PANEL, nearest: bool = False) -> np.ndarray:
    im = Image.fromarray(img).resize((size, size), Image.NEAREST if nearest else Image.BILINEAR)
    return np.asarray(im.convert("RGB"))


def _pick(names: list[str], defects: list[str], per_class: int, seed: int) -> list[int]:
    """Anomalous samples first (shuffled by seed), then normal ones."""
    rng = np.random.default_rng(seed)
    idx = np.arange(len(names))
    anom = [i for i in rng.permutation(idx) if defects[i] != "good"]
    good = [i for i in rng.permutation(idx) if defects[i] == "good"]
    return sorted((anom + good)[:per_class], key=lambda i: (defects[i] == "good", i))


def point_panels(sample: PointSample, amap: np.ndarray, lo: float, hi: float) -> tuple[list[np.ndarray], list[str]]:
    """Truth and prediction of a point cloud from two sides; the same points win each view's z-buffer."""
    dirs, framing = plan_views(sample.points, sample.labels)
    pred = score_colors(amap, lo, hi)
    panels = [render(sample.points, sample.labels, d, PANEL, colors=c, **framing)
              for d in (dirs[0], dirs[2]) for c in (None, pred)]
    return panels, ["truth", "predicted", "truth (other side)", "predicted (other side)"]


def image_panels(xyz: np.ndarray, mask: np.ndarray, amap: np.ndarray, lo: float,
                 hi: float) -> tuple[list[np.ndarray], list[str]]:
    """Shaded surface, truth over it, predicted map, and the map laid over the surface."""
    surface = relief(xyz)
    pred = score_colors(amap, lo, hi)
    over = (0.5 * surface + 0.5 * pred).astype(np.uint8)
    panels = [_resize(surface), _resize(mask_overlay(surface, mask), nearest=True), _resize(pred), _resize(over)]
    return panels, ["shaded xyz", "truth", "predicted", "overlay"]


def task_sheet(scores: dict, refs: dict, per_class: int = 8, seed: int = 0) -> np.ndarray | None:
    """One task's contact sheet from its read-back scores and {name/defect: SampleRef}; None if no sample matched."""
    every = np.concatenate([m.ravel() for m in scores["maps"]])
    lo, hi = float(np.percentile(every, 1)), float(np.percentile(every, 99.5))
    rows = []
    for i in _pick(scores["names"], scores["defects"], per_class, seed):
        ref = refs.get(f"{scores['names'][i]}/{scores['defects'][i]}")
        if ref is None:
            continue
        s, amap = ref.load(), scores["maps"][i]
        if isinstance(s, PointSample):
            panels, titles = point_panels(s, amap, lo, hi)
        else:
            panels, titles = image_panels(s.xyz, s.mask, amap, lo, hi)
        row = np.concatenate([_label(p, t) for p, t in zip(panels, titles)], 1)
        head = _label(np.full((LABEL_H + 2, row.shape[1], 3), 255, np.uint8),
                      f"{ref.name}   {ref.defect}   object score {scores['scores'][i]:.3g}")
        rows.append(np.concatenate([head, row], 0))
    if not rows:
        return None
    return np.concatenate([np.pad(r, ((0, 4), (0, 0), (0, 0)), constant_values=255) for r in rows], 0)


def preview_run(directory: Path, out: Path, classes: list[str] | None = None, per_class: int = 8,
                seed: int = 0) -> list[Path]:
    """Write out/<task>.png for each task of the run (optionally only tasks testing `classes`)."""
    directory, out = Path(directory), Path(out)
    run = read_run(directory)
    tasks = [t for t in run["tasks"] if not classes or t["test"] in classes or t["name"] in classes]
    if not tasks:
        raise AnomalygenError(f"{directory}: no task tests any of {', '.join(classes or [])}")
    dataset = open_dataset(run["data"])
    written = []
    for task in tasks:
        path = task_scores_file(directory, task["name"])
        if not path.is_file():
            raise AnomalygenError(f"{directory}: no predicted maps for {task['name']}; run `anomalygen evaluate {directory}` first")
        refs = {r.name + "/" + r.defect: r for r in dataset.samples(task["test"], "test")}
        sheet = task_sheet(read_scores(path), refs, per_class, seed)
        if sheet is None:
            continue
        target = out / f"{task['name'].replace('/', '_').replace('->', '_to_')}.png"
        with atomic_path(target) as tmp:
            Image.fromarray(sheet).save(tmp)
        written.append(target)
    return written
