"""What the bytes of a rendered image and a built point-cloud sample depend on, run as a script so a test
can run it again in a process whose numpy and OpenBLAS take other CPU paths.

    python tests/cpu_paths.py [render[:N]] [build]     prints {case: sha256 of its bytes} as JSON

Cases: the six built-in render classes (a good image and a hole, size 32, seed 3) and build-shapenet
samples of every defect type (seed 3), among them bag0/4_scratch, whose carved groove took other
faces when numpy's AVX-512 power decided the groove's taper.

`cpu_environments()` names the environments the test compares: numpy with every CPU-specific
(dispatched) path off, and OpenBLAS with another CPU's kernels than this one's.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

RENDER = [(c, s, d) for c in ("bagel", "cookie", "dowel", "peach", "potato", "tire")
          for s, d in (("train", "good"), ("test", "hole"))]
BUILD = [("bag0", 4, "scratch"), ("ashtray0", 6, "concavity"), ("ashtray0", 8, "bulge"), ("bag0", 5, "bending"),
         ("ashtray0", 1, "crack"), ("bag0", 2, "hole"), ("bag0", 3, "break"), ("ashtray0", 0, "good")]


def digest(*arrays) -> str:
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def render_cases(first: int | None = None) -> dict:
    from anomalygen.builds.settings import render_config
    from anomalygen.recipes import load_recipe
    from anomalygen.render.sample import render_sample

    cfg = render_config({**load_recipe("render-mvtec3d"), "size": 32})
    out = {}
    for cls, split, defect in RENDER[:first]:
        s, _ = render_sample(cls, split, defect, 0, 3, cfg)
        out[f"render {cls}/{split}/{defect}"] = digest(s.xyz, s.rgb, s.mask)
    return out


def build_cases() -> dict:
    from anomalygen.builds import shapenet as S
    from anomalygen.io import anomaly_shapenet as asn
    from anomalygen.recipes import load_recipe

    rec = load_recipe("anomaly-shapenet")
    settings = S.settings_from_recipe(rec, seed=3, defects=list(rec["dataset"]["defects"]))
    out = {}
    for cls, index, defect in BUILD:
        split = "train" if defect == "good" else "test"
        job = S.Job(cls, split, index, defect, asn.sample_name(cls, split, index, defect))
        sample, _, _ = S.make_sample(settings, job)
        out[f"build {cls}/{job.name}"] = digest(sample.points, sample.labels)
    return out


def cpu_environments() -> dict[str, dict[str, str]]:
    """{name: environment variables}: numpy without its dispatched paths, and OpenBLAS on other kernels."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    present = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    return {"numpy baseline paths, OpenBLAS Prescott kernels": {"NPY_DISABLE_CPU_FEATURES": " ".join(present),
                                                               "OPENBLAS_CORETYPE": "Prescott"},
            "OpenBLAS Haswell kernels": {"OPENBLAS_CORETYPE": "Haswell"},
            "OpenBLAS Zen kernels": {"OPENBLAS_CORETYPE": "Zen"}}


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = {}
    for part in sys.argv[1:] or ["render", "build"]:
        name, _, first = part.partition(":")
        result.update(render_cases(int(first) if first else None) if name == "render" else build_cases())
    print(json.dumps(result))
