"""DAS3D (Li et al., ECCV 2024): reconstruction nets + dual-modal discriminator trained on synthesized defects.

Training: each normal training scan (MVTec 3D-AD layout: organized xyz + rgb) is prepared
as in the paper's Section 4.1 (resize to `size`, RANSAC background plane removed, removed
depth := the largest remaining depth, removed rgb := 0, both scaled to (0, 1)); every
epoch draws a fresh anomalous pair from it with anomalygen.depth's DAS3D synthesis
(Eq. 1-8) and augmentation dropout (Eq. 12), or leaves it normal (`normal_fraction`);
F_Z and F_I learn to reconstruct the normal depth and rgb, D learns M~* from their fused
features (network.py), with the loss of Eq. 13 (loss.py), in the shared Lightning loop.

Scoring: one forward pass; the anomaly map is D's softmax "anomalous" channel, upsampled
to the sample's size; the object score is the max of the map average-pooled over
`score_pool` x `score_pool` pixels (DRAEM). `modalities` picks RGB+3D (both nets), 3D
only (F_Z) or RGB only (F_I), as in the paper's Tables 1-2; a single-modality detector
trains without augmentation dropout (Eq. 12 needs both modalities).

Everything runs without open3d: the background plane is a numpy RANSAC (anomalygen.scans).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from anomalygen.builds.settings import background_config
from anomalygen.errors import RecipeError
from anomalygen.recipes import load_recipe
from anomalygen.detectors.das3d.data import DAS3DDataset, depth_range, depth_tensor, image_tensor, prepare
from anomalygen.detectors.das3d.loss import das3d_loss
from anomalygen.detectors.das3d.network import DAS3DNetwork, upsample
from anomalygen.detectors.neural import NeuralDetector
from anomalygen.detectors.settings import bounded
from anomalygen.detectors.training.config import TrainConfig


def _default_training() -> TrainConfig:
    # DRAEM's optimization (DAS3D does not state its own): Adam, lr 1e-4, x0.2 at 80 % and 90 %, batch 8
    return TrainConfig(epochs=100, batch_size=8, optimizer="adam", lr=1e-4, milestones=(0.8, 0.9), gamma=0.2)


@dataclass(frozen=True)
class DAS3DSettings:
    """The `das3d:` recipe section (recipes/detectors.yaml documents each key and its source)."""

    modalities: Literal["rgb+3d", "3d", "rgb"] = "rgb+3d"
    size: int = bounded(256, 8, 4096)
    width: int = bounded(128, 1, 4096)
    depth: int = bounded(4, 2, 8)
    disc_width: int = bounded(64, 1, 4096)
    disc_depth: int = bounded(5, 1, 8)
    synthesis: str = "das3d"
    foreground: Literal["plane", "plane+dbscan"] = "plane"
    normal_fraction: float = bounded(0.5, 0.0, 1.0)
    repeat: int = bounded(16, 1, 10**6)
    score_pool: int = bounded(21, 1, 1023)
    train: TrainConfig = field(default_factory=_default_training)

    def validate(self, prefix: str) -> None:
        levels = 2 ** max(self.depth, self.disc_depth)
        if self.size % levels:
            raise RecipeError(f"{prefix}.size = {self.size} must be divisible by 2**max(depth, disc_depth) = {levels}")
        if self.score_pool % 2 == 0:
            raise RecipeError(f"{prefix}.score_pool = {self.score_pool} must be odd (a centered window)")


class DAS3DDetector(NeuralDetector):
    name = "das3d"
    kinds = ("images",)
    settings = DAS3DSettings

    def __init__(self, config: dict | None = None, device="auto"):
        super().__init__(config, device)
        self.synthesis = load_recipe(self.cfg.synthesis)
        self.background = background_config(self.synthesis)

    # -- training hooks -----------------------------------------------------------------
    def build_network(self) -> DAS3DNetwork:
        c = self.cfg
        return DAS3DNetwork(c.modalities, c.width, c.depth, c.disc_width, c.disc_depth)

    def training_items(self, data) -> DAS3DDataset:
        c = self.cfg
        return DAS3DDataset(data, size=c.size, recipe=self.synthesis, seed=c.train.seed,
                            dropout=c.modalities == "rgb+3d", foreground=c.foreground,
                            normal_fraction=c.normal_fraction, repeat=c.repeat)

    def training_loss(self):
        return das3d_loss

    # -- scoring ------------------------------------------------------------------------
    def inputs(self, sample) -> tuple[torch.Tensor, torch.Tensor]:
        """(rgb (1,3,S,S), depth (1,1,S,S)) network inputs of a sample, prepared as the training pairs."""
        c = self.cfg
        xyz, rgb, fg = prepare(sample, c.size, self.background, c.foreground)
        if not fg.any():  # nothing left off the plane: score the scan as it is
            fg = np.any(xyz != 0, axis=-1) if np.any(xyz != 0) else np.ones(xyz.shape[:2], bool)
        lo, hi = depth_range(xyz[..., 2], fg)
        return image_tensor(rgb, fg)[None].to(self.device), depth_tensor(xyz[..., 2], fg, lo, hi)[None].to(self.device)

    def anomaly_map(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """(B,1,S,S) probability that each pixel is anomalous: D's softmax, channel 1."""
        return torch.softmax(self.network(rgb, depth)["logits"].float(), dim=1)[:, 1:]  # float32 under autocast too

    def _score(self, sample) -> tuple[float, np.ndarray]:
        prob = self.anomaly_map(*self.inputs(sample))
        k = self.cfg.score_pool
        score = F.avg_pool2d(prob, k, stride=1, padding=k // 2).max()  # DRAEM: zero padding counted
        amap = upsample(prob, tuple(np.asarray(sample.xyz).shape[:2]))[0, 0]
        return float(score), amap.cpu().numpy()

    def time_forward(self, repeats: int = 20, warmup: int = 3) -> float:
        """Milliseconds per forward pass of the network alone, batch 1 at `size`, after `warmup` passes."""
        s = self.cfg.size
        rgb = torch.rand(1, 3, s, s, device=self.device)
        depth = torch.rand(1, 1, s, s, device=self.device)
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        with torch.no_grad():
            for _ in range(warmup):
                self.anomaly_map(rgb, depth)
            sync()
            t = time.perf_counter()
            for _ in range(repeats):
                self.anomaly_map(rgb, depth)
            sync()
        return 1000.0 * (time.perf_counter() - t) / repeats
