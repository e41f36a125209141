"""`anomalygen preview RUN`: predicted anomaly maps next to the ground truth, one PNG per task.

Point clouds: for each picked sample two orthographic views, ground truth (anomalous points
red) beside the prediction (score colour map, one scale per task so samples compare).
Organized clouds: depth, ground-truth mask, predicted map, and the map over the depth.
Rendered with Pillow only (painter's algorithm over depth-sorted points), no matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from anomalygen.errors import AnomalygenError
from anomalygen.io import open_dataset
from anomalygen.detectors.run import load_scores, read_run

PANEL = 192
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64)  # inferno-like


def colormap(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scalar values -> (…,3) uint8 colours on an inferno-like ramp between lo and hi."""
    t = np.clip((np.asarray(values, np.float64) - lo) / max(hi - lo, 1e-12), 0, 1) * (len(_ANCHORS) - 1)
    i = np.minimum(t.astype(int), len(_ANCHORS) - 2)
    f = (t - i)[..., None]
    return (_ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f).astype(np.uint8)


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rx @ rz


def render_points(points: np.ndarray, colors: np.ndarray, yaw: float, pitch: float, size: int = PANEL) -> np.ndarray:
    """(size,size,3) orthographic view; nearer points painted last (numpy fancy assignment keeps the last write)."""
    img = np.full((size, size, 3), 255, np.uint8)
    if len(points) == 0:
        return img
    p = (np.asarray(points, np.float64) - points.mean(0)) @ _rotation(yaw, pitch).T
    half = np.abs(p[:, :2]).max() or 1.0
    xy = ((p[:, :2] / half) * 0.45 + 0.5) * (size - 1)
    order = np.argsort(p[:, 2])  # far (small z) first
    u = np.clip(np.round(xy[order, 0]).astype(int), 0, size - 2)
    v = np.clip(np.round((size - 1) - xy[order, 1]).astype(int), 0, size - 2)
    c = colors[order]
    for du in (0, 1):
        for dv in (0, 1):  # 2x2 splats
            img[v + dv, u + du] = c
    return img


def _label(img: np.ndarray, text: str) -> np.ndarray:
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, im.width, 12], fill=(255, 255, 255))
    d.text((2, 0), text, fill=(0, 0, 0))
    return np.asarray(im)


def _resize(img: np.ndarray, size: int = PANEL, nearest: bool = False) -> np.ndarray:
    im = Image.fromarray(img)
    im = im.resize((size, size), Image.NEAREST if nearest else Image.BILINEAR)
    return np.asarray(im.convert("RGB"))


def _pick(names: list[str], defects: list[str], per_class: int, seed: int) -> list[int]:
    """Anomalous samples first (shuffled by seed), then normal ones."""
    rng = np.random.default_rng(seed)
    idx = np.arange(len(names))
    anom = [i for i in rng.permutation(idx) if defects[i] != "good"]
    good = [i for i in rng.permutation(idx) if defects[i] == "good"]
    return sorted((anom + good)[:per_class], key=lambda i: (defects[i] == "good", i))


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
        path = directory / "scores" / f"{task['name'].replace('/', '_')}.npz"
        if not path.is_file():
            raise AnomalygenError(f"{directory}: no predicted maps for {task['name']}; run `anomalygen evaluate {directory}` first")
        sc = load_scores(path)
        refs = {r.name + "/" + r.defect: r for r in dataset.samples(task["test"], "test")}
        lo = float(np.percentile(np.concatenate([m.ravel() for m in sc["maps"]]), 1))
        hi = float(np.percentile(np.concatenate([m.ravel() for m in sc["maps"]]), 99.5))
        rows = []
        for i in _pick(sc["names"], sc["defects"], per_class, seed):
            ref = refs.get(f"{sc['names'][i]}/{sc['defects'][i]}")
            if ref is None:
                continue
            s, amap = ref.load(), sc["maps"][i]
            head = f"{ref.name} {ref.defect} score={sc['scores'][i]:.3g}"
            if hasattr(s, "points"):
                gt = np.where(s.labels[:, None] > 0, [[220, 30, 30]], [[170, 170, 170]]).astype(np.uint8)
                pred = colormap(amap, lo, hi)
                panels = [render_points(s.points, c, yaw, pitch) for yaw, pitch in ((0.6, -1.0), (3.7, -1.0))
                          for c in (gt, pred)]
                titles = ["truth", "predicted", "truth (back)", "predicted (back)"]
            else:
                z = s.xyz[..., 2]
                valid = s.valid
                zn = np.zeros_like(z)
                if valid.any():
                    zl, zh = np.percentile(z[valid], [1, 99])
                    zn[valid] = np.clip((zh - z[valid]) / max(zh - zl, 1e-9), 0, 1)
                depth = (np.repeat(zn[..., None], 3, -1) * 255).astype(np.uint8)
                gtm = (np.repeat((s.mask > 0)[..., None], 3, -1) * 255).astype(np.uint8)
                pm = colormap(amap, lo, hi)
                over = (0.5 * depth + 0.5 * pm).astype(np.uint8)
                panels = [_resize(depth), _resize(gtm, nearest=True), _resize(pm), _resize(over)]
                titles = ["depth", "truth", "predicted", "overlay"]
            panels = [_label(p, t if k else f"{head} | {t}") for k, (p, t) in enumerate(zip(panels, titles))]
            rows.append(np.concatenate(panels, 1))
        if not rows:
            continue
        sheet = np.concatenate([np.pad(r, ((0, 4), (0, 0), (0, 0)), constant_values=255) for r in rows], 0)
        from anomalygen.io import atomic_path

        target = out / f"{task['name'].replace('/', '_').replace('->', '_to_')}.png"
        with atomic_path(target) as tmp:
            Image.fromarray(sheet).save(tmp)
        written.append(target)
    return written
