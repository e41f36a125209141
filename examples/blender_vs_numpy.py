"""The numpy and Blender defect engines side by side, one row per defect type ([blender] extra; ~40 s on 2 CPU cores).

    python examples/blender_vs_numpy.py [OUT] --cls bowl0     # writes OUT/bowl0.png; OUT: out/examples/blender_vs_numpy
    ANOMALYGEN_EXAMPLE_SMALL=1 python examples/blender_vs_numpy.py /tmp/x    # two defect types, fewer points

Rows are the 7 defect types, columns numpy | Blender, same class mesh, same recipe
sizing, same label rule (anomalous points in red). The camera looks at the defect
along its surface normal (bending: along the hinge axis, so the bend shows in profile).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def view_of(res, mesh) -> np.ndarray:
    p = res.params
    if res.defect == "bending":
        v = np.asarray(p.get("axis") or p.get("hinge_axis"), float)
        u = np.asarray(p.get("direction") or p.get("plane_normal"), float)
        return v + 0.35 * np.cross(v, u)
    n = np.asarray(p.get("normal", [1.0, 0.3, 0.5]), float)
    return n + 0.25 * np.array([0.0, 0.0, 1.0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cls", default="bowl0")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("out", nargs="?", default="out/examples/blender_vs_numpy", help="output folder")
    a = ap.parse_args()
    small = os.environ.get("ANOMALYGEN_EXAMPLE_SMALL") == "1"

    from anomalygen import geometry as g
    from anomalygen.builds.engines import get_engine
    from anomalygen.builds.shapenet import defect_params
    from anomalygen.mesh import DEFECTS
    from anomalygen.mesh.labels import label_points
    from anomalygen.mesh.refine import refine
    from anomalygen.mesh.sampling import sample_surface
    from anomalygen.preview.splat import render
    from anomalygen.recipes import get_key, load_recipe
    from anomalygen.shapes.sources import open_source

    recipe = load_recipe("anomaly-shapenet")
    tau, rim = get_key(recipe, "labels.tau"), get_key(recipe, "labels.rim_distance")
    m = open_source(None).mesh(a.cls, np.random.default_rng(0))
    fine = refine(m, get_key(recipe, "shapes.max_edge") * g.diagonal(m))
    D = g.diagonal(fine)
    S, points = (160, 4000) if small else (a.size, a.points)
    defects = ("bulge", "hole") if small else DEFECTS
    sheet = Image.new("RGB", (2 * S + 90, len(defects) * S + 24), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((90 + S // 2 - 20, 4), "numpy", fill="black")
    draw.text((90 + S + S // 2 - 20, 4), "blender", fill="black")
    for row, d in enumerate(defects):
        draw.text((4, 24 + row * S + S // 2), d, fill="black")
        results = {}
        for col, eng in enumerate(("numpy", "blender")):
            res = get_engine(eng).apply(fine, d, defect_params(recipe, d), [a.seed, row])
            pts = sample_surface(res.mesh, points, np.random.default_rng(0))[0]
            lab = label_points(pts, fine, res, tau * D, rim * D)
            results[eng] = res
            direction = view_of(res, fine)
            img = render(pts, lab, direction, size=S, center=np.asarray(fine.bounds).mean(0), extent=D)
            sheet.paste(Image.fromarray(img), (90 + col * S, 24 + row * S))
            draw.text((90 + col * S + 4, 24 + row * S + S - 14), f"ratio {lab.mean():.3f}", fill="black")
    out = Path(a.out) / f"{a.cls}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(out)


if __name__ == "__main__":
    main()
