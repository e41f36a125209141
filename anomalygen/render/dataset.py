"""Render an MVTec 3D-AD-layout dataset from procedural shapes: the embedded default input.

    <class>/train/good, validation/good, test/good, test/<defect>  (rgb png, xyz tiff, gt png)

A sample is a pure function of (seed, class, split, defect, index), so any number of
workers writes the same bytes. gt: with the mesh issue's defects (anomalygen.mesh), its
per-point rule (`label_points`: farther than tau from the original surface, or near
the rim of removed material) applied to each visible pixel's 3-D point, plus pixels
where material vanished; with the built-in bulge/concavity, the pixels whose depth
moved by more than `gt_tau` x object size.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anomalygen.errors import AnomalygenError
from anomalygen.parallel import ordered_map
from anomalygen.io import ImageSample, mvtec3d, write_text_atomic
from anomalygen.recipes import load_recipe, require
from anomalygen.render.raycast import Camera, Render, plane_mesh, raycast, shade
from anomalygen.render.scene import (BUILTIN_COLORS, BUILTIN_DEFECTS, builtin_defect, class_seed, known_classes,
                    mesh_defects, mesh_engine_available, normal_mesh, place_on_plane)


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
    defect_engine: str = "auto"
    max_tries: int = 8
    min_gt_pixels: int = 12

    @classmethod
    def from_recipe(cls, r: dict) -> "RenderConfig":
        return cls(size=require(r, "size", int, 16, 4096), fov_deg=float(require(r, "camera.fov_deg", (int, float), 5, 120)),
                   distance=float(require(r, "camera.distance", (int, float), 0.01, 100)),
                   object_size=tuple(float(v) for v in require(r, "object.size", (int, float), 1e-4, 100)),
                   plane_tilt=float(require(r, "background.tilt", (int, float), 0, 0.5)),
                   gt_tau=float(require(r, "gt_tau", (int, float), 0, 1)),
                   counts=(require(r, "counts.train", int, 1, 10000), require(r, "counts.validation", int, 0, 10000),
                           require(r, "counts.test_good", int, 0, 10000), require(r, "counts.test_per_defect", int, 0, 10000)),
                   defects=tuple(require(r, "defects", str)), defect_engine=require(r, "defect_engine", str),
                   max_tries=require(r, "max_tries", int, 1, 100), min_gt_pixels=require(r, "min_gt_pixels", int, 1, 10 ** 6))

    def engine(self) -> str:
        """'mesh' (anomalygen.mesh.apply_defect) or 'builtin'; errors clearly when 'mesh' is asked but absent."""
        if self.defect_engine not in ("auto", "mesh", "builtin"):
            raise AnomalygenError(f"defect_engine {self.defect_engine!r}: expected auto, mesh or builtin")
        if self.defect_engine == "mesh" and not mesh_engine_available():
            raise AnomalygenError("defect_engine 'mesh' needs anomalygen.mesh and anomalygen.shapes, not installed")
        if self.defect_engine == "builtin" or not mesh_engine_available():
            return "builtin"
        return "mesh"

    def usable_defects(self) -> tuple[list[str], list[str]]:
        """(defects this engine renders, defects skipped because the engine lacks them)."""
        have = BUILTIN_DEFECTS if self.engine() == "builtin" else mesh_defects()
        return [d for d in self.defects if d in have], [d for d in self.defects if d not in have]

    def camera(self) -> Camera:
        return Camera.from_fov(self.size, self.size, self.fov_deg)


def _albedo(shape, base, rng, strength=0.25) -> np.ndarray:
    from anomalygen.depth.perlin import perlin_grid_np, random_permutation

    g = perlin_grid_np(shape, (8, 8), random_permutation(rng), octaves=4, offset=tuple(rng.uniform(0, 64, 2)))
    return np.clip(np.asarray(base, np.float32) * (1 + strength * g[..., None]), 0, 1)


def _mesh_engine_defect(mesh, defect: str, rng: np.random.Generator):
    """The mesh issue's operator on the placed mesh; returns (defective mesh, params, labeler)."""
    from anomalygen.mesh.defects import apply_defect
    from anomalygen.mesh.labels import label_points

    res = apply_defect(mesh, defect, None, rng)
    diag = float(np.linalg.norm(mesh.extents))
    tau, rim = float(res.params["tau"]) * diag, float(res.params["rim_distance"]) * diag

    def labels(points):
        return label_points(points, mesh, res, tau, rim)

    params = {k: v for k, v in res.params.items() if isinstance(v, (int, float, str, bool))}
    return res.mesh, params, labels


