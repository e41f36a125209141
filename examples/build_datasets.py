"""Build sets from the procedural catalog and from your own meshes, read them back, plot labels (~40 s on 2 CPU cores).

    python examples/build_datasets.py [OUT]      # OUT defaults to out/examples/build_datasets
    ANOMALYGEN_EXAMPLE_SMALL=1 python examples/build_datasets.py /tmp/x    # fewer samples and points: ~20 s
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write PNG files, open no window
import matplotlib.pyplot as plt
import trimesh
from tqdm import tqdm

from anomalygen.builds.shapenet import build_dataset
from anomalygen.io import open_dataset
from anomalygen.recipes import load_recipe

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "out/examples/build_datasets")
SMALL = os.environ.get("ANOMALYGEN_EXAMPLE_SMALL") == "1"

# Your own meshes: one sub-folder per class, any .obj/.ply/.stl/.off inside (here made with trimesh).
meshes = OUT / "my_meshes"
for cls, mesh in {"washer": trimesh.creation.annulus(0.3, 1.0, 0.25, sections=96),
                  "pill": trimesh.creation.capsule(height=1.5, radius=0.4, count=[48, 48])}.items():
    (meshes / cls).mkdir(parents=True, exist_ok=True)
    mesh.export(meshes / cls / f"{cls}.stl")

# The recipe holds every default of `anomalygen build-shapenet`; overrides are dotted keys, as --set takes them.
recipe = load_recipe("anomaly-shapenet", {"dataset.points": [4000, 6000]} if SMALL else None)
count = dict(train_per_class=1, test_per_class=2) if SMALL else dict(train_per_class=4, test_per_class=12)
bar = lambda samples, total: tqdm(samples, total=total, unit="sample")  # a progress bar over finished samples
builds = {
    "catalog": build_dataset(OUT / "catalog", recipe, classes="bowl0" if SMALL else "bowl0,cup1", workers=2,
                             progress=bar, **count),
    "my meshes": build_dataset(OUT / "mine", recipe, source=meshes, classes="washer" if SMALL else None, workers=2,
                               progress=bar, **count),
}

fig = plt.figure(figsize=(10, 5))
for i, (title, result) in enumerate(builds.items()):
    print(f"{title}: {result.out}\n{result.table()}")  # per defect type: samples, anomaly ratio, points
    ds = open_dataset(result.out)  # the layout is detected; samples are listed lazily
    ref = next(r for r in ds.samples(split="test") if r.anomalous)
    s = ref.load()  # PointSample: points (N, 3), labels (N,) with 1 = anomalous
    print(f"{s.cls}/{s.name}: {s.defect}, {len(s.points)} points, {s.anomaly_ratio:.1%} anomalous")
    ax = fig.add_subplot(1, 2, i + 1, projection="3d")
    order = s.labels.argsort(kind="stable")  # anomalous points (red) drawn last, on top
    ax.scatter(*s.points[order].T, c=s.labels[order], cmap="coolwarm", s=0.5, vmin=0, vmax=1)
    ax.set_box_aspect(s.points.max(0) - s.points.min(0))  # true proportions
    ax.set_title(f"{title}: {s.cls} {s.defect}")
    ax.set_axis_off()
fig.savefig(OUT / "labels.png", dpi=120)
print(OUT / "labels.png")
