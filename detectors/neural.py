"""NeuralDetector: the Detector base of every detector that trains a network with the shared loop.

A subclass names its settings dataclass and fills four hooks; fit, save and load come from here:

    class MyDetector(NeuralDetector):
        name, kinds = "mydet", ("points",)
        settings = MySettings                      # frozen dataclass with a `train: TrainConfig` field

        def build_network(self):  return MyNetwork(self.cfg.width)             # network.py
        def training_items(self, data):  return MyItems(data, self.cfg)        # data.py (EpochItems)
        def training_loss(self):  return my_loss                               # loss.py, module-level
        def _score(self, sample):  ... self.network(...) ...                   # eval mode, no grad

A detector with several training stages (pretrain, then fine-tune) overrides `training_stages`.
The network's weights are saved as model.pt (a state_dict); loading rebuilds the network from
the saved settings and loads them, so a reloaded detector scores exactly as the fitted one.
After a fit, `training_info` says how it ended: {"epochs", "steps", "stopped", "resumed_from"}
(stopped = "max_minutes" when the time budget ended it), and "stages" for a multi-stage fit.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from anomalygen.detectors.base import Detector, FitOptions
from anomalygen.detectors.settings import as_section, from_section
from anomalygen.detectors.data import SampleDataset
from anomalygen.detectors.stored import load_torch, save_torch
from anomalygen.detectors.training.config import TrainConfig

WEIGHTS_FILE = "model.pt"


@dataclass(frozen=True)
class Stage:
    """One training stage. name: '' for a single stage, else it names the stage's checkpoint folder
    and loss curve; key: where `config` sits in the recipe (for messages)."""

    name: str
    config: TrainConfig
    items: Dataset
    loss: Callable[[nn.Module, dict], dict]
    key: str = "train"


class NeuralDetector(Detector):
    trains_network = True
    settings: type = None  # the detector's settings dataclass

    def __init__(self, config: dict | None = None, device="auto"):
        super().__init__(config, device)
        self.cfg = from_section(self.settings, self.config, self.name)
        self.config = as_section(self.cfg)
        self.network: nn.Module | None = None

    # -- hooks ------------------------------------------------------------------------
    def build_network(self) -> nn.Module:
        """A freshly initialized network for the current settings (weights drawn from torch's RNG)."""
        raise NotImplementedError

    def training_items(self, data: SampleDataset) -> Dataset:
        """The training set: (epoch, index) -> dict of tensors, read lazily from `data`."""
        raise NotImplementedError

    def training_loss(self) -> Callable[[nn.Module, dict], dict]:
        """loss(network, batch) -> {"loss": ..., named parts}; a module-level function (DDP pickles it)."""
        raise NotImplementedError

    def training_stages(self, data: SampleDataset) -> list[Stage]:
        """One stage trained with the settings' `train` section; override for several."""
        return [Stage("", self.cfg.train, self.training_items(data), self.training_loss(), f"{self.name}.train")]

    @property
    def seed(self) -> int:
        """Seed of the initial weights (each stage's TrainConfig seeds its own data and randomness)."""
        return self.cfg.train.seed

    # -- fit / save / load ------------------------------------------------------------
    def _fit(self, data: SampleDataset, options: FitOptions) -> None:
        from anomalygen.detectors.training.loop import fit_network  # Lightning loads only to train

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.network = self.build_network()
        start = time.monotonic()
        identity = {"detector": self.name, "config": self.config}
        stages, results = self.training_stages(data), {}
        for stage in stages:
            left = None
            if options.max_minutes is not None:
                left = options.max_minutes - (time.monotonic() - start) / 60.0
                if left <= 0:
                    break
            result = fit_network(self.network, stage.items, stage.loss, stage.config,
                                 dataclasses.replace(options, max_minutes=left), self.device, stage.name, identity,
                                 stage.key)
            results[stage.name] = result.as_dict()
            if result.stopped:
                break
        last = list(results.values())[-1]
        self.training_info = dict(last)
        if len(stages) > 1:
            self.training_info["stopped"] = last["stopped"] or (None if len(results) == len(stages) else "max_minutes")
            self.training_info["stages"] = results
        self.network.to(self.device).eval()

    def _save_state(self, directory: Path) -> dict:
        save_torch(self.network.state_dict(), directory / WEIGHTS_FILE)  # same weights, same bytes
        return {"weights": WEIGHTS_FILE, "training": self.training_info}

    def _load_state(self, directory: Path, state: dict) -> None:
        self.network = self.build_network()
        weights = load_torch(directory / state.get("weights", WEIGHTS_FILE))
        self.network.load_state_dict(weights)
        self.network.to(self.device).eval()
        self.training_info = state.get("training", {})