def render_scene(cls: str, cfg: RenderConfig, rng: np.random.Generator, defect: str | None = None):
    """(normal Render, defective Render or None, albedos, record, gt or None). Draws shape, placement,
    plane and defect from rng; a defect the camera cannot see is drawn again (cfg.max_tries)."""
    size = rng.uniform(*cfg.object_size)
    mesh = place_on_plane(normal_mesh(cls, rng), size, cfg.distance, rng)
    tilt = tuple(rng.uniform(-cfg.plane_tilt, cfg.plane_tilt, 2))
    plane = plane_mesh(cfg.distance, cfg.distance, tilt)
    cam = cfg.camera()
    normal = raycast([mesh, plane], cam)
    obj_albedo = _albedo(normal.xyz.shape[:2], BUILTIN_COLORS.get(cls, (0.62, 0.6, 0.56)), rng)
    bg_albedo = _albedo(normal.xyz.shape[:2], (0.42, 0.42, 0.45), rng, 0.08)
    record = {"object_size": round(size, 6), "plane_tilt": [round(t, 5) for t in tilt]}
    if defect is None:
        return normal, None, (obj_albedo, bg_albedo), record, None
    engine = cfg.engine()
    for tries in range(1, cfg.max_tries + 1):
        try:
            if engine == "mesh":
                bad_mesh, params, labeler = _mesh_engine_defect(mesh, defect, rng)
            else:
                bad_mesh, params = builtin_defect(mesh, defect, rng, size)
                labeler = None
        except ValueError:  # this draw cannot make the defect (operator's contract): draw again
            continue
        bad = raycast([bad_mesh, plane], cam)
        gt = defect_gt(normal, bad, cfg.gt_tau * size)
        if labeler is not None:  # the mesh issue's per-point rule on the visible points, plus what vanished
            obj = bad.geometry == 0
            lab = np.zeros(obj.shape, np.uint8)
            lab[obj] = labeler(bad.xyz[obj].astype(np.float64))
            vanished = (normal.geometry == 0) & (bad.geometry != 0)
            gt = (lab.astype(bool) | vanished).astype(np.uint8)
        if gt.sum() >= cfg.min_gt_pixels * cfg.size ** 2 / 256 ** 2:
            record.update(defect_params=params, defect_engine=engine, tries=tries)
            return normal, bad, (obj_albedo, bg_albedo), record, gt
    raise AnomalygenError(f"{cls}: no visible {defect} after {cfg.max_tries} draws (needs >= {cfg.min_gt_pixels} "
                          "gt pixels at 256 x 256); raise max_tries or lower min_gt_pixels")


def defect_gt(normal: Render, bad: Render, tau: float) -> np.ndarray:
    """Pixels where the defect moved the surface by more than tau, or changed what the ray hits."""
    dz = np.abs(bad.xyz[..., 2] - normal.xyz[..., 2])
    changed = (bad.geometry != normal.geometry) & ((bad.geometry == 0) | (normal.geometry == 0))
    return (((dz > tau) & (bad.geometry == 0)) | changed).astype(np.uint8)


def render_sample(cls: str, split: str, defect: str, index: int, seed: int, cfg: RenderConfig) -> tuple[ImageSample, dict]:
    rng = np.random.default_rng(class_seed(seed, cls, split, defect, index))
    normal, bad, (obj_alb, bg_alb), record, gt = render_scene(cls, cfg, rng, None if defect == "good" else defect)
    r = normal if bad is None else bad
    albedo = np.where((r.geometry == 0)[..., None], obj_alb, bg_alb)
    rgb = shade(r, albedo)
    mask = np.zeros(r.geometry.shape, np.uint8) if gt is None else gt
    name = mvtec3d.sample_name(index)
    sample = ImageSample(xyz=r.xyz, rgb=rgb, mask=mask, cls=cls, split=split, defect=defect, name=name)
    record.update(cls=cls, split=split, defect=defect, name=name, anomaly_ratio=round(float(mask.mean()), 6),
                  object_pixels=int((r.geometry == 0).sum()))
    return sample, record


def _job(args) -> dict:
    root, cls, split, defect, index, seed, cfg = args
    sample, record = render_sample(cls, split, defect, index, seed, cfg)
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
    known = known_classes()
    for c in classes:
        if c not in known:
            raise AnomalygenError(f"unknown class {c!r}; renderer classes: {', '.join(known)}")
    defects, skipped = cfg.usable_defects()
    if skipped:
        print(f"render-mvtec3d: skipping {', '.join(skipped)}: the {cfg.engine()} defect engine lacks them"
              + ("" if mesh_engine_available() else " (anomalygen.mesh is not installed)"), file=sys.stderr)
    cfg = dataclasses.replace(cfg, defects=tuple(defects))
    out = Path(out)
    jobs = [(out, *j, seed, cfg) for j in render_jobs(classes, cfg, seed)]
    records = list(ordered_map(_job, jobs, workers, progress, chunksize=2))
    ratios = [r["anomaly_ratio"] for r in records if r["defect"] != "good"]
    for c in classes:
        mvtec3d.write_camera_parameters(out, c, cfg.camera().to_json())
    manifest = {
        "generator": "anomalygen render-mvtec3d", "recipe": recipe.get("_source"), "seed": seed,
        "defect_engine": cfg.engine(), "skipped_defects": skipped, "config": {k: v for k, v in recipe.items() if not k.startswith("_")},
        "camera": cfg.camera().to_json(),
        "validate": {"points": [1, cfg.size * cfg.size], "anomaly_ratio": [max(0.0, math.floor(min(ratios) * 1e6 - 1) / 1e6), 1.0] if ratios else [0.0, 1.0]},
        "samples": records,
    }
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=1))
    return out
