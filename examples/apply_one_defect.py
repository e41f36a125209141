"""Apply one defect to one mesh; inspect the DefectResult's parameters, labels and anomaly ratio (~10 s on 2 CPU cores).

    python examples/apply_one_defect.py [OUT]     # OUT defaults to out/examples/apply_one_defect
    ANOMALYGEN_EXAMPLE_SMALL=1 python examples/apply_one_defect.py /tmp/x    # fewer sampled points
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

from anomalygen.builds.shapenet import defect_params
from anomalygen.mesh import apply_defect, label_points, refine, sample_surface
from anomalygen.recipes import load_recipe
from anomalygen.shapes.catalog import make_shape

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "out/examples/apply_one_defect")
SMALL = os.environ.get("ANOMALYGEN_EXAMPLE_SMALL") == "1"
DEFECT = "crack"  # any of bulge, concavity, hole, break, bending, crack, scratch

# A watertight, unit-diagonal catalog mesh, refined so that every edge is shorter than 2.5 % of the diagonal
# (the defect operators move vertices: they need enough of them). Any closed trimesh.Trimesh works the same.
original = refine(make_shape("cup0", np.random.default_rng(0)), 0.025)
recipe = load_recipe("anomaly-shapenet")
params = defect_params(recipe, DEFECT)  # the recipe's defects.crack section + tau and rim_distance (x diagonal)
result = apply_defect(original, DEFECT, params, np.random.default_rng(1))

# DefectResult: the defective mesh, the realized parameters, and for cuts the rim of the removed material.
print("defect:", result.defect, "| removes material:", result.removal)
print("realized parameters (lengths as fractions of the bounding-box diagonal):")
for key, value in result.params.items():  # JSON-serializable: the build writes them into manifest.json
    print(f"  {key}: {json.dumps(np.round(value, 4).tolist() if isinstance(value, (float, list)) else value)}")
print("rim points:", None if result.rim_points is None else result.rim_points.shape)

# Labels: a point sampled on the defective surface is anomalous iff it lies farther than tau from the
# ORIGINAL surface, or (hole, break, crack) within rim_distance of the cut's rim.
points, _ = sample_surface(result.mesh, 4000 if SMALL else 20000, np.random.default_rng(2))
d = original.scale  # bounding-box diagonal
labels = label_points(points, original, result, params["tau"] * d, params["rim_distance"] * d)
print(f"{len(points)} points, {int(labels.sum())} anomalous: ratio {labels.mean():.2%}")

OUT.mkdir(parents=True, exist_ok=True)
result.mesh.export(OUT / f"{DEFECT}.obj")
np.savetxt(OUT / f"{DEFECT}_points.txt", np.column_stack([points, labels]), fmt="%.6f %.6f %.6f %d",
           header="x y z label")
print(OUT)
