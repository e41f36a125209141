"""The `render-mvtec3d` driver: an MVTec 3D-AD-layout dataset rendered from procedural shapes.

    <class>/train/good, validation/good, test/good, test/<defect>  (rgb png, xyz tiff, gt png)

Loads the recipe, plans one job per image, renders them (anomalygen.render.sample, a pure
function of seed, class, split, defect and index, so any number of workers writes the
same bytes) and writes the manifest.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path

from anomalygen.builds.settings import render_config
from anomalygen.errors import AnomalygenError
from anomalygen.builds.cluster import BuildFailed, Ledger, drop_manifest, run_samples
from anomalygen.io import mvtec3d
from anomalygen.io.atomic import clean_temp
from anomalygen.io.json_stream import write_json_stream_atomic
from anomalygen.io.output_dir import claim_output
from anomalygen.limits import class_list
from anomalygen.recipes import load_recipe, require
from anomalygen.render.sample import RenderConfig, render_sample
from anomalygen.render.scene import MVTEC_CLASSES, known_classes


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


def mvtec_classes(classes) -> list[str]:
    """A count N (int or digit string) -> the first N of MVTec 3D-AD's ten classes in its order;
    'a,b' or a list -> those names."""
    if isinstance(classes, int) or (isinstance(classes, str) and classes.strip().isdigit()):
        n = int(classes)
        if not 1 <= n <= len(MVTEC_CLASSES):
            raise AnomalygenError(f"--classes {n}: choose 1..{len(MVTEC_CLASSES)} (MVTec 3D-AD: {', '.join(MVTEC_CLASSES)})")
        return list(MVTEC_CLASSES[:n])
    return class_list(classes) or []


def render_mvtec3d(out: str | os.PathLike, classes: list[str] | None = None, recipe: dict | None = None,
                   seed: int | None = None, workers: int = 1, progress=None, overwrite: bool = False,
                   scheduler: str | None = None) -> Path:
    """Write the rendered dataset under `out` and its manifest.json; returns `out`. A re-run with the same
    settings renders only the images it lacks. `scheduler`: a running Dask scheduler's address (its
    workers share `out`); images that fail on every attempt raise BuildFailed after the others are written."""
    recipe = recipe or load_recipe("render-mvtec3d")
    cfg = render_config(recipe)
    seed = require(recipe, "seed", int) if seed is None else seed
    classes = mvtec_classes(classes or require(recipe, "classes", str))
    known = known_classes()
    for c in classes:
        if c not in known:
            raise AnomalygenError(f"unknown class {c!r}; renderer classes: {', '.join(known)}")
    defects, skipped = cfg.usable_defects()
    if skipped:
        print(f"render-mvtec3d: skipping {', '.join(skipped)}: the {cfg.engine()} defect engine lacks them",
              file=sys.stderr)
    cfg = dataclasses.replace(cfg, defects=tuple(defects))
    out = claim_output(out, "render-mvtec3d", overwrite)  # empty, its own earlier output, or --overwrite
    head = {
        "generator": "anomalygen render-mvtec3d", "recipe": recipe.get("_source"), "seed": seed,
        "defect_engine": cfg.engine(), "skipped_defects": skipped, "config": {k: v for k, v in recipe.items() if not k.startswith("_")},
        "camera": cfg.camera().to_json(),
    }
    ledger = Ledger(out, head)
    plan = render_jobs(classes, cfg, seed)
    key = lambda j: "/".join(map(str, j))  # noqa: E731  a plan entry (cls, split, defect, index) names its image
    todo = [j for j in plan if not ledger.done(key(j))]
    if todo:
        drop_manifest(out)
    here, failures = out.resolve(), []  # workers on other machines need the absolute path of the shared folder
    jobs = ((here, *j, seed, cfg) for j in todo)
    for job, record in run_samples(_job, jobs, len(todo), lambda a: key(a[1:5]), failures, workers=workers,
                                   scheduler=scheduler, progress=progress):
        ledger.put(key(job[1:5]), record)
    if failures:
        raise BuildFailed(failures, len(plan))
    low, in_band = None, 0
    for r in map(ledger.get, map(key, plan)):  # one record at a time
        in_band += r.get("gt_pixels_in_plane_band", 0)
        if r["defect"] != "good":
            low = r["anomaly_ratio"] if low is None else min(low, r["anomaly_ratio"])
    for c in classes:
        mvtec3d.write_camera_parameters(out, c, cfg.camera().to_json())
    head["validate"] = {"points": [1, cfg.size * cfg.size], "anomaly_ratio": [max(0.0, math.floor(low * 1e6 - 1) / 1e6), 1.0] if low is not None else [0.0, 1.0]}
    head["plane_band"] = {"clearance_m": cfg.plane_clearance,
                          "rule": "no gt pixel on the object lies within clearance_m of the support plane; "
                                  "gt_pixels_in_plane_band counts gt pixels where removed material shows the plane",
                          "gt_pixels_in_plane_band": in_band}
    write_json_stream_atomic(out / "manifest.json", head, "samples", (ledger.get(key(j)) for j in plan), indent=1)
    clean_temp(out)
    return out
