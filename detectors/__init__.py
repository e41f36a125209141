"""anomalygen.detectors: 3D anomaly detectors behind one interface, and the runs that train them.

Source lives in the top-level `detectors/` folder (mapped by pyproject.toml).
Detectors read datasets only through `anomalygen.io`.

    from anomalygen.detectors import get_detector
    from anomalygen.io import open_dataset
    refs = open_dataset("out/anomaly-shapenet").samples("bowl0", "train")   # references, read lazily
    det = get_detector("btf")(config, device="auto")   # config: the recipe's `btf` section (a dict)
    det.fit(refs)                                      # or det.fit(refs, FitOptions(...)) from the engine
    det.save(dir); det = Detector.load(dir)
    score, amap = det.score(sample)     # object score, per-point (N,) or per-pixel (H,W) map

Whole runs (train per class, evaluate, report):
    from anomalygen.detectors.engine import train_detector, evaluate_run
    from anomalygen.detectors.reports import markdown_table, preview_run

Layout: base.py (the Detector interface, capabilities, FitOptions), data.py (lazy training
data), settings.py (typed settings from recipe sections), neural.py (NeuralDetector: the base
of every detector that trains a network) and training/ (the one Lightning training loop);
tasks.py / runs.py / scores.py / engine.py (a run: what it trains, its folder, its
predictions, training and scoring), zeroshot.py (3DzAL's train-on-one, test-on-each-other square), reports/ (metric tables, preview sheets), common/
(shared point ops, memory bank, FPFH), and one folder per detector: <name>/detector.py
(the Detector subclass and its settings), network.py, loss.py, data.py where it has them.

Registering a detector: add NAME -> "anomalygen.detectors.<name>.detector:Class" to REGISTRY
(modules import lazily, so listing detectors never imports torch).
"""

from __future__ import annotations

import importlib

from anomalygen.errors import AnomalygenError

REGISTRY: dict[str, str] = {
    "btf": "anomalygen.detectors.btf.detector:BTFDetector",
    "das3d": "anomalygen.detectors.das3d.detector:DAS3DDetector",
    "patchae": "anomalygen.detectors.patchae.detector:PatchAEDetector",
    "imrnet": "anomalygen.detectors.imrnet.detector:IMRNetDetector",
    "nearest": "anomalygen.detectors.nearest.detector:NearestDetector",
    "zal3d": "anomalygen.detectors.zal3d.detector:ZAL3DDetector",
}


def available_detectors() -> list[str]:
    return sorted(REGISTRY)


def register(name: str, target: str) -> None:
    """Register a detector class by its import path 'package.module:Class'."""
    REGISTRY[name] = target


def get_detector(name: str):
    """The detector class registered as `name`, or AnomalygenError naming the known ones."""
    if name not in REGISTRY:
        raise AnomalygenError(f"unknown detector {name!r}; available: {', '.join(available_detectors())}")
    module, _, cls = REGISTRY[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise AnomalygenError(f"detector {name!r} is registered but not available in this build ({exc})") from None


__all__ = ["REGISTRY", "available_detectors", "get_detector", "register"]
