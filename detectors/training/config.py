"""How a network is trained: the typed `train:` section every neural detector's recipe carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from anomalygen.detectors.settings import bounded


@dataclass(frozen=True)
class TrainConfig:
    """One training stage's settings (recipe keys of the same names).

    epochs        passes over the training items (an item is one draw from one sample)
    batch_size    items per optimizer step (per device under DDP)
    optimizer     adam | adamw | sgd (sgd uses `momentum`)
    lr            learning rate at the start
    weight_decay  L2 penalty (decoupled for adamw)
    milestones    step decay: at each fraction of `epochs` (rounded to an epoch) lr is multiplied
                  by `gamma`; DRAEM and DAS3D decay at 0.8 and 0.9
    grad_clip     clip the global gradient norm to this value; null = no clipping
    seed          weights, data order, every data draw and model-side randomness derive from it
    """

    epochs: int = bounded(10, 1, 10**6)
    batch_size: int = bounded(8, 1, 10**6)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = bounded(1e-3, 1e-12, 10.0)
    weight_decay: float = bounded(0.0, 0.0, 10.0)
    momentum: float = bounded(0.9, 0.0, 1.0)
    milestones: tuple[float, ...] = bounded((), 0.0, 1.0)
    gamma: float = bounded(0.1, 0.0, 1.0)
    grad_clip: float | None = bounded(None, 1e-12, 1e12)
    seed: int = bounded(0, 0, 2**63 - 1)

    def milestone_epochs(self) -> list[int]:
        """The epochs (0-based, as torch's MultiStepLR counts them) where lr decays."""
        return sorted({round(f * self.epochs) for f in self.milestones})
