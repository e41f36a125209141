"""Check a dataset folder sample by sample, the way a user's loader will read it.

Each check yields `Problem(path, message)`; a clean dataset yields none. Bounds on
point counts and anomaly ratios come from the caller or from the dataset's
`manifest.json` ("validate": {"points": [lo, hi], "anomaly_ratio": [lo, hi]}).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anomalygen.errors import AnomalygenError
from anomalygen.io import SampleRef, detect_layout, open_dataset
from anomalygen.io.gt_txt import read_gt_txt
from anomalygen.io.mvtec3d import mask_problem, read_png, read_xyz_tiff
from anomalygen.io.pcd import read_pcd_xyz
from anomalygen.parallel import ordered_map


@dataclass
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class SampleStats:
    cls: str
    split: str
    anomalous: bool
    size: int  # points (clouds) or valid pixels (images)
    ratio: float
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Bounds:
    points: tuple[int, int] | None = None
    anomaly_ratio: tuple[float, float] | None = None


@dataclass
class ValidationReport:
    root: Path
    layout: str
    stats: list[SampleStats]

    @property
    def problems(self) -> list[Problem]:
        return [p for s in self.stats for p in s.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def table(self) -> str:
        """Per-class summary: samples, normal/anomalous, size and anomaly ratio min/median/max."""
        size_name = "points" if self.layout != "mvtec3d-ad" else "valid px"
        head = ["class", "samples", "train", "test normal", "test anomalous",
                f"{size_name} min/med/max", "anomaly ratio min/med/max"]
        rows = []
        for cls in sorted({s.cls for s in self.stats}):
            ss = [s for s in self.stats if s.cls == cls]
            sizes = np.array([s.size for s in ss])
            ratios = np.array([s.ratio for s in ss if s.anomalous])
            rows.append([
                cls, str(len(ss)), str(sum(s.split != "test" for s in ss)),
                str(sum(s.split == "test" and not s.anomalous for s in ss)), str(len(ratios)),
                f"{sizes.min()}/{int(np.median(sizes))}/{sizes.max()}" if len(sizes) else "-",
                f"{ratios.min():.4f}/{np.median(ratios):.4f}/{ratios.max():.4f}" if len(ratios) else "-",
            ])
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
        return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def _check_points(ref: SampleRef, bounds: Bounds) -> SampleStats:
    probs: list[Problem] = []
    pcd_path = ref.files["pcd"]
    st = SampleStats(ref.cls, ref.split, ref.anomalous, 0, 0.0, probs)
    try:
        pts = read_pcd_xyz(pcd_path)
    except AnomalygenError as exc:
        probs.append(Problem(str(pcd_path), str(exc).split(": ", 1)[-1]))
        return st
    st.size = len(pts)
    if len(pts) == 0:
        probs.append(Problem(str(pcd_path), "no points"))
    elif not np.all(np.isfinite(pts)):
        probs.append(Problem(str(pcd_path), f"{int((~np.isfinite(pts)).any(axis=1).sum())} point(s) with NaN/inf coordinates"))
    if bounds.points and not bounds.points[0] <= len(pts) <= bounds.points[1]:
        probs.append(Problem(str(pcd_path), f"{len(pts)} points, outside {list(bounds.points)}"))
    gt_path = ref.files.get("gt")
    if gt_path is None:
        if ref.anomalous:
            probs.append(Problem(str(pcd_path), f"anomalous sample without GT file ({ref.name}.txt)"))
        return st
    try:
        gpts, labels = read_gt_txt(gt_path)
    except AnomalygenError as exc:
        probs.append(Problem(str(gt_path), str(exc).split(": ", 1)[-1]))
        return st
    if len(gpts) != len(pts):
        probs.append(Problem(str(gt_path), f"GT has {len(gpts)} points but its .pcd has {len(pts)}"))
    elif not np.allclose(gpts, pts, rtol=0, atol=1e-5 * max(1.0, float(np.abs(pts).max(initial=0)))):
        probs.append(Problem(str(gt_path), "GT coordinates differ from its .pcd (order or values)"))
    if not np.all(np.isin(labels, (0, 1))):
        bad = np.unique(labels[~np.isin(labels, (0, 1))])[:5]
        probs.append(Problem(str(gt_path), f"labels must be 0/1, found {bad.tolist()}"))
        return st
    st.ratio = float(labels.mean())
    if ref.anomalous and st.ratio == 0:
        probs.append(Problem(str(gt_path), "anomalous sample with no anomalous point"))
    if not ref.anomalous and st.ratio > 0:
        probs.append(Problem(str(gt_path), "normal sample with anomalous points"))
    if ref.anomalous and bounds.anomaly_ratio and not bounds.anomaly_ratio[0] <= st.ratio <= bounds.anomaly_ratio[1]:
        probs.append(Problem(str(gt_path), f"anomaly ratio {st.ratio:.4f} outside {list(bounds.anomaly_ratio)}"))
    return st


def _check_image(ref: SampleRef, bounds: Bounds) -> SampleStats:
    probs: list[Problem] = []
    st = SampleStats(ref.cls, ref.split, ref.anomalous, 0, 0.0, probs)
    try:
        xyz = read_xyz_tiff(ref.files["xyz"])
    except AnomalygenError as exc:
        probs.append(Problem(str(ref.files["xyz"]), str(exc).split(": ", 1)[-1]))
        return st
    hw = xyz.shape[:2]
    if not np.all(np.isfinite(xyz)):
        probs.append(Problem(str(ref.files["xyz"]), "NaN/inf coordinates (invalid pixels must be all zeros)"))
    st.size = int(np.any(xyz != 0, axis=-1).sum())
    if st.size == 0:
        probs.append(Problem(str(ref.files["xyz"]), "no valid pixel"))
    mask = None
    for kind in ("rgb", "gt"):
        if kind not in ref.files:
            continue
        try:
            img = read_png(ref.files[kind])
        except AnomalygenError as exc:
            probs.append(Problem(str(ref.files[kind]), str(exc).split(": ", 1)[-1]))
            continue
        if img.shape[:2] != hw:
            probs.append(Problem(str(ref.files[kind]), f"{kind} is {img.shape[1]}x{img.shape[0]} but xyz is {hw[1]}x{hw[0]}"))
            continue
        if kind == "gt":
            m = img[..., 0] if img.ndim == 3 else img
            if not np.all(np.isin(m, (0, 255))) and not np.all(np.isin(m, (0, 1))):
                probs.append(Problem(str(ref.files[kind]), f"gt must be binary 0/255, found values {np.unique(m)[:6].tolist()}"))
                continue
            mask = m > 0
            st.ratio = float(mask.mean())
    if "gt" not in ref.files or not probs:  # the readers' own rule on gt (a gt already named above is not named twice)
        problem = mask_problem(ref, mask)
        if problem:
            probs.append(Problem(str(ref.files.get("gt", ref.files["xyz"])), problem))
        elif (ref.anomalous and ref.split == "test" and bounds.anomaly_ratio
              and not bounds.anomaly_ratio[0] <= st.ratio <= bounds.anomaly_ratio[1]):
            probs.append(Problem(str(ref.files["gt"]), f"anomaly ratio {st.ratio:.4f} outside {list(bounds.anomaly_ratio)}"))
    return st


def _check(args: tuple[SampleRef, Bounds]) -> SampleStats:
    ref, bounds = args
    return (_check_image if ref.layout == "mvtec3d-ad" else _check_points)(ref, bounds)


def manifest_bounds(root: str | os.PathLike) -> Bounds:
    """Bounds recorded by the generator in manifest.json, if any."""
    p = Path(root) / "manifest.json"
    if not p.is_file():
        return Bounds()
    try:
        v = json.loads(p.read_text()).get("validate", {})
    except (json.JSONDecodeError, AttributeError):
        return Bounds()
    return Bounds(points=tuple(v["points"]) if "points" in v else None,
                  anomaly_ratio=tuple(v["anomaly_ratio"]) if "anomaly_ratio" in v else None)


def validate_dataset(root: str | os.PathLike, bounds: Bounds | None = None, workers: int = 1,
                     progress=None) -> ValidationReport:
    """Check every sample of the dataset at `root`. `progress` wraps an iterable (e.g. tqdm)."""
    layout = detect_layout(root)
    ds = open_dataset(root, layout)
    refs = ds.samples()
    if not refs:
        raise AnomalygenError(f"{root}: {layout} layout but no samples found")
    bounds = bounds or manifest_bounds(root)
    jobs = [(r, bounds) for r in refs]
    stats = list(ordered_map(_check, jobs, workers, progress, chunksize=8))
    return ValidationReport(Path(root), layout, stats)
