"""Benchmark of `anomalygen build-shapenet` (numpy engine).

Prints (1) samples/s per defect type, each sample built AND written (pcd, GT, obj) in one
process, over a fixed set of classes, and (2) the wall time of the full 40-class,
1600-sample build with --workers (default 2), plus the machine load around it.

    python benchmarks/build_shapenet.py                 # both parts
    python benchmarks/build_shapenet.py --skip-full     # per-defect rates only
    python benchmarks/build_shapenet.py --out DIR --validate   # keep the full build and validate it
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from anomalygen.builds.settings import shapenet_settings
from anomalygen.builds.shapenet import Job, build_dataset, class_mesh, run_job
from anomalygen.mesh import DEFECTS
from anomalygen.recipes import load_recipe

CLASSES = ["bowl2", "vase4", "cup0", "eraser0", "tap1", "helmet1", "shelf0", "bottle1"]


def per_defect(recipe, per_class: int) -> None:
    settings = shapenet_settings(recipe)
    out = Path(tempfile.mkdtemp(prefix="bench-defects-"))
    try:
        from anomalygen import geometry as g

        for c in CLASSES:  # per-class set-up happens once per process in a real build too
            mesh, _ = class_mesh(settings, c)
            g.exposed_faces(mesh), g.to_manifold(mesh), g.scene(mesh)
            run_job((settings, str(out), Job(c, "test", 999, "good", "999_positive")))
        print(f"per-defect rate, 1 process, {len(CLASSES)} classes x {per_class} samples, build + write:")
        print(f"{'defect':<10} {'samples':>7} {'samples/s':>10} {'s/sample':>9} {'cpu s/sample':>13} {'attempts':>9}")
        for d in ("good", *DEFECTS):
            n, t0, c0, att = 0, time.perf_counter(), time.process_time(), []
            for c in CLASSES:
                for i in range(per_class):
                    rec = run_job((settings, str(out), Job(c, "test", i, d, f"{i}_{d if d != 'good' else 'positive'}")))
                    att.append(rec.attempts)
                    n += 1
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"{d:<10} {n:>7} {n / dt:>10.2f} {dt / n:>9.3f} {cpu / n:>13.3f} {np.mean(att):>9.2f}")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def full(recipe, workers: int, out: str | None, validate: bool) -> None:
    target = Path(out) if out else Path(tempfile.mkdtemp(prefix="bench-full-")) / "ds"
    if target.exists():
        shutil.rmtree(target)
    la0 = os.getloadavg()
    cpu0 = _cpu()
    t0 = time.perf_counter()
    res = build_dataset(target, recipe, classes=40, workers=workers)
    dt = time.perf_counter() - t0
    cpu = _cpu() - cpu0
    la1 = os.getloadavg()
    n = len(res.records)
    print(f"full build: {n} samples, 40 classes, workers={workers}: {dt:.1f} s wall ({n / dt:.2f} samples/s); "
          f"load average before {la0[0]:.2f}, after {la1[0]:.2f} (1-min), cores {os.cpu_count()}")
    print(f"  CPU time (this process + workers, user+sys): {cpu:.1f} s = {cpu / n:.3f} s/sample; "
          f"on {workers} otherwise idle cores that is about {cpu / workers:.0f} s wall")
    print(res.table())
    if validate:
        from anomalygen.validate import validate_dataset

        t1 = time.perf_counter()
        rep = validate_dataset(target, workers=workers)
        print(f"validate: {'OK' if rep.ok else f'{len(rep.problems)} problems'} in {time.perf_counter() - t1:.1f} s")
        for p in rep.problems[:10]:
            print("  ", p)
    if not out:
        shutil.rmtree(target.parent, ignore_errors=True)


def _cpu() -> float:
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=2, help="samples per class per defect type (part 1)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--skip-defects", action="store_true")
    ap.add_argument("--out", default=None, help="keep the full build here (default: a temp dir, removed)")
    ap.add_argument("--validate", action="store_true", help="run validate on the full build")
    a = ap.parse_args()
    recipe = load_recipe("anomaly-shapenet")
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} (1-min) at start")
    if not a.skip_defects:
        per_defect(recipe, a.per_class)
    if not a.skip_full:
        full(recipe, a.workers, a.out, a.validate)


if __name__ == "__main__":
    main()
