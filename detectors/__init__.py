"""anomalygen.detectors: 3D anomaly detectors behind one interface.

Source lives in the top-level `detectors/` folder (mapped by pyproject.toml).
Detectors read datasets only through `anomalygen.io`.

    from anomalygen.detectors import get_detector, available_detectors
    det = get_detector("btf")(config, device="auto")   # config: the recipe's `btf` section
    det.fit(train_samples); det.save(dir); det = Detector.load(dir)
    score, amap = det.score(sample)     # object score, per-point (N,) or per-pixel (H,W) map

Registering a detector: add NAME -> "module:Class" to REGISTRY (modules import lazily, so
listing detectors never imports torch).
"""

from __future__ import annotations

import importlib

from anomalygen.errors import AnomalygenError

REGISTRY: dict[str, str] = {
    "btf": "anomalygen.detectors.btf.detector:BTFDetector",
    "patchae": "anomalygen.detectors.patchae.detector:PatchAEDetector",
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
