"""`anomalygen preview DIR` for point-cloud datasets (Anomaly-ShapeNet, Real3D-AD layouts).

One PNG contact sheet per class: a row per sample (a mix of defect types and normals),
four tiles per row. For an anomalous sample the first two look straight at the defect
(the direction from which most anomalous points are visible): the first shows the shaded
geometry alone (so a bulge, a dent and a bend read as shape, not as red paint), the
second the same view with anomalous points red; two more views follow. Rendering:
anomalygen.preview.splat.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from anomalygen.errors import AnomalygenError
from anomalygen.io import GOOD, open_dataset
from anomalygen.io.atomic import atomic_path
from anomalygen.preview.splat import point_spacing, render, view_direction

TILE = 240
LABEL_H = 16


def _pick(refs, per_class: int, rng: np.random.Generator):
    """Round-robin over defect types (shuffled within each), normals last, `per_class` in all."""
    groups: dict[str, list] = {}
    for r in refs:
        groups.setdefault(r.defect, []).append(r)
    kinds = sorted(k for k in groups if k != GOOD) + ([GOOD] if GOOD in groups else [])
    for k in kinds:
        groups[k] = [groups[k][i] for i in rng.permutation(len(groups[k]))]
    out, i = [], 0
    while len(out) < per_class and any(groups[k] for k in kinds):
        k = kinds[i % len(kinds)]
        if groups[k]:
            out.append(groups[k].pop(0))
        i += 1
    return out


def plan_views(points: np.ndarray, labels: np.ndarray) -> tuple[list[np.ndarray], dict]:
    """Three view directions of one sample and the framing every view shares (`render` keywords:
    center, extent, spacing). The first view faces the anomaly when there is one, the third
    looks from the other side."""
    pts = np.asarray(points, np.float64)
    lab = np.asarray(labels).astype(bool)
    center = (pts.max(0) + pts.min(0)) / 2
    extent = float(np.linalg.norm(pts.max(0) - pts.min(0)))
    if lab.any():
        d = best_view(pts, lab, center, extent)
        az = np.rad2deg(np.arctan2(d[1], d[0]))
        dirs = [d, view_direction(az + 70, 30), view_direction(az + 180, 20)]
    else:
        dirs = [view_direction(30, 25), view_direction(150, 25), view_direction(270, 60)]
    return dirs, {"center": center, "extent": extent, "spacing": point_spacing(pts)}


def sample_views(points: np.ndarray, labels: np.ndarray, size: int = TILE) -> list[np.ndarray]:
    """Three renders of one sample; the first faces the anomaly when there is one."""
    dirs, framing = plan_views(points, labels)
    # depth-buffer shading needs no point normals
    return [render(points, labels, v, size, **framing) for v in dirs]


def geometry_view(points: np.ndarray, labels: np.ndarray, size: int = TILE) -> np.ndarray:
    """The first (defect-facing) view with shading only, no label colour: the shape of the defect."""
    dirs, framing = plan_views(points, labels)
    return render(points, np.zeros(len(points), np.uint8), dirs[0], size, **framing)


CANDIDATES = np.array([view_direction(az, el) for el in (-35, 0, 35, 70) for az in range(0, 360, 45)]
                      + [view_direction(0, 90), view_direction(0, -90)])


def best_view(pts: np.ndarray, lab: np.ndarray, center: np.ndarray, extent: float, size: int = 64) -> np.ndarray:
    """The candidate direction from which the most anomalous points win the z-buffer
    (a coarse render per candidate), so the first view shows the defect, not its back."""
    from anomalygen.preview.splat import look_rotation

    best, best_n = CANDIDATES[0], -1.0
    rel = pts - center
    toward = rel[lab].mean(0)
    toward = toward / (np.linalg.norm(toward) + 1e-12)
    for d in CANDIDATES:
        cam = rel @ look_rotation(d).T
        px = np.clip((cam[:, 0] / extent + 0.5) * size, 0, size - 1).astype(np.int64)
        py = np.clip((0.5 - cam[:, 1] / extent) * size, 0, size - 1).astype(np.int64)
        pix = py * size + px
        order = np.lexsort((-cam[:, 2], pix))
        first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]]
        n = float(lab[first].sum()) + 1e-3 * float(d @ toward)  # ties: the side the defect is on
        if n > best_n:
            best, best_n = d, n
    return best


def class_sheet(refs, size: int = TILE) -> Image.Image:
    rows = []
    for ref in refs:
        s = ref.load()
        tiles = [geometry_view(s.points, s.labels, size)] + sample_views(s.points, s.labels, size)
        row = Image.fromarray(np.concatenate(tiles, axis=1))
        canvas = Image.new("RGB", (row.width, row.height + LABEL_H), "white")
        canvas.paste(row, (0, LABEL_H))
        text = f"{s.split}/{s.name}  {s.defect}  {len(s.points)} pts"
        if s.anomalous:
            text += f"  ratio {s.anomaly_ratio:.3f}"
        ImageDraw.Draw(canvas).text((4, 2), text, fill=(0, 0, 0))
        rows.append(canvas)
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return sheet


def preview_point_dataset(directory: Path, out: Path, classes: list[str] | None = None, per_class: int = 8,
                          seed: int = 0, progress=None) -> list[Path]:
    """Write `<out>/<class>.png` for each class; returns the paths."""
    ds = open_dataset(directory)
    have = ds.classes()
    classes = classes or have
    bad = [c for c in classes if c not in have]
    if bad:
        raise AnomalygenError(f"no class {', '.join(bad)} in {directory}; classes: {', '.join(have)}")
    if per_class < 1:
        raise AnomalygenError("--per-class must be at least 1")
    out = Path(out)
    paths = []
    for cls in (progress(classes, len(classes)) if progress else classes):
        refs = _pick(ds.samples(cls), per_class, np.random.default_rng([seed, zlib.crc32(cls.encode())]))
        if not refs:
            continue
        with atomic_path(out / f"{cls}.png") as tmp:
            class_sheet(refs).save(tmp)
        paths.append(out / f"{cls}.png")
    return paths
