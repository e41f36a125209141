"""A tiny network, training set and loss for the shared-loop tests.

Also a script: `python tests/training_fixtures.py WORKDIR EPOCHS WORKERS DELAY` runs one fit, so
a test can kill it mid-run (DELAY seconds per item keep an epoch long enough to be caught).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from anomalygen.detectors.base import FitOptions
from anomalygen.detectors.training import EpochItems, TrainConfig
from anomalygen.detectors.training.loop import fit_network

N_ITEMS, BATCH = 24, 4
SEEN: list[list[int]] = []  # item indices of each batch the loss saw in this process


class TinyNet(nn.Module):
    """An autoencoder with dropout, so model-side randomness takes part in every step."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 8))

    def forward(self, x):
        return self.body(x)


class TinyItems(EpochItems):
    """Item: a fixed vector per sample plus noise drawn from the item's rng, and its index."""

    def __init__(self, seed: int, delay: float = 0.0):
        super().__init__(list(range(N_ITEMS)), seed)
        self.delay = delay

    def __getitem__(self, key):
        return {**super().__getitem__(key), "index": torch.tensor(key[1])}

    def item(self, sample, rng):
        if self.delay:
            time.sleep(self.delay)
        x = np.random.default_rng(sample).normal(size=8) + rng.normal(0, 0.1, 8)
        return {"x": torch.tensor(x, dtype=torch.float32)}


def kill_when_written(cmd: list[str], path: Path, timeout: float = 120.0) -> None:
    """Run `cmd` in its own session and SIGKILL it (and its loader workers) as soon as `path` exists."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not path.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, f"{path} not written within {timeout:.0f} s"
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()


def tiny_loss(network, batch):
    SEEN.append(batch["index"].tolist())
    err = network(batch["x"]) - batch["x"]
    return {"loss": err.square().mean(), "l1": err.abs().mean()}


class NanFromStep:
    """`loss`, NaN from the given step of this process on."""

    def __init__(self, step: int, loss=tiny_loss):
        self.step, self.loss, self.calls = step, loss, 0

    def __call__(self, network, batch):
        self.calls += 1
        out = self.loss(network, batch)
        return {**out, "loss": out["loss"] * float("nan")} if self.calls >= self.step else out


def tiny_config(epochs: int = 3, seed: int = 0) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=BATCH, optimizer="adamw", lr=0.01, weight_decay=0.01,
                       milestones=(0.5,), gamma=0.5, seed=seed)


def fit_tiny(workdir, epochs: int = 3, seed: int = 0, workers: int = 0, resume: bool = False, delay: float = 0.0,
             loss=tiny_loss, **options):
    """(trained TinyNet, TrainingResult)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = TinyNet()
    result = fit_network(net, TinyItems(seed, delay), loss, tiny_config(epochs, seed),
                         FitOptions(workdir=Path(workdir), resume=resume, loader_workers=workers, **options),
                         torch.device("cpu"))
    return net, result


if __name__ == "__main__":
    workdir, epochs, workers, delay = sys.argv[1:5]
    fit_tiny(workdir, int(epochs), workers=int(workers), delay=float(delay))
