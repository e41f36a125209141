"""Train and score BTF and PatchAE with the detector engine, then metrics on your own scores (~10 min on 2 CPU cores).

    python examples/train_and_score.py [OUT]     # OUT defaults to out/examples/train_and_score
    ANOMALYGEN_EXAMPLE_SMALL=1 python examples/train_and_score.py /tmp/x    # one class, 2 epochs: ~1 min
"""

import os
import sys
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from anomalygen.builds.shapenet import build_dataset
from anomalygen.detectors.engine import evaluate_run, train_detector
from anomalygen.io import open_dataset
from anomalygen.metrics import image_auroc, point_auroc
from anomalygen.recipes import load_recipe

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "out/examples/train_and_score")
SMALL = os.environ.get("ANOMALYGEN_EXAMPLE_SMALL") == "1"
CLASSES = ["cup0"] if SMALL else ["cup0", "vase1"]

# A small Anomaly-ShapeNet-layout set (any dataset open_dataset reads works the same: Real3D-AD, MVTec 3D-AD).
data = build_dataset(OUT / "data", load_recipe("anomaly-shapenet", {"dataset.points": [4000, 6000]}),
                     classes=CLASSES, train_per_class=2 if SMALL else 4, test_per_class=4 if SMALL else 12,
                     workers=2).out

# The engine fits one model per class, saves it under RUN/models/, scores the test split (RUN/scores/) and
# writes metrics.{json,csv,md}. `overrides` are dotted recipe keys, as `--set` takes them.
# PatchAE trains 10 epochs here to keep the example short (its recipe: 40).
overrides = {"patchae.train.epochs": 10}
if SMALL:
    overrides = {"btf.points.n_points": 1024, "patchae.train.epochs": 2, "patchae.repeat": 2,
                 "patchae.score_patches": 32, "run.loader_workers": 0}
for name in ("btf", "patchae"):
    train_detector(name, data, OUT / name, overrides=overrides, overwrite=True)
    print((OUT / name / "metrics.md").read_text())
# A saved run re-scores later, on this data or on another dataset of the same layout (`anomalygen evaluate`).
print("BTF mean I-AUROC, re-evaluated:", evaluate_run(OUT / "btf", out=OUT / "btf-again")["mean"]["i_auroc"])

# Your own detector's scores, through the same metrics: here a point's score is its distance to the nearest
# training point, and a sample's score is the largest of them.
ds = open_dataset(data)
for cls in CLASSES:
    train = cKDTree(np.concatenate([r.load().points for r in ds.samples(cls, "train")]))
    test = [r.load() for r in ds.samples(cls, "test")]
    point_scores = [train.query(s.points)[0] for s in test]
    i_auroc = image_auroc([s.anomalous for s in test], [m.max() for m in point_scores])
    p_auroc = point_auroc([s.labels for s in test], point_scores)
    print(f"{cls}: nearest-point distance: I-AUROC {i_auroc:.3f}, point AUROC {p_auroc:.3f}")
# Images (MVTec 3D-AD): anomalygen.metrics.pixel_auroc(masks, maps) and aupro(masks, maps) take (H, W) arrays.
