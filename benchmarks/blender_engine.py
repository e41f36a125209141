"""Per-sample time of the Blender defect engine with a warm worker.

    python benchmarks/blender_engine.py [--classes ashtray0,bowl0] [--per-defect 3]

For each class: the procedural mesh refined as `build-shapenet` refines it (recipe
max_edge), then `per-defect` samples of each of the 7 defects through
BlenderEngine.apply (one warm Blender worker), each followed by what the build
driver does with it (sample 8K-30K points, label against the original mesh).
Prints: worker start time, seconds per defect type (engine alone, and engine +
sampling + labels), and the mean over all samples. Goal: <= 2 s/sample warm.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", default="ashtray0,bowl0,vase1")
    ap.add_argument("--per-defect", type=int, default=2)
    a = ap.parse_args()

    from anomalygen.blender.engine import BlenderEngine
    from anomalygen.blender.workers import WorkerPool
    from anomalygen import geometry as g
    from anomalygen.builds.settings import defect_params, shapenet_settings
    from anomalygen.mesh import DEFECTS
    from anomalygen.mesh.labels import label_points
    from anomalygen.mesh.refine import refine
    from anomalygen.mesh.sampling import sample_surface
    from anomalygen.recipes import load_recipe
    from anomalygen.shapes.sources import open_source

    recipe = load_recipe("anomaly-shapenet")
    settings = shapenet_settings(recipe)
    max_edge, tau, rim = settings.max_edge, settings.tau, settings.rim_distance
    lo_pts, hi_pts = settings.points
    src = open_source(None)

    with WorkerPool(size=1, timeout=120) as pool:
        t0 = time.perf_counter()
        info = pool.run([{"kind": "ping"}])[0]["result"]
        print(f"worker start: {time.perf_counter() - t0:.2f} s  (Blender {info['blender']}, {pool.launcher.describe()})")
        eng = BlenderEngine(pool=pool)
        engine_s = {d: [] for d in DEFECTS}
        total_s = {d: [] for d in DEFECTS}
        for cls in a.classes.split(","):
            m = src.mesh(cls, np.random.default_rng(0))
            fine = refine(m, max_edge * g.diagonal(m))
            D = g.diagonal(fine)
            print(f"{cls}: {len(fine.faces)} faces after refinement")
            for d in DEFECTS:
                for k in range(a.per_defect):
                    rng = np.random.default_rng([1, k])
                    t1 = time.perf_counter()
                    try:
                        res = eng.apply(fine, d, defect_params(recipe, d), [2, k, len(d)])
                    except ValueError as exc:   # the driver would redraw; count the time anyway
                        print(f"  {d}: draw failed ({str(exc)[:80]})")
                        continue
                    t2 = time.perf_counter()
                    pts = sample_surface(res.mesh, int(rng.integers(lo_pts, hi_pts + 1)), rng)[0]
                    label_points(pts, fine, res, tau * D, rim * D)
                    t3 = time.perf_counter()
                    engine_s[d].append(t2 - t1)
                    total_s[d].append(t3 - t1)
        print(f"\n{'defect':10s} {'n':>3s} {'engine s':>9s} {'+points+labels s':>17s}")
        for d in DEFECTS:
            if engine_s[d]:
                print(f"{d:10s} {len(engine_s[d]):3d} {np.mean(engine_s[d]):9.3f} {np.mean(total_s[d]):17.3f}")
        e = [x for v in engine_s.values() for x in v]
        t = [x for v in total_s.values() for x in v]
        print(f"{'all':10s} {len(e):3d} {np.mean(e):9.3f} {np.mean(t):17.3f}")
        print(f"\nwarm per-sample time (engine + points + labels): {np.mean(t):.2f} s/sample "
              f"(goal <= 2 s); Blender processes started: {pool.starts}")


if __name__ == "__main__":
    main()
