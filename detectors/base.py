"""The interface every detector implements, and device selection.

A detector is built from its recipe section (a dict), fitted on normal training samples,
saved to / loaded from a folder, and scores one sample at a time (or a batch) returning
(object score, anomaly map): a per-point (N,) map for point clouds, a per-pixel (H,W) map
for organized clouds. Higher means more anomalous.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..errors import AnomalygenError
from ..io import write_text_atomic
from ..io.samples import ImageSample, PointSample, Sample

STATE_FILE = "detector.json"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; an explicit cuda request fails clearly without a GPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(str(device))
    except RuntimeError:
        raise AnomalygenError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AnomalygenError(f"device {device!r} requested but no CUDA GPU is available; use --device cpu")
    return dev


def sample_kind(sample: Sample) -> str:
    if isinstance(sample, PointSample):
        return "points"
    if isinstance(sample, ImageSample):
        return "images"
    raise TypeError(f"not a sample: {type(sample).__name__}")


class Detector:
    """Base class: subclasses set `name`, `kinds`, and implement _fit, _score, _save_state, _load_state."""

    name: str = ""
    kinds: tuple[str, ...] = ("points", "images")

    def __init__(self, config: dict | None = None, device: str | torch.device = "auto"):
        self.config = dict(config or {})
        self.device = resolve_device(device)
        self.kind: str | None = None
        self.fitted = False

    # -- public API -------------------------------------------------------------------
    def fit(self, samples: Iterable[Sample], progress=None) -> "Detector":
        """Fit on normal samples (all of one kind). `progress`: optional callable wrapping the iterable."""
        samples = list(samples)
        if not samples:
            raise AnomalygenError(f"{self.name}: no training samples to fit on")
        kinds = {sample_kind(s) for s in samples}
        if len(kinds) > 1:
            raise AnomalygenError(f"{self.name}: training samples mix point clouds and images")
        self.kind = kinds.pop()
        if self.kind not in self.kinds:
            raise AnomalygenError(f"{self.name} does not support {self.kind} data (supports: {', '.join(self.kinds)})")
        self._fit(samples, progress or (lambda it, **_: it))
        self.fitted = True
        return self

    def score(self, sample: Sample) -> tuple[float, np.ndarray]:
        """(object score, anomaly map as float32 numpy: (N,) for points, (H,W) for images)."""
        if not self.fitted:
            raise AnomalygenError(f"{self.name}: score() called before fit() or load()")
        if sample_kind(sample) != self.kind:
            raise AnomalygenError(f"{self.name} was fitted on {self.kind} but got a {sample_kind(sample)} sample")
        with torch.no_grad():
            s, amap = self._score(sample)
        return float(s), np.asarray(amap, dtype=np.float32)

    def score_batch(self, samples: Sequence[Sample]) -> list[tuple[float, np.ndarray]]:
        """Score several samples at once (same results as score() one by one); detectors that gain
        from batching implement _score_many."""
        if not hasattr(self, "_score_many") or len(samples) <= 1:
            return [self.score(s) for s in samples]
        if not self.fitted:
            raise AnomalygenError(f"{self.name}: score_batch() called before fit() or load()")
        for s in samples:
            if sample_kind(s) != self.kind:
                raise AnomalygenError(f"{self.name} was fitted on {self.kind} but got a {sample_kind(s)} sample")
        with torch.no_grad():
            res = self._score_many(list(samples))
        return [(float(s), np.asarray(m, dtype=np.float32)) for s, m in res]

    def save(self, directory: str | Path) -> Path:
        if not self.fitted:
            raise AnomalygenError(f"{self.name}: nothing to save, fit() first")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        extra = self._save_state(directory) or {}
        state = {"detector": self.name, "kind": self.kind, "config": self.config, "state": extra}
        write_text_atomic(directory / STATE_FILE, json.dumps(state, indent=2, default=_jsonable))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "auto") -> "Detector":
        """Load a saved detector; called on the base class it dispatches on the saved name."""
        directory = Path(directory)
        path = directory / STATE_FILE
        if not path.is_file():
            raise AnomalygenError(f"{directory}: not a saved detector (no {STATE_FILE})")
        state = json.loads(path.read_text())
        if cls is Detector:
            from . import get_detector
            cls = get_detector(state["detector"])
        det = cls(state["config"], device)
        det.kind = state["kind"]
        det._load_state(directory, state.get("state", {}))
        det.fitted = True
        return det

    # -- for subclasses ----------------------------------------------------------------
    def _fit(self, samples: list[Sample], progress) -> None:
        raise NotImplementedError

    def _score(self, sample: Sample) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def _save_state(self, directory: Path) -> dict | None:
        raise NotImplementedError

    def _load_state(self, directory: Path, state: dict) -> None:
        raise NotImplementedError


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-serializable: {type(x).__name__}")
