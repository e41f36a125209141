"""IMRNet: masked point reconstruction repairs a cloud; where the repair differs from the input is anomalous.

Every cloud is normalized (mean-centred, unit RMS radius) and, with `align`, moved rigidly onto
the template cloud (the first training cloud; common/align.py), so that the class's clouds share
one pose whatever pose each scan came in.

Training (fine-tuning one class, from a pretrained backbone with `pretrained`: a folder written by
`anomalygen pretrain-detector --detector imrnet`, or `builtin`, the backbone shipped with the
package for the `imrnet-small` sizes): a random pool of a training cloud is thinned to `n_points`
by farthest-point sampling in the DataLoader worker; `groups` centres are chosen by geometry-aware
sampling (GPS, common/gps.py; `sampler: fps | random` for the ablation) and each takes its
`patch_points` nearest points; `mask_ratio` of the patches are masked and predicted by a Point-MAE
backbone (network.py); the loss is their Chamfer-L2 (loss.py).

Scoring (compare.py) runs `score_draws` independent draws (pool, thinning, centres by
`score_sampler`, masks; from `score_seed`) as one batch and averages their maps, so that a score
does not hinge on one draw. Per draw, Algorithm 1 reconstructs the patches `iterations` times
under masks that together cover every patch; the point score A_p of a centre is the Chamfer-L2
between the `compare_points` nearest points of the input cloud and the reconstructed points of
the same neighbourhood (Eqs. 13-15); the feature score A_f is the distance between decoder blocks
1..`feature_layers` features of input and reconstruction, the latter regularized by the template
(Eq. 19: a reconstruction feature farther than the threshold from the template's corresponding
vector, the template's feature at the same centre, is replaced by it). Each is spread to every
input point (inverse-distance mean over the `spread_k` nearest centres) and divided by its mean
over the training clouds, and the two are added (Eq. 20; `feature_weight` scales A_f). The object
score is the mean of the `top_fraction` highest point scores: a local defect dominates it, one
stray point does not.

The template (Eq. 19, "a single template") is the first training cloud, thinned to `n_points`; its
vector at a centre is the feature of its own points around that centre. The threshold is the
`template_quantile` quantile of the distances from the other training clouds' reconstruction
features to the template's vectors at their centres: 0.95 replaces the 5 % strays, 0 replaces
every reconstruction feature, so that A_f compares the input with the template (the default;
benchmarks/RESULTS.md compares it with 0.95). Template cloud, threshold and the two scales are fitted after training and
saved beside the weights (template.pt).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from anomalygen.errors import AnomalygenError, RecipeError
from anomalygen.detectors.stored import load_torch, save_torch
from anomalygen.detectors.common.align import rigid_align
from anomalygen.detectors.common.points import farthest_point_indices
from anomalygen.detectors.common.spread import spread_to_points
from anomalygen.detectors.imrnet.compare import (cover_masks, feature_scores, iterative_reconstruction, point_scores,
                                                 template_patches)
from anomalygen.detectors.imrnet.data import CloudItems
from anomalygen.detectors.imrnet.loss import masked_chamfer_loss
from anomalygen.detectors.imrnet.network import MaskedPointReconstructor
from anomalygen.detectors.imrnet.patches import CentrePlan, make_patches, thin, thin_points
from anomalygen.detectors.neural import NeuralDetector, Stage
from anomalygen.detectors.common.pools import draw_pool, normalize
from anomalygen.detectors.settings import bounded
from anomalygen.detectors.training.config import TrainConfig

TEMPLATE_FILE = "template.pt"
PRETRAINED_WEIGHTS = "model.pt"
BUILTIN = "builtin"  # imrnet.pretrained: the backbone shipped in the package (detectors/imrnet/pretrained/)
# settings that change only how a fitted model scores (IMRNetDetector.with_scoring)
SCORING_KEYS = ("score_sampler", "score_draws", "score_seed", "iterations", "compare_points", "feature_layers",
                "feature_weight", "template_quantile", "spread_k", "top_fraction")


def _finetune() -> TrainConfig:
    return TrainConfig(epochs=100, batch_size=8, optimizer="adamw", lr=1e-4, weight_decay=0.05)


def _pretrain() -> TrainConfig:
    return TrainConfig(epochs=300, batch_size=32, optimizer="adamw", lr=5e-4, weight_decay=0.05, milestones=(0.8, 0.9),
                       gamma=0.2)


@dataclass(frozen=True)
class PretrainSettings:
    """The `imrnet.pretrain` section: self-supervised pretraining on meshes of a shape source."""

    source: str | None = None
    shapes: int = bounded(400, 1, 10**7)
    rotate: bool = True
    scale: float = bounded(0.2, 0.0, 0.9)
    train: TrainConfig = field(default_factory=_pretrain)


@dataclass(frozen=True)
class IMRNetSettings:
    """The `imrnet:` recipe section (recipes/detectors.yaml documents each key)."""

    n_points: int = bounded(8192, 16, 10**6)
    groups: int = bounded(256, 2, 10**5)
    patch_points: int = bounded(64, 2, 4096)
    mask_ratio: float = bounded(0.4, 0.01, 0.95)
    sampler: Literal["gps", "fps", "random"] = "gps"
    score_sampler: Literal["gps", "fps", "random"] | None = None
    tau: float = bounded(0.3, 0.01, 0.99)
    salient_ratio: float = bounded(2.0, 0.1, 100.0)
    geometry_k: int = bounded(16, 3, 256)
    dim: int = bounded(384, 4, 8192)
    width: int = bounded(128, 2, 8192)
    depth: int = bounded(12, 1, 64)
    decoder_depth: int = bounded(4, 1, 64)
    heads: int = bounded(6, 1, 64)
    centre_jitter: float = bounded(0.0, 0.0, 10.0)
    repeat: int = bounded(16, 1, 10**6)
    align: bool = True
    align_points: int = bounded(512, 8, 10**5)
    iterations: int = bounded(3, 1, 100)
    compare_points: int = bounded(64, 2, 4096)
    feature_layers: int = bounded(3, 1, 64)
    feature_weight: float = bounded(1.0, 0.0, 1e6)
    template_quantile: float = bounded(0.0, 0.0, 1.0)
    spread_k: int = bounded(3, 1, 64)
    top_fraction: float = bounded(0.01, 1e-6, 1.0)
    score_draws: int = bounded(4, 1, 1000)
    score_seed: int = bounded(0, 0, 2**63 - 1)
    pretrained: str | None = None
    train: TrainConfig = field(default_factory=_finetune)
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)

    def validate(self, prefix: str) -> None:
        for key in ("groups", "patch_points", "compare_points"):
            if getattr(self, key) > self.n_points:
                raise RecipeError(f"{prefix}.{key} = {getattr(self, key)} exceeds {prefix}.n_points = {self.n_points}")
        if self.dim % self.heads:
            raise RecipeError(f"{prefix}.dim = {self.dim} is not a multiple of {prefix}.heads = {self.heads}")
        if self.feature_layers > self.decoder_depth:
            raise RecipeError(f"{prefix}.feature_layers = {self.feature_layers} exceeds "
                              f"{prefix}.decoder_depth = {self.decoder_depth}")
        if self.spread_k > self.groups:
            raise RecipeError(f"{prefix}.spread_k = {self.spread_k} exceeds {prefix}.groups = {self.groups}")

    @property
    def scoring_sampler(self) -> str:
        return self.score_sampler or self.sampler


class IMRNetDetector(NeuralDetector):
    name = "imrnet"
    kinds = ("points",)
    settings = IMRNetSettings

    def __init__(self, config: dict | None = None, device="auto"):
        super().__init__(config, device)
        self.template: dict | None = None
        self.reference: torch.Tensor | None = None  # the template cloud's pose: (align_points, 3)

    # -- the template pose ----------------------------------------------------------------
    def _alignment_points(self, cloud: np.ndarray) -> torch.Tensor:
        m = min(self.cfg.align_points, len(cloud))
        return torch.from_numpy(cloud[farthest_point_indices(cloud, m, start=0)])

    def canonical(self, points: np.ndarray) -> np.ndarray:
        """(N,3) float32: the cloud normalized and, with `align`, moved rigidly onto the template cloud."""
        normed = normalize(np.asarray(points, np.float32))
        if not self.cfg.align or self.reference is None:
            return normed
        rot, shift, _ = rigid_align(self._alignment_points(normed), self.reference)
        return (normed @ rot.numpy().T + shift.numpy()).astype(np.float32)

    # -- training hooks -----------------------------------------------------------------
    def build_network(self) -> MaskedPointReconstructor:
        c = self.cfg
        return MaskedPointReconstructor(c.patch_points, c.dim, c.width, c.depth, c.decoder_depth, c.heads)

    def training_items(self, data) -> CloudItems:
        clouds = [self.canonical(np.asarray(data[i].points, np.float32)) for i in range(len(data))]
        return CloudItems(clouds, self.cfg.n_points, self.centre_plan(), self.cfg.train.seed, self.cfg.repeat)

    def centre_plan(self) -> CentrePlan:
        c = self.cfg
        return CentrePlan(c.groups, c.sampler, c.tau, c.salient_ratio, c.geometry_k)

    def training_loss(self):
        c = self.cfg
        return functools.partial(masked_chamfer_loss, groups=c.groups, patch_points=c.patch_points,
                                 mask_ratio=c.mask_ratio, centre_jitter=c.centre_jitter)

    def training_stages(self, data) -> list[Stage]:
        if self.cfg.pretrained:
            load_pretrained(self.network, self.cfg.pretrained)
        return super().training_stages(data)

    def _fit(self, data, options) -> None:
        self.template = None
        self.reference = None
        if self.cfg.align:
            self.reference = self._alignment_points(normalize(np.asarray(data[0].points, np.float32)))
        super()._fit(data, options)
        self.template = self._fit_template([self.canonical(np.asarray(data[i].points, np.float32))
                                            for i in range(len(data))])

    # -- scoring ------------------------------------------------------------------------
    @torch.no_grad()
    def analyse(self, cloud: np.ndarray) -> dict[str, torch.Tensor]:
        """Everything scoring computes for one canonical cloud (N,3) over the `score_draws` draws D:
        the thinned `points` (D,n,3), `centres` (D,G,3), input and reconstructed `patches`/`recon`
        (D,G,k,3, relative to their centres), the per-centre scores `a_p`, `a_f` (D,G) and the
        features `f_in`, `f_out` (D,G,F; before regularization)."""
        c, dev = self.cfg, self.device
        self.network.eval()
        rng = np.random.default_rng(c.score_seed)
        pools = np.stack([draw_pool(cloud, c.n_points, rng) for _ in range(c.score_draws)])
        x = thin(torch.from_numpy(pools).to(dev), c.n_points)
        gen = torch.Generator().manual_seed(c.score_seed)
        centres, patches = make_patches(x, c.groups, c.patch_points, c.scoring_sampler, c.tau, c.salient_ratio,
                                        c.geometry_k, gen)
        masks = cover_masks(c.groups, c.iterations, c.mask_ratio, gen, batch=c.score_draws)
        recon = iterative_reconstruction(self.network, centres, patches, masks)
        a_p = point_scores(centres, x, (recon + centres.unsqueeze(2)).flatten(1, 2), c.compare_points)
        f_in = self.network.features(centres, patches, c.feature_layers)
        f_out = self.network.features(centres, recon, c.feature_layers)
        reference = None
        if self.template is not None:  # the template's vectors at these centres
            reference = self.network.features(centres, template_patches(centres, self.template["cloud"],
                                                                        c.patch_points), c.feature_layers)
            a_f = feature_scores(f_in, f_out, reference, self.template["threshold"])
        else:  # while the template itself is being fitted
            a_f = feature_scores(f_in, f_out)
        return {"points": x, "centres": centres, "patches": patches, "recon": recon, "a_p": a_p, "a_f": a_f,
                "f_in": f_in, "f_out": f_out, "reference": reference}

    def _maps(self, cloud: np.ndarray, res: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """A_p and A_f spread to every point of `cloud`, averaged over the draws."""
        k, pts = self.cfg.spread_k, torch.from_numpy(cloud).to(self.device)
        maps = [(spread_to_points(pts, res["centres"][d], res["a_p"][d], k),
                 spread_to_points(pts, res["centres"][d], res["a_f"][d], k)) for d in range(len(res["centres"]))]
        return torch.stack([m[0] for m in maps]).mean(0), torch.stack([m[1] for m in maps]).mean(0)

    def _score(self, sample) -> tuple[float, np.ndarray]:
        points = np.asarray(sample.points, np.float32)
        if len(points) == 0:
            return 0.0, np.zeros(0, np.float32)
        if self.template is None:
            raise AnomalygenError("imrnet: no training template; fit() or load() a complete model first")
        cloud = self.canonical(points)
        map_p, map_f = self._maps(cloud, self.analyse(cloud))
        t = self.template
        dense = map_p / t["scale_p"] + self.cfg.feature_weight * map_f / t["scale_f"]
        worst = dense.topk(max(1, round(self.cfg.top_fraction * len(dense)))).values
        return float(worst.mean()), dense.cpu().numpy()

    def _fit_template(self, clouds: list[np.ndarray]) -> dict:
        """The template cloud (the first canonical training cloud, thinned to n_points), the
        regularization threshold and the A_p / A_f scales, from the canonical training clouds."""
        c = self.cfg
        template = {"cloud": torch.from_numpy(thin_points(clouds[0], min(c.n_points, len(clouds[0])))),
                    "threshold": float("inf"), "scale_p": 1.0, "scale_f": 1.0}
        self.template = template
        dist = []
        for cloud in clouds[1:] or clouds[:1]:  # the other clouds: how far a normal reconstruction strays
            res = self.analyse(cloud)
            dist.append((res["f_out"] - res["reference"]).norm(dim=-1).flatten().cpu())
        template["threshold"] = float(torch.quantile(torch.cat(dist), c.template_quantile))
        maps = [self._maps(cloud, self.analyse(cloud)) for cloud in clouds]
        template["scale_p"] = max(float(torch.cat([m[0] for m in maps]).mean()), 1e-12)
        template["scale_f"] = max(float(torch.cat([m[1] for m in maps]).mean()), 1e-12)
        return template

    def with_scoring(self, train=None, **changes) -> "IMRNetDetector":
        """A copy of this fitted detector that scores with other scoring settings (SCORING_KEYS), the
        weights shared. With `train` (the training samples) the template and scales are fitted again
        under the new settings, as a fit with them would have; without, the template is kept."""
        unknown = sorted(set(changes) - set(SCORING_KEYS))
        if unknown:
            raise AnomalygenError(f"imrnet: {', '.join(unknown)} change the trained model, not only its scoring")
        config = {**self.config, **changes}
        other = type(self)(config, self.device)
        other.network, other.reference, other.kind, other.fitted = self.network, self.reference, self.kind, True
        other.training_info = self.training_info
        other.template = self.template
        if train is not None:
            other.template = None
            other.template = other._fit_template([other.canonical(np.asarray(s.points, np.float32)) for s in train])
        return other

    # -- save / load --------------------------------------------------------------------
    def _save_state(self, directory: Path) -> dict:
        state = super()._save_state(directory)
        save_torch({**self.template, "reference": self.reference}, directory / TEMPLATE_FILE)
        return {**state, "template": TEMPLATE_FILE}

    def _load_state(self, directory: Path, state: dict) -> None:
        super()._load_state(directory, state)
        path = directory / state.get("template", TEMPLATE_FILE)
        template = load_torch(path, "template file")
        if "cloud" not in template:
            raise AnomalygenError(f"{path}: a template without its cloud (written by an older anomalygen); "
                                  "train this model again")
        self.reference = template.pop("reference", None)
        self.template = template


def pretrained_folder(name: str | Path) -> Path:
    """The folder `imrnet.pretrained` names: `builtin` is the backbone shipped with the package."""
    if str(name) == BUILTIN:
        return Path(str(resources.files("anomalygen.detectors.imrnet") / "pretrained"))
    return Path(name)


def load_pretrained(network: torch.nn.Module, directory: str | Path) -> None:
    """Load the weights `anomalygen pretrain-detector` wrote to `directory` (or the builtin ones) into `network`."""
    folder = pretrained_folder(directory)
    path = folder / PRETRAINED_WEIGHTS
    if not path.is_file():
        raise AnomalygenError(f"imrnet.pretrained = {directory}: no {PRETRAINED_WEIGHTS} there "
                              f"(write one with `anomalygen pretrain-detector --detector imrnet`)")
    weights = load_torch(path, "pretrained weights file")
    try:
        network.load_state_dict(weights)
    except RuntimeError as exc:
        sizes = "the imrnet-small sizes (--recipe imrnet-small)" if str(directory) == BUILTIN else "the same imrnet sizes"
        raise AnomalygenError(f"imrnet.pretrained = {directory}: its network differs from these settings "
                              f"(use {sizes}): {str(exc).splitlines()[0]}") from None
