"""The interface every detector implements, and device selection.

A detector is built from its recipe section (a dict), fitted on normal training samples,
saved to / loaded from a folder, and scores one sample at a time (or a batch) returning
(object score, anomaly map): a per-point (N,) map for point clouds, a per-pixel (H,W) map
for organized clouds. Higher means more anomalous.

Training data is lazy: `fit()` takes sample references, loaded samples or a torch Dataset
of samples (see anomalygen.detectors.data) and reads them one at a time. How the engine
wants a fit run (where checkpoints go, resume, time budget, devices) travels in
`FitOptions`; a detector that has nothing to checkpoint ignores what does not apply.

Optional abilities are declared as class attributes (capabilities), never discovered by
probing for private methods:
    scores_batches   `_score_many` scores several samples in one call (same results as one by one)
    trains_network   `fit` runs the shared Lightning training loop (checkpoints, resume, budget)
    uses_irrelevant  `fit` draws pseudo anomalies from task-irrelevant classes (FitOptions.irrelevant)
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from anomalygen.detectors.data import SampleDataset, sample_kind
from anomalygen.errors import AnomalygenError
from anomalygen.limits import count_within, usable_cpus
from anomalygen.io import write_text_atomic
from anomalygen.io.samples import Sample

STATE_FILE = "detector.json"
# Recipe `run.precision`: auto = bf16-mixed on a CUDA GPU that has bf16, else 32-true (training and scoring).
PRECISIONS = ("auto", "32-true", "bf16-mixed")


@dataclass
class FitOptions:
    """How the engine asks for a fit to run. Plain data: no detector reads recipes through it.

    workdir        RUN/models/<task>/ : checkpoints/, loss.csv, loss.png of a trained network
    resume         continue from workdir's last checkpoint instead of starting over
    max_minutes    training time budget; when spent, training stops cleanly and the model is saved
    devices        > 1: data-parallel (DDP) training over that many devices
    loader_workers DataLoader worker processes reading the training samples
    progress       show progress bars
    precision      auto | 32-true | bf16-mixed (recipe run.precision; see `mixed_precision`)
    task           the task's name, for messages
    irrelevant     training-sample references of the task's task-irrelevant classes (other classes than
                   the ones trained and tested; filled for detectors with `uses_irrelevant`)
    """

    workdir: Path | None = None
    resume: bool = False
    max_minutes: float | None = None
    devices: int = 1
    loader_workers: int = 0
    progress: bool = False
    precision: str = "auto"
    task: str = ""
    irrelevant: Sequence = ()


def check_devices(n, device: torch.device) -> int:
    """--devices N for training on `device`: at most the CPU cores this process may use on cpu (each
    device is a process), at most the GPUs from `device`'s index on for cuda (anomalygen.limits)."""
    if device.type == "cuda":
        first = device.index or 0
        where = f" from {device} on" if first else ""
        return count_within(n, "--devices", max(torch.cuda.device_count() - first, 0), f"CUDA GPU(s){where}")
    return count_within(n, "--devices", usable_cpus(), "CPU cores")


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


