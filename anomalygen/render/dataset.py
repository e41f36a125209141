"""Render an MVTec 3D-AD-layout dataset from procedural shapes: the embedded default input.

    <class>/train/good, validation/good, test/good, test/<defect>  (rgb png, xyz tiff, gt png)

A sample is a pure function of (seed, class, split, defect, index), so any number of
workers writes the same bytes. gt marks the pixels whose depth the defect changed by
more than `gt_tau` x object size (or whose hit changed object <-> background): the
label is measured on the rendered geometry, whichever engine made the defect.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AnomalygenError
from ..io import ImageSample, mvtec3d, write_text_atomic
from ..recipes import load_recipe, require
from .raycast import Camera, Render, plane_mesh, raycast, shade
from .scene import (BUILTIN_COLORS, BUILTIN_DEFECTS, BUILTIN_SHAPES, builtin_defect, class_seed, normal_mesh,
                    place_on_plane)


@dataclass(frozen=True)
class RenderConfig:
    size: int = 256
    fov_deg: float = 30.0
    distance: float = 0.45
    object_size: tuple[float, float] = (0.09, 0.12)
    plane_tilt: float = 0.05
    gt_tau: float = 0.004
    counts: tuple[int, int, int, int] = (8, 2, 2, 2)  # train, validation, test good, test per defect
    defects: tuple[str, ...] = BUILTIN_DEFECTS

    @classmethod
    def from_recipe(cls, r: dict) -> "RenderConfig":
        return cls(size=require(r, "size", int, 16, 4096), fov_deg=float(require(r, "camera.fov_deg", (int, float), 5, 120)),
                   distance=float(require(r, "camera.distance", (int, float), 0.01, 100)),
                   object_size=tuple(float(v) for v in require(r, "object.size", (int, float), 1e-4, 100)),
                   plane_tilt=float(require(r, "background.tilt", (int, float), 0, 0.5)),
                   gt_tau=float(require(r, "gt_tau", (int, float), 0, 1)),
                   counts=(require(r, "counts.train", int, 1, 10000), require(r, "counts.validation", int, 0, 10000),
                           require(r, "counts.test_good", int, 0, 10000), require(r, "counts.test_per_defect", int, 0, 10000)),
                   defects=tuple(require(r, "defects", str)))

    def camera(self) -> Camera:
        return Camera.from_fov(self.size, self.size, self.fov_deg)


def _albedo(shape, base, rng, strength=0.25) -> np.ndarray:
    from ..depth.perlin import perlin_grid_np, random_permutation

    g = perlin_grid_np(shape, (8, 8), random_permutation(rng), octaves=4, offset=tuple(rng.uniform(0, 64, 2)))
    return np.clip(np.asarray(base, np.float32) * (1 + strength * g[..., None]), 0, 1)


def render_scene(cls: str, cfg: RenderConfig, rng: np.random.Generator, defect: str | None = None):
    """(normal Render, defective Render or None, albedo, record). Draws shape, placement, plane and defect from rng."""
    size = rng.uniform(*cfg.object_size)
    mesh = place_on_plane(normal_mesh(cls, rng), size, cfg.distance, rng)
    tilt = tuple(rng.uniform(-cfg.plane_tilt, cfg.plane_tilt, 2))
    plane = plane_mesh(cfg.distance, cfg.distance, tilt)
    cam = cfg.camera()
    normal = raycast([mesh, plane], cam)
    obj_albedo = _albedo(normal.xyz.shape[:2], BUILTIN_COLORS.get(cls, (0.6, 0.6, 0.6)), rng)
    bg_albedo = _albedo(normal.xyz.shape[:2], (0.42, 0.42, 0.45), rng, 0.08)
    albedo = np.where((normal.geometry == 0)[..., None], obj_albedo, bg_albedo)
    record = {"object_size": round(size, 6), "plane_tilt": [round(t, 5) for t in tilt]}
    if defect is None:
        return normal, None, (obj_albedo, bg_albedo), record
    bad_mesh, params = builtin_defect(mesh, defect, rng, size)
    record["defect_params"] = params
    return normal, raycast([bad_mesh, plane], cam), (obj_albedo, bg_albedo), record


def defect_gt(normal: Render, bad: Render, tau: float) -> np.ndarray:
    """Pixels where the defect moved the surface by more than tau, or changed what the ray hits."""
    dz = np.abs(bad.xyz[..., 2] - normal.xyz[..., 2])
    changed = (bad.geometry != normal.geometry) & ((bad.geometry == 0) | (normal.geometry == 0))
    return (((dz > tau) & (bad.geometry == 0)) | changed).astype(np.uint8)


def render_sample(cls: str, split: str, defect: str, index: int, seed: int, cfg: RenderConfig) -> tuple[ImageSample, dict]:
    rng = np.random.default_rng(class_seed(seed, cls, split, defect, index))
    normal, bad, (obj_alb, bg_alb), record = render_scene(cls, cfg, rng, None if defect == "good" else defect)
    r = normal if bad is None else bad
    albedo = np.where((r.geometry == 0)[..., None], obj_alb, bg_alb)
    rgb = shade(r, albedo)
    mask = np.zeros(r.geometry.shape, np.uint8) if bad is None else defect_gt(normal, bad, cfg.gt_tau * record["object_size"])
    name = mvtec3d.sample_name(index)
    sample = ImageSample(xyz=r.xyz, rgb=rgb, mask=mask, cls=cls, split=split, defect=defect, name=name)
    record.update(cls=cls, split=split, defect=defect, name=name, anomaly_ratio=round(float(mask.mean()), 6),
                  object_pixels=int((r.geometry == 0).sum()))
    return sample, record


def _job(args) -> dict:
    root, cls, split, defect, index, seed, cfg = args
    sample, record = render_sample(cls, split, defect, index, seed, cfg)
    if defect != "good" and not sample.mask.any():
        raise AnomalygenError(f"{cls}/{split}/{defect}/{sample.name}: the defect is not visible from the camera")
    mvtec3d.write_sample(root, sample)
    return record


def render_jobs(classes, cfg: RenderConfig, seed: int) -> list[tuple]:
    n_train, n_val, n_good, n_def = cfg.counts
    jobs = []
    for cls in classes:
        jobs += [(cls, "train", "good", i) for i in range(n_train)]
        jobs += [(cls, "validation", "good", i) for i in range(n_val)]
        jobs += [(cls, "test", "good", i) for i in range(n_good)]
        jobs += [(cls, "test", d, i) for d in cfg.defects for i in range(n_def)]
    return jobs


def render_mvtec3d(out: str | os.PathLike, classes: list[str] | None = None, recipe: dict | None = None,
                   seed: int | None = None, workers: int = 1, progress=None) -> Path:
    """Write the rendered dataset under `out` and its manifest.json; returns `out`."""
    recipe = recipe or load_recipe("render-mvtec3d")
    cfg = RenderConfig.from_recipe(recipe)
    seed = require(recipe, "seed", int) if seed is None else seed
    classes = list(classes or require(recipe, "classes", str))
    for c in classes:
        if c not in BUILTIN_SHAPES:
            raise AnomalygenError(f"unknown class {c!r}; renderer classes: {', '.join(BUILTIN_SHAPES)}")
    for d in cfg.defects:
        if d not in BUILTIN_DEFECTS:
            raise AnomalygenError(f"unknown renderer defect {d!r}; available: {', '.join(BUILTIN_DEFECTS)}")
    out = Path(out)
    jobs = [(out, *j, seed, cfg) for j in render_jobs(classes, cfg, seed)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            it = pool.map(_job, jobs, chunksize=2)
            records = list(progress(it, total=len(jobs)) if progress else it)
    else:
        it = map(_job, jobs)
        records = list(progress(it, total=len(jobs)) if progress else it)
    ratios = [r["anomaly_ratio"] for r in records if r["defect"] != "good"]
    for c in classes:
        mvtec3d.write_camera_parameters(out, c, cfg.camera().to_json())
    manifest = {
        "generator": "anomalygen render-mvtec3d", "recipe": recipe.get("_source"), "seed": seed,
        "shape_backend": "builtin", "config": {k: v for k, v in recipe.items() if not k.startswith("_")},
        "camera": cfg.camera().to_json(),
        "validate": {"points": [1, cfg.size * cfg.size], "anomaly_ratio": [max(0.0, math.floor(min(ratios) * 1e6 - 1) / 1e6), 1.0] if ratios else [0.0, 1.0]},
        "samples": records,
    }
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=1))
    return out
