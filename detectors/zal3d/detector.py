"""3DzAL (Wang, Peng, Fu, WACV 2025): zero-shot 3D anomaly localization on organized clouds.

Train on the normal samples of one class, test on another. Fitting:
  1. every training sample is prepared as BTF does (xyz resized to `image_size`, background
     removed) and its FPFH pooled to the (image_size / patch_size)^2 cell grid (224 / 8 = 28);
  2. the points of interest of the task-irrelevant samples (the root's other classes, handed in
     by the engine as FitOptions.irrelevant) are found by an untrained ResNet-50 (anomalygen.pseudo);
  3. E_theta and C_w (PointNet++, network.py) are trained on normal patches and adding / removing
     pseudo-anomalous patches with w_con L_con + w_rd L_rd + w_bce L_bce (Eqs. 1-3, loss.py);
  4. the memory bank holds, per grid cell, FPFH (+ RGB when `rgb_weights` is given) + E_theta's
     feature, thinned by PatchCore's greedy coreset.
Scoring (Eqs. 4-12): S = w_d S_dist + w_c S_cls. S_dist: PatchCore's reweighted max distance
(b = `reweight_b` nearest bank features), its map the per-cell distance upsampled and blurred;
S_cls: the max over cells of C_w's anomaly probability on input-perturbed patches (Eq. 8, eta),
its map the same upsampling of the per-cell probabilities.

Two choices the paper leaves open, made here: E_theta outputs 33 values, FPFH's dimension, so
Eq. 2's cosine is defined (the paper's bank grows by 32); learned features enter the bank scaled
to unit length x the median FPFH norm of the training cells, and distances are divided by the
bank's median nearest-neighbour spacing, so that w_d and w_c weigh numbers of the same order.
RGB: ImageNet weights cannot be downloaded here, so the WideResNet-50 RGB branch (PatchCore's
layer2 + layer3 features) is used only when `rgb_weights` names a torchvision state-dict file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anomalygen.errors import AnomalygenError, RecipeError
from anomalygen.pseudo import ADDING, REMOVING, points_of_interest
from anomalygen.detectors.btf.detector import BackgroundSettings, ImageSettings
from anomalygen.detectors.btf.features import diagonal, image_features, prepare_xyz
from anomalygen.detectors.common.memory_bank import MemoryBank
from anomalygen.detectors.common.points import knn
from anomalygen.detectors.common.spread import scaled_sigma, spread_to_pixels
from anomalygen.detectors.data import iterate_samples
from anomalygen.detectors.neural import NeuralDetector
from anomalygen.detectors.progress import progress_bar
from anomalygen.detectors.settings import as_section, bounded
from anomalygen.detectors.stored import load_torch
from anomalygen.detectors.training.config import TrainConfig
from anomalygen.detectors.zal3d.data import Prepared, ZAL3DItems, cell_patches, normalize_patches
from anomalygen.detectors.zal3d.loss import zal3d_loss
from anomalygen.detectors.zal3d.network import ZAL3DNetworks, anomaly_probability, perturb

FEATURE_DIM = 33  # = FPFH's dimension (Eq. 2 compares the two)
BANK_FILE = "memory_bank.npy"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _default_training() -> TrainConfig:
    return TrainConfig(epochs=5, batch_size=8, optimizer="adam", lr=1e-3)


@dataclass(frozen=True)
class ZAL3DSettings:
    """The `zal3d:` recipe section (recipes/detectors.yaml documents each key and its source)."""

    image_size: int = bounded(224, 8, 4096)
    patch_size: int = bounded(8, 1, 512)
    patch_points: int = bounded(64, 4, 4096)
    width: int = bounded(32, 1, 1024)
    centers: int = bounded(16, 1, 1024)
    group: int = bounded(16, 1, 1024)
    positives: int = bounded(4, 1, 4096)
    negatives: int = bounded(16, 1, 4096)
    repeat: int = bounded(4, 1, 10**6)
    tau: float = bounded(0.001, 1e-6, 1.0)
    kinds: tuple[str, ...] = (ADDING, REMOVING)
    irrelevant_samples: int = bounded(8, 1, 10**6)
    cnn_seed: int = bounded(0, 0, 2**63 - 1)
    temperature: float = bounded(0.07, 1e-6, 100.0)
    w_con: float = bounded(1.0, 0.0, 1e6)
    w_rd: float = bounded(100.0, 0.0, 1e6)
    w_bce: float = bounded(1.0, 0.0, 1e6)
    learned_features: bool = True
    w_d: float = bounded(1.0, 0.0, 1e6)
    w_c: float = bounded(1.0, 0.0, 1e6)
    eta: float = bounded(0.1, 0.0, 100.0)
    reweight_b: int = bounded(3, 1, 1000)
    coreset_fraction: float = bounded(0.1, 1e-6, 1.0)
    projection_dim: int = bounded(128, 0, 100000)
    normal_radius: float = bounded(0.02, 1e-9, 10.0)
    feature_radius: float = bounded(0.05, 1e-9, 10.0)
    normal_max_nn: int = bounded(30, 1, 10**5)
    feature_max_nn: int = bounded(100, 1, 10**5)
    blur_sigma: float = bounded(4.0, 0.0, 100.0)
    remove_background: bool = True
    background: BackgroundSettings = field(default_factory=BackgroundSettings)
    rgb_weights: str | None = None
    train: TrainConfig = field(default_factory=_default_training)

    def validate(self, prefix: str) -> None:
        if self.image_size % self.patch_size:
            raise RecipeError(f"{prefix}.patch_size = {self.patch_size} must divide {prefix}.image_size = {self.image_size}")
        bad = [k for k in self.kinds if k not in (ADDING, REMOVING)]
        if bad or not self.kinds:
            raise RecipeError(f"{prefix}.kinds = {list(self.kinds)!r}: give one or both of {ADDING}, {REMOVING}")
        if self.positives * self.train.batch_size < 2:
            raise RecipeError(f"{prefix}.positives x {prefix}.train.batch_size must be at least 2 (Eq. 1 pairs normal patches)")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def image_settings(self) -> ImageSettings:
        """BTF's preprocessing and FPFH settings at this detector's cell grid."""
        return ImageSettings(coreset_fraction=self.coreset_fraction, image_size=self.image_size, feature_grid=self.grid,
                             normal_radius=self.normal_radius, feature_radius=self.feature_radius,
                             normal_max_nn=self.normal_max_nn, feature_max_nn=self.feature_max_nn,
                             blur_sigma=self.blur_sigma, remove_background=self.remove_background,
                             background=self.background)


class ZAL3DDetector(NeuralDetector):
    name = "zal3d"
    kinds = ("images",)
    settings = ZAL3DSettings
    uses_irrelevant = True

    def __init__(self, config: dict | None = None, device="auto"):
        super().__init__(config, device)
        self.scale = 1.0
        self.feature_scale = 1.0
        self.dist_unit = 1.0
        self.bank: MemoryBank | None = None
        self._rgb_net = None
        self._prepared: list[Prepared] = []
        self._interest: list[np.ndarray] = []

    # -- what the bank holds -------------------------------------------------------------
    @property
    def branches(self) -> str:
        parts = ["FPFH"] + (["RGB (WideResNet-50)"] if self.cfg.rgb_weights else []) + \
                (["learned 3D (E_theta)"] if self.cfg.learned_features else [])
        return " + ".join(parts)

    def description(self) -> str:
        return (f"memory bank: {self.branches}; score: {self.cfg.w_d} x distance + {self.cfg.w_c} x normalcy "
                f"classifier (input perturbation eta = {self.cfg.eta})")

    # -- training hooks ------------------------------------------------------------------
    def build_network(self) -> ZAL3DNetworks:
        c = self.cfg
        return ZAL3DNetworks(FEATURE_DIM, c.width, c.centers, c.group)

    def training_items(self, data) -> ZAL3DItems:
        return ZAL3DItems(self._prepared, self._interest, self.cfg, self.cfg.repeat)

    def training_loss(self):
        return zal3d_loss

    def _prepare(self, xyz: np.ndarray) -> np.ndarray:
        return prepare_xyz(xyz, self.cfg.image_settings(), self.cfg.train.seed)

    def _fit(self, data, options) -> None:
        c = self.cfg
        bar = progress_bar(options.progress)
        if ADDING in c.kinds and not options.irrelevant:
            raise AnomalygenError("zal3d builds adding pseudo anomalies from task-irrelevant data: the dataset "
                                  "needs at least one class besides the training and test classes "
                                  f"(or set {self.name}.kinds=[removing])")
        grids, rgbs = [], []
        for s in bar(iterate_samples(data, options.loader_workers, self.kind), desc="prepare", total=len(data)):
            grids.append(self._prepare(s.xyz))
            rgbs.append(s.rgb if c.rgb_weights else None)
        self.scale = float(np.median([diagonal(x[np.any(x != 0, axis=-1)]) for x in grids])) or 1.0
        settings = c.image_settings()
        self._prepared = [Prepared(x, image_features(x, settings, self.scale).numpy(), c.patch_size, rgb)
                          for x, rgb in zip(bar(grids, desc="FPFH"), rgbs)]
        self._interest = []
        if ADDING in c.kinds:
            aux = [self._prepare(r.load().xyz)
                   for r in bar(_spread_pick(options.irrelevant, c.irrelevant_samples), desc="task-irrelevant")]
            if aux:  # one batch through the random CNN
                masks, _ = points_of_interest(np.stack(aux), c.tau, c.cnn_seed, self.device)
                self._interest = [x[m & np.any(x != 0, axis=-1)] for x, m in zip(aux, masks)]
        super()._fit(data, options)
        self.training_info["branches"] = self.branches
        fpfh_norm = np.linalg.norm(np.concatenate([p.fpfh for p in self._prepared]), axis=1)
        self.feature_scale = float(np.median(fpfh_norm[fpfh_norm > 0])) if (fpfh_norm > 0).any() else 1.0
        feats = torch.cat([self._cell_features(p.xyz, p.fpfh, p.rgb) for p in bar(self._prepared, desc="memory bank")])
        self.bank = MemoryBank.fit(feats.to(self.device), c.coreset_fraction, c.projection_dim, c.train.seed,
                                   c.reweight_b)
        self.dist_unit = _spacing(self.bank)
        self._prepared, self._interest = [], []

    # -- features and scores -------------------------------------------------------------
    def _learned(self, xyz: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """(normalized cell patches (C,K,3), their learned features (C,33) scaled, cell ids (C,))."""
        raw, ids = cell_patches(xyz, self.cfg.patch_size, self.cfg.patch_points)
        patches = torch.from_numpy(normalize_patches(raw) if len(raw) else raw).to(self.device)
        if len(ids) == 0:
            return patches, torch.zeros(0, FEATURE_DIM, device=self.device), ids
        f = F.normalize(self.network.features(patches).float(), dim=-1) * self.feature_scale  # float32 under autocast
        return patches, f, ids

    def _cell_features(self, xyz: np.ndarray, fpfh, rgb) -> torch.Tensor:
        """(G*G, D) bank features of a prepared grid: FPFH | RGB | learned (empty cells: 0)."""
        g = self.cfg.grid
        parts = [torch.as_tensor(fpfh, dtype=torch.float32, device=self.device)]
        if self.cfg.rgb_weights:
            parts.append(self._rgb_features(rgb))
        if self.cfg.learned_features:
            with torch.no_grad():
                _, f, ids = self._learned(xyz)
            full = torch.zeros(g * g, FEATURE_DIM, device=self.device)
            full[torch.as_tensor(ids, device=self.device)] = f
            parts.append(full)
        return torch.cat(parts, dim=1)

    def _rgb_features(self, rgb) -> torch.Tensor:
        """PatchCore's WideResNet-50 layer2 + layer3 features (3x3 mean, layer3 upsampled), pooled to the grid."""
        g = self.cfg.grid
        if rgb is None:
            raise AnomalygenError("zal3d.rgb_weights is set but a sample has no RGB image")
        net = self._rgb_network()
        img = torch.as_tensor(np.array(rgb, np.float32), device=self.device)
        img = (img[..., None].expand(*img.shape, 3) if img.dim() == 2 else img[..., :3]).permute(2, 0, 1)[None]
        img = img / (255.0 if img.max() > 1.5 else 1.0)
        img = F.interpolate(img, size=(self.cfg.image_size,) * 2, mode="bilinear", align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        with torch.no_grad():
            _, l2, l3 = net((img - mean) / std, depth=3)
        l2, l3 = F.avg_pool2d(l2, 3, 1, 1), F.avg_pool2d(l3, 3, 1, 1)
        f = torch.cat([l2, F.interpolate(l3, size=l2.shape[-2:], mode="bilinear", align_corners=False)], dim=1)
        f = F.adaptive_avg_pool2d(f, (g, g))[0]
        return f.permute(1, 2, 0).reshape(g * g, -1)

    def _rgb_network(self):
        if self._rgb_net is None:
            from anomalygen.pseudo.resnet import resnet50

            path = Path(self.cfg.rgb_weights).expanduser()
            if not path.is_file():
                raise AnomalygenError(f"zal3d.rgb_weights: {path} is not a file (a torchvision wide_resnet50_2 state dict)")
            net = resnet50(width=128)
            try:
                net.load_state_dict(load_torch(path, "zal3d.rgb_weights file"))
            except (RuntimeError, KeyError, ValueError) as exc:
                raise AnomalygenError(f"zal3d.rgb_weights: {path} is not a wide_resnet50_2 state dict "
                                      f"({str(exc).splitlines()[0]})") from None
            self._rgb_net = net.to(self.device).eval()
        return self._rgb_net

    def _score(self, sample) -> tuple[float, np.ndarray]:
        c = self.cfg
        g = c.grid
        xyz = self._prepare(sample.xyz)
        fpfh = image_features(xyz, c.image_settings(), self.scale)
        feats = self._cell_features(xyz, fpfh, getattr(sample, "rgb", None))
        raw_dist, nn_idx = self.bank.patch_scores(feats)
        dist = raw_dist / self.dist_unit
        s_dist = self.bank.object_score(feats, raw_dist, nn_idx) / self.dist_unit
        size = tuple(sample.xyz.shape[:2])
        sigma = scaled_sigma(c.blur_sigma, size)
        amap = c.w_d * spread_to_pixels(dist.reshape(g, g), size, sigma)
        score = c.w_d * s_dist
        if c.w_c > 0:
            raw, ids = cell_patches(xyz, c.patch_size, c.patch_points)
            probs = torch.zeros(g * g, device=self.device)
            if len(ids):
                patches = torch.from_numpy(normalize_patches(raw)).to(self.device)
                perturbed = perturb(self.network.classifier, patches, c.eta)
                probs[torch.as_tensor(ids, device=self.device)] = anomaly_probability(self.network.classifier,
                                                                                      perturbed).float()
            amap = amap + c.w_c * spread_to_pixels(probs.reshape(g, g), size, sigma)
            score += c.w_c * float(probs.max())
        return float(score), amap.cpu().numpy()

    # -- save / load ---------------------------------------------------------------------
    def _save_state(self, directory: Path) -> dict:
        state = super()._save_state(directory)
        self.bank.save(directory / BANK_FILE)
        return {**state, "bank": BANK_FILE, "bank_size": len(self.bank), "scale": self.scale,
                "feature_scale": self.feature_scale, "dist_unit": self.dist_unit, "branches": self.branches}

    def _load_state(self, directory: Path, state: dict) -> None:
        super()._load_state(directory, state)
        self.bank = MemoryBank.load(directory / state.get("bank", BANK_FILE), self.cfg.reweight_b, self.device)
        self.scale, self.feature_scale = float(state["scale"]), float(state["feature_scale"])
        self.dist_unit = float(state["dist_unit"])


def _spread_pick(refs: list, n_per_class: int) -> list:
    """Up to n evenly spread training samples of each task-irrelevant class (deterministic)."""
    by_class: dict[str, list] = {}
    for r in refs:
        by_class.setdefault(r.cls, []).append(r)
    out = []
    for cls in sorted(by_class):
        rs = by_class[cls]
        idx = np.unique(np.linspace(0, len(rs) - 1, min(n_per_class, len(rs))).round().astype(int))
        out += [rs[i] for i in idx]
    return out


def _spacing(bank: MemoryBank) -> float:
    """Median distance from a bank feature to its nearest other bank feature: the distance unit."""
    if len(bank) < 2:
        return 1.0
    d, _ = knn(bank.features, bank.features, 2)
    v = float(d[:, 1].median())
    return v if v > 0 and math.isfinite(v) else 1.0