def check_precision(precision) -> str:
    if precision not in PRECISIONS:
        raise AnomalygenError(f"run.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def mixed_precision(precision: str, device: torch.device) -> bool:
    """Whether `precision` means bf16 autocast on `device`: bf16-mixed anywhere (CPU autocast included),
    auto only on a CUDA GPU with bf16."""
    check_precision(precision)
    if precision == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return precision == "bf16-mixed"


class Detector:
    """Base class: subclasses set `name`, `kinds`, the capabilities they have, and implement
    _fit, _score, _save_state, _load_state (and _score_many when `scores_batches`)."""

    name: str = ""
    kinds: tuple[str, ...] = ("points", "images")
    scores_batches: bool = False
    trains_network: bool = False
    uses_irrelevant: bool = False

    def __init__(self, config: dict | None = None, device: str | torch.device = "auto"):
        self.config = dict(config or {})
        self.device = resolve_device(device)
        self.kind: str | None = None
        self.fitted = False
        self.training_info: dict = {}  # how the last fit went (epochs, steps, stopped, ...): the engine records it
        # scoring precision (PRECISIONS): bf16 autocast around _score; the engine sets it from run.precision
        self.precision = "32-true"

    # -- public API -------------------------------------------------------------------
    def fit(self, train, options: FitOptions | None = None) -> "Detector":
        """Fit on normal samples of one kind: sample references (read lazily), loaded samples,
        or a torch Dataset of samples. `options`: how the engine wants the fit run."""
        data = SampleDataset(train)
        if len(data) == 0:
            raise AnomalygenError(f"{self.name}: no training samples to fit on")
        try:
            self.kind = data.kind
        except AnomalygenError as exc:
            raise AnomalygenError(f"{self.name}: {exc}") from None
        if self.kind not in self.kinds:
            raise AnomalygenError(f"{self.name} does not support {self.kind} data (supports: {', '.join(self.kinds)})")
        self._fit(data, options or FitOptions())
        self.fitted = True
        return self

    def score(self, sample: Sample) -> tuple[float, np.ndarray]:
        """(object score, anomaly map as float32 numpy: (N,) for points, (H,W) for images)."""
        if not self.fitted:
            raise AnomalygenError(f"{self.name}: score() called before fit() or load()")
        if sample_kind(sample) != self.kind:
            raise AnomalygenError(f"{self.name} was fitted on {self.kind} but got a {sample_kind(sample)} sample")
        with torch.no_grad(), self.autocast():
            s, amap = self._score(sample)
        return float(s), np.asarray(amap, dtype=np.float32)

    def score_batch(self, samples: Sequence[Sample]) -> list[tuple[float, np.ndarray]]:
        """Score several samples at once (same results as score() one by one); detectors that gain
        from batching declare `scores_batches` and implement _score_many."""
        if not self.scores_batches or len(samples) <= 1:
            return [self.score(s) for s in samples]
        if not self.fitted:
            raise AnomalygenError(f"{self.name}: score_batch() called before fit() or load()")
        for s in samples:
            if sample_kind(s) != self.kind:
                raise AnomalygenError(f"{self.name} was fitted on {self.kind} but got a {sample_kind(s)} sample")
        with torch.no_grad(), self.autocast():
            res = self._score_many(list(samples))
        return [(float(s), np.asarray(m, dtype=np.float32)) for s, m in res]

    def autocast(self):
        """bf16 autocast when `precision` asks for it on this device, else nothing. Distances, losses and
        maps stay float32 inside it (anomalygen.detectors.common.points.float32)."""
        if not mixed_precision(self.precision, self.device):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

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
        """Load a saved detector; called on the base class it dispatches on the saved name. A file of
        it that cannot be read back raises DamagedFile naming that file (anomalygen.detectors.stored)."""
        from anomalygen.detectors.stored import DamagedFile, read_json, reading

        directory = Path(directory)
        path = directory / STATE_FILE
        if not path.is_file():
            raise AnomalygenError(f"{directory}: not a saved detector (no {STATE_FILE})")
        state = read_json(path, "saved detector file")
        with reading(path, "saved detector file"):  # its keys: missing or of the wrong type
            name, config, kind, saved = state["detector"], dict(state["config"]), state["kind"], state.get("state", {})
        if cls is Detector:
            from anomalygen.detectors import get_detector
            cls = get_detector(name)
        det = cls(config, device)
        det.kind = kind
        try:
            det._load_state(directory, saved)
        except DamagedFile:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # e.g. weights of another network shape
            raise DamagedFile(path, f"the saved detector does not match its stored files ({type(exc).__name__})") from None
        det.fitted = True
        return det

    def description(self) -> str:
        """One line on what this fitted detector is made of, when its settings change it (metrics tables show it)."""
        return ""

    # -- for subclasses ----------------------------------------------------------------
    def _fit(self, data: SampleDataset, options: FitOptions) -> None:
        raise NotImplementedError

    def _score_many(self, samples: list[Sample]) -> list[tuple[float, np.ndarray]]:
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
