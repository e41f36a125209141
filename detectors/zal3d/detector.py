"""3DzAL (Wang, Peng, Fu, WACV 2025): zero-shot 3D anomaly localization on organized clouds.

Train on the normal samples of one class, test on another. Fitting:
  1. every training sample is prepared as BTF does (xyz resized to `image_size`, background
     removed) and its FPFH pooled to the (image_size / patch_size)^2 cell grid (224 / 8 = 28);
  2. the points of interest of the task-irrelevant samples (the root's other classes, handed in
     by the engine as FitOptions.irrelevant) are found by an untrained ResNet-50 (anomalygen.pseudo);
  3. E_theta and C_w (PointNet++, network.py) are trained on normal patches and adding / removing
     pseudo-anomalous patches with w_con L_con + w_rd L_rd + w_bce L_bce (Eqs. 1-3, loss.py), an
     epoch covering every cell of every training scan (data.py); BatchNorm statistics are then
     re-estimated over training batches (network.precise_batchnorm);
  4. the memory bank holds, per grid cell, FPFH (+ RGB when `rgb_weights` is given) + E_theta's
     feature, thinned by PatchCore's greedy coreset.
Scoring (Eqs. 4-12): S = w_d S_dist + w_c S_cls. S_dist: PatchCore's reweighted max distance
(b = `reweight_b` nearest bank features), its map the per-cell distance upsampled and blurred;
S_cls: the max over cells of C_w's anomaly probability on input-perturbed patches (Eq. 8, eta),
its map the same upsampling of the per-cell probabilities.

Equal inputs with BTF: the same preprocessing (anomalygen.detectors.btf.features) and the same FPFH
rule (anomalygen.detectors.common.fpfh: radii in point spacings of the training scans).
Choices the paper leaves open, made here: E_theta outputs 33 values, FPFH's dimension, so Eq. 2's
cosine is defined (the paper's bank grows by 32); learned features enter the bank scaled to unit
length x the median FPFH norm of the training cells x `learned_weight`, and distances are divided by
the bank's median nearest-neighbour spacing, so that w_d and w_c weigh numbers of the same order
(zal3d-small's values and Eq. 2's form were measured on classes outside the reported square:
benchmarks/zal3d.py, recipes/zal3d-small.yaml).
Adding patches take their clusters from every task-irrelevant training scan.
RGB: ImageNet weights cannot be downloaded here, so the WideResNet-50 RGB branch (PatchCore's
layer2 + layer3 features) is used only when `rgb_weights` names a torchvision state-dict file.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from anomalygen.errors import AnomalygenError, RecipeError
from anomalygen.pseudo import ADDING, REMOVING, points_of_interest
from anomalygen.pseudo.interest import BATCH as CNN_BATCH
from anomalygen.detectors.btf.detector import BackgroundSettings, ImageSettings
from anomalygen.detectors.btf.features import image_features, prepare_xyz
from anomalygen.detectors.common.fpfh import FPFHSettings, saved_spacing, training_spacing
from anomalygen.detectors.common.memory_bank import MemoryBank
from anomalygen.detectors.common.points import knn
from anomalygen.detectors.common.spread import scaled_sigma, spread_to_pixels
from anomalygen.detectors.data import SampleDataset, iterate_samples
from anomalygen.detectors.base import FitOptions
from anomalygen.detectors.neural import NeuralDetector
from anomalygen.detectors.progress import progress_bar
from anomalygen.detectors.settings import as_section, bounded
from anomalygen.detectors.stored import load_torch
from anomalygen.detectors.training.config import TrainConfig
from anomalygen.detectors.zal3d.data import ItemSettings, Prepared, ZAL3DItems, cell_patches, normalize_patches
from anomalygen.detectors.zal3d.loss import LossTerms
from anomalygen.detectors.zal3d.network import ZAL3DNetworks, anomaly_probability, perturb, precise_batchnorm

FEATURE_DIM = 33  # = FPFH's dimension (Eq. 2 compares the two)
PRECISE_BN_BATCHES = 16  # training batches that set BatchNorm's statistics once training ends
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
    positives: int = bounded(8, 1, 4096)
    negatives: int = bounded(16, 1, 4096)
    tau: float = bounded(0.001, 1e-6, 1.0)
    kinds: tuple[str, ...] = (ADDING, REMOVING)
    attach: Literal["inserted", "lifted"] = "inserted"
    cnn_seed: int = bounded(0, 0, 2**63 - 1)
    temperature: float = bounded(0.07, 1e-6, 100.0)
    w_con: float = bounded(1.0, 0.0, 1e6)
    w_rd: float = bounded(100.0, 0.0, 1e6)
    rd_form: Literal["signed", "absolute", "squared"] = "signed"
    w_bce: float = bounded(1.0, 0.0, 1e6)
    balance_classes: bool = True
    learned_features: bool = True
    learned_weight: float = bounded(1.0, 0.0, 1e6)
    w_d: float = bounded(1.0, 0.0, 1e6)
    w_c: float = bounded(1.0, 0.0, 1e6)
    eta: float = bounded(0.1, 0.0, 100.0)
    reweight_b: int = bounded(3, 1, 1000)
    coreset_fraction: float = bounded(0.1, 1e-6, 1.0)
    projection_dim: int = bounded(128, 0, 100000)
    fpfh: FPFHSettings = field(default_factory=FPFHSettings)
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
        """BTF's preprocessing at this detector's size."""
        return ImageSettings(image_size=self.image_size, remove_background=self.remove_background,
                             background=self.background)

    def loss_terms(self) -> LossTerms:
        return LossTerms(self.w_con, self.w_rd, self.w_bce, self.temperature, self.rd_form, self.balance_classes)


class ZAL3DDetector(NeuralDetector):
    name = "zal3d"
    kinds = ("images",)
    settings = ZAL3DSettings
    uses_irrelevant = True

    def __init__(self, config: dict | None = None, device="auto"):
        super().__init__(config, device)
        self.spacing = 1.0
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
        c = self.cfg
        return ZAL3DItems(self._prepared, self._interest,
                          ItemSettings(c.positives, c.negatives, c.patch_points, tuple(c.kinds), c.train.seed,
                                       c.attach))

    def training_loss(self):
        return self.cfg.loss_terms()

    def _prepare(self, xyz: np.ndarray) -> np.ndarray:
        return prepare_xyz(xyz, self.cfg.image_settings(), self.cfg.train.seed)

    def _fit(self, data, options) -> None:
        c = self.cfg
        bar = progress_bar(options.progress)
        if ADDING in c.kinds and not options.irrelevant:
            raise AnomalygenError("zal3d builds adding pseudo anomalies from task-irrelevant data: the dataset "
                                  "needs at least one class besides the training and test classes "
                                  f"(or set {self.name}.kinds=[removing])")
        grids, rgbs = self._read_training(data, options)
        self.spacing = training_spacing(x[np.any(x != 0, axis=-1)] for x in grids)
        self._prepared = [Prepared(x, self._fpfh(x).numpy(), c.patch_size, rgb)
                          for x, rgb in zip(bar(grids, desc="FPFH"), rgbs)]
        self._interest = self._points_of_interest(options.irrelevant, bar) if ADDING in c.kinds else []
        super()._fit(data, options)
        self._precise_batchnorm()
        self.training_info["branches"] = self.branches
        fpfh_norm = np.linalg.norm(np.concatenate([p.fpfh for p in self._prepared]), axis=1)
        self.feature_scale = float(np.median(fpfh_norm[fpfh_norm > 0])) if (fpfh_norm > 0).any() else 1.0
        self.fit_bank([self.cells(p.xyz, p.rgb, fpfh=p.fpfh) for p in bar(self._prepared, desc="memory bank")])
        self._prepared, self._interest = [], []

    def _read_training(self, data, options) -> tuple[list[np.ndarray], list]:
        """The prepared grids of the training samples and their RGB images (None without the RGB branch)."""
        bar = progress_bar(options.progress)
        grids, rgbs = [], []
        for s in bar(iterate_samples(data, options.loader_workers, self.kind), desc="prepare", total=len(data)):
            grids.append(self._prepare(s.xyz))
            rgbs.append(s.rgb if self.cfg.rgb_weights else None)
        return grids, rgbs

    def training_cells(self, data, options: FitOptions | None = None) -> list[Cells]:
        """`cells` of every training sample (what `fit_bank` builds a bank from)."""
        options = options or FitOptions()
        grids, rgbs = self._read_training(SampleDataset(data), options)
        return [self.cells(x, rgb) for x, rgb in zip(grids, rgbs)]

    def fit_bank(self, training: list[Cells]) -> None:
        """The memory bank from the training samples' cells with the current settings (`learned_features`,
        `learned_weight`): the Table 3 baseline or another weight, networks and FPFH spacing unchanged."""
        c = self.cfg
        feats = torch.cat([self.bank_features(t) for t in training])
        self.bank = MemoryBank.fit(feats.to(self.device), c.coreset_fraction, c.projection_dim, c.train.seed,
                                   c.reweight_b)
        self.dist_unit = _spacing(self.bank)

    def _precise_batchnorm(self, batches: int = PRECISE_BN_BATCHES) -> None:
        """BatchNorm statistics of the trained networks over training batches drawn after the last epoch
        (network.precise_batchnorm), on the device the networks are on."""
        items, c = self.training_items(None), self.cfg
        device = next(self.network.parameters()).device

        def patches():
            keys = iter(range(len(items)))
            for _ in range(min(batches, max(1, len(items) // c.train.batch_size))):
                got = [items[(c.train.epochs, i)] for i in itertools.islice(keys, c.train.batch_size)]
                yield torch.cat([torch.cat([g["pos"], g["neg"]]) for g in got]).to(device)

        precise_batchnorm(self.network, patches())

    def _points_of_interest(self, refs, bar) -> list[np.ndarray]:
        """The random CNN's points of interest of every task-irrelevant training scan, one (M,3) array each
        (scans prepared and run through the network a batch at a time; only their points are kept)."""
        out = []
        refs = list(refs)
        for start in bar(range(0, len(refs), CNN_BATCH), desc="task-irrelevant", total=math.ceil(len(refs) / CNN_BATCH)):
            aux = np.stack([self._prepare(r.load().xyz) for r in refs[start:start + CNN_BATCH]])
            masks, _ = points_of_interest(aux, self.cfg.tau, self.cfg.cnn_seed, self.device)
            out += [x[m & np.any(x != 0, axis=-1)] for x, m in zip(aux, masks)]
        return [p for p in out if len(p)]

    def _fpfh(self, xyz: np.ndarray) -> torch.Tensor:
        return image_features(xyz, self.cfg.grid, self.cfg.fpfh, self.spacing)

    # -- features and scores -------------------------------------------------------------
    @torch.no_grad()
    def cells(self, xyz: np.ndarray, rgb=None, etas: tuple[float, ...] = (), fpfh=None) -> Cells:
        """The per-cell parts of a prepared grid that scoring weighs (see `Cells`); fpfh: its FPFH when known."""
        c, g = self.cfg, self.cfg.grid
        fpfh = torch.as_tensor(self._fpfh(xyz) if fpfh is None else fpfh, dtype=torch.float32, device=self.device)
        raw, ids = cell_patches(xyz, c.patch_size, c.patch_points)
        index = torch.as_tensor(ids, device=self.device)
        patches = torch.from_numpy(normalize_patches(raw)).to(self.device) if len(ids) else None
        learned = torch.zeros(g * g, FEATURE_DIM, device=self.device)
        if patches is not None:
            learned[index] = F.normalize(self.network.features(patches).float(), dim=-1)  # float32 under autocast
        probs = {}
        for eta in etas:
            probs[eta] = torch.zeros(g * g, device=self.device)
            if patches is not None:
                with torch.enable_grad():
                    perturbed = perturb(self.network.classifier, patches, eta)
                probs[eta][index] = anomaly_probability(self.network.classifier, perturbed).float()
        return Cells(fpfh, self._rgb_features(rgb) if c.rgb_weights else None, learned, probs)

    def bank_features(self, cells: Cells) -> torch.Tensor:
        """(G*G, D) memory-bank features of a grid: FPFH | RGB | learned x median FPFH norm x learned_weight."""
        parts = [cells.fpfh] + ([cells.rgb] if cells.rgb is not None else [])
        if self.cfg.learned_features:
            parts.append(cells.learned * (self.feature_scale * self.cfg.learned_weight))
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

    def score_parts(self, sample, perturbations: tuple[float, ...] | None = None) -> dict:
        """The two scores of Eqs. 11-12 before they are weighed: "dist" (S_dist, its map), and per
        perturbation magnitude eta (default: the settings' eta) "cls" {eta: (S_cls, its map)} when the
        classifier is used (w_c > 0) or etas are asked for. Maps are (H,W) at the sample's size."""
        c = self.cfg
        etas = perturbations if perturbations is not None else ((c.eta,) if c.w_c > 0 else ())
        cells = self.cells(self._prepare(sample.xyz), getattr(sample, "rgb", None), tuple(etas))
        return self.weigh(cells, tuple(sample.xyz.shape[:2]))

    def weigh(self, cells: Cells, size: tuple[int, int]) -> dict:
        """`score_parts` of a grid's cells, with maps of `size` (the bank's current features decide S_dist)."""
        g = self.cfg.grid
        sigma = scaled_sigma(self.cfg.blur_sigma, size)
        spread = lambda v: spread_to_pixels(v.reshape(g, g), size, sigma).cpu().numpy()  # noqa: E731
        feats = self.bank_features(cells)
        raw_dist, nn_idx = self.bank.patch_scores(feats)
        parts = {"dist": (self.bank.object_score(feats, raw_dist, nn_idx) / self.dist_unit,
                          spread(raw_dist / self.dist_unit))}
        if cells.probs:
            parts["cls"] = {eta: (float(p.max()), spread(p)) for eta, p in cells.probs.items()}
        return parts

    def _score(self, sample) -> tuple[float, np.ndarray]:
        c = self.cfg
        parts = self.score_parts(sample)
        score, amap = c.w_d * parts["dist"][0], c.w_d * parts["dist"][1]
        if c.w_c > 0:
            s_cls, m_cls = parts["cls"][c.eta]
            score, amap = score + c.w_c * s_cls, amap + c.w_c * m_cls
        return float(score), amap

    # -- save / load ---------------------------------------------------------------------
    def _save_state(self, directory: Path) -> dict:
        state = super()._save_state(directory)
        self.bank.save(directory / BANK_FILE)
        return {**state, "bank": BANK_FILE, "bank_size": len(self.bank), "spacing": self.spacing,
                "feature_scale": self.feature_scale, "dist_unit": self.dist_unit, "branches": self.branches}

    def _load_state(self, directory: Path, state: dict) -> None:
        super()._load_state(directory, state)
        self.bank = MemoryBank.load(directory / state.get("bank", BANK_FILE), self.cfg.reweight_b, self.device)
        self.spacing, self.feature_scale = saved_spacing(state, directory), float(state["feature_scale"])
        self.dist_unit = float(state["dist_unit"])


@dataclass
class Cells:
    """What scoring weighs, per grid cell (G*G rows, empty cells zero): FPFH (33), the RGB branch's features
    (None without it), E_theta's unit-length feature (33), and per perturbation magnitude eta C_w's anomaly
    probability of the perturbed patch. Weights (learned_weight, w_d, w_c) are applied after, so one
    computation serves every weighting (benchmarks/zal3d.py measures them)."""

    fpfh: torch.Tensor
    rgb: torch.Tensor | None
    learned: torch.Tensor
    probs: dict[float, torch.Tensor]


def _spacing(bank: MemoryBank) -> float:
    """Median distance from a bank feature to its nearest other bank feature: the distance unit."""
    if len(bank) < 2:
        return 1.0
    d, _ = knn(bank.features, bank.features, 2)
    v = float(d[:, 1].median())
    return v if v > 0 and math.isfinite(v) else 1.0
