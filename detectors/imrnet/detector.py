"""IMRNet: masked point reconstruction repairs a cloud; where the repair differs from the input is anomalous.

Training (fine-tuning one class, optionally from a pretrained checkpoint: `pretrained`, written by
`anomalygen pretrain-detector --detector imrnet`): a normalized cloud (mean-centred, unit RMS
radius) is thinned to `n_points`; `groups` centres are chosen by geometry-aware sampling (GPS,
common/gps.py; `sampler: fps | random` for the ablation) and each takes its `patch_points`
nearest points; `mask_ratio` of the patches are masked and predicted by a Point-MAE backbone
(network.py); the loss is their Chamfer-L2 (loss.py).

Scoring (compare.py): Algorithm 1 reconstructs the patches `iterations` times under masks that
together cover every patch; the point score A_p of a centre is the Chamfer-L2 between the
`compare_points` nearest input and reconstructed points (Eqs. 13-15); the feature score A_f is
the distance between decoder blocks 1..`feature_layers` features of input and reconstruction,
the latter regularized by the training template (Eq. 19). Each is spread to every input point
(inverse-distance mean over the `spread_k` nearest centres) and divided by its mean over the
training clouds, and the two are added (Eq. 20; `feature_weight` scales A_f). The object score
is the mean of the `top_fraction` highest point scores: a local defect dominates it, one stray
point does not.

The template (Eq. 19) is the features of the first `template_clouds` training clouds; the
threshold is the `template_quantile` quantile of the distances from the training clouds'
reconstruction features to their nearest template feature. Template, threshold and the two
scales are fitted after training and saved beside the weights (template.pt).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from anomalygen.errors import AnomalygenError, RecipeError
from anomalygen.detectors.stored import load_torch, save_torch
from anomalygen.detectors.common.points import knn
from anomalygen.detectors.common.spread import spread_to_points
from anomalygen.detectors.imrnet.compare import cover_masks, feature_scores, iterative_reconstruction, point_scores
from anomalygen.detectors.imrnet.loss import masked_chamfer_loss
from anomalygen.detectors.imrnet.network import MaskedPointReconstructor
from anomalygen.detectors.imrnet.patches import make_patches, thin
from anomalygen.detectors.neural import NeuralDetector, Stage
from anomalygen.detectors.common.pools import PointPoolItems, draw_pool, normalize
from anomalygen.detectors.settings import bounded
from anomalygen.detectors.training.config import TrainConfig

TEMPLATE_FILE = "template.pt"
PRETRAINED_WEIGHTS = "model.pt"


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
    iterations: int = bounded(3, 1, 100)
    compare_points: int = bounded(64, 2, 4096)
    feature_layers: int = bounded(3, 1, 64)
    feature_weight: float = bounded(1.0, 0.0, 1e6)
    template_clouds: int = bounded(1, 1, 10**6)
    template_quantile: float = bounded(0.95, 0.0, 1.0)
    spread_k: int = bounded(3, 1, 64)
    top_fraction: float = bounded(0.01, 1e-6, 1.0)
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


class IMRNetDetector(NeuralDetector):
    name = "imrnet"
    kinds = ("points",)
    settings = IMRNetSettings

    def __init__(self, config: dict | None = None, device="auto"):
        super().__init__(config, device)
        self.template: dict | None = None

    # -- training hooks -----------------------------------------------------------------
    def build_network(self) -> MaskedPointReconstructor:
        c = self.cfg
        return MaskedPointReconstructor(c.patch_points, c.dim, c.width, c.depth, c.decoder_depth, c.heads)

    def training_items(self, data) -> PointPoolItems:
        return PointPoolItems(data, self.cfg.n_points, self.cfg.train.seed, self.cfg.repeat)

    def training_loss(self):
        c = self.cfg
        return functools.partial(masked_chamfer_loss, n_points=c.n_points, groups=c.groups, patch_points=c.patch_points,
                                 mask_ratio=c.mask_ratio, sampler=c.sampler, tau=c.tau, ratio=c.salient_ratio,
                                 geometry_k=c.geometry_k, centre_jitter=c.centre_jitter)

    def training_stages(self, data) -> list[Stage]:
        if self.cfg.pretrained:
            load_pretrained(self.network, self.cfg.pretrained)
        return super().training_stages(data)

    def _fit(self, data, options) -> None:
        super()._fit(data, options)
        self.template = None
        self.template = self._fit_template([data[i] for i in range(len(data))])

    # -- scoring ------------------------------------------------------------------------
    @torch.no_grad()
    def analyse(self, points: np.ndarray) -> dict[str, torch.Tensor]:
        """Everything scoring computes for one cloud (N,3): the normalized cloud `normed`, the thinned
        `points`, `centres`, input and reconstructed `patches`/`recon` (relative to their centres),
        the per-centre scores `a_p`, `a_f` and the features `f_in`, `f_out` (before regularization)."""
        c, dev = self.cfg, self.device
        self.network.eval()
        normed = normalize(np.asarray(points, np.float32))
        pool = draw_pool(normed, c.n_points, np.random.default_rng(c.train.seed))
        x = thin(torch.from_numpy(pool).to(dev)[None], c.n_points)
        gen = torch.Generator().manual_seed(c.train.seed)
        centres, patches = make_patches(x, c.groups, c.patch_points, c.sampler, c.tau, c.salient_ratio, c.geometry_k, gen)
        masks = cover_masks(c.groups, c.iterations, c.mask_ratio, gen)
        recon = iterative_reconstruction(self.network, centres, patches, masks)
        a_p = point_scores(centres, (patches + centres[:, :, None]).reshape(1, -1, 3),
                           (recon + centres[:, :, None]).reshape(1, -1, 3), c.compare_points)
        f_in = self.network.features(centres, patches, c.feature_layers)
        f_out = self.network.features(centres, recon, c.feature_layers)
        if self.template is None:  # while the template itself is being fitted
            a_f = feature_scores(f_in, f_out)
        else:
            a_f = feature_scores(f_in, f_out, self.template["features"].to(dev), self.template["threshold"])
        return {"normed": torch.from_numpy(normed).to(dev), "points": x[0], "centres": centres[0], "patches": patches[0],
                "recon": recon[0], "a_p": a_p[0], "a_f": a_f[0], "f_in": f_in[0], "f_out": f_out[0]}

    def _maps(self, res: dict) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.cfg.spread_k
        return (spread_to_points(res["normed"], res["centres"], res["a_p"], k),
                spread_to_points(res["normed"], res["centres"], res["a_f"], k))

    def _score(self, sample) -> tuple[float, np.ndarray]:
        points = np.asarray(sample.points, np.float32)
        if len(points) == 0:
            return 0.0, np.zeros(0, np.float32)
        if self.template is None:
            raise AnomalygenError("imrnet: no training template; fit() or load() a complete model first")
        map_p, map_f = self._maps(self.analyse(points))
        t = self.template
        dense = map_p / t["scale_p"] + self.cfg.feature_weight * map_f / t["scale_f"]
        worst = dense.topk(max(1, round(self.cfg.top_fraction * len(dense)))).values
        return float(worst.mean()), dense.cpu().numpy()

    def _fit_template(self, clouds) -> dict:
        """Template features, regularization threshold and the A_p / A_f scales, from the training clouds."""
        c = self.cfg
        results = [self.analyse(np.asarray(s.points, np.float32)) for s in clouds]
        features = torch.cat([r["f_in"] for r in results[:c.template_clouds]]).cpu()
        dist = torch.cat([knn(r["f_out"].cpu(), features, 1)[0][:, 0] for r in results])
        threshold = float(torch.quantile(dist, c.template_quantile))
        template = {"features": features, "threshold": threshold, "scale_p": 1.0, "scale_f": 1.0}
        self.template = template
        maps = [self._maps(self.analyse(np.asarray(s.points, np.float32))) for s in clouds]
        template["scale_p"] = max(float(torch.cat([m[0] for m in maps]).mean()), 1e-12)
        template["scale_f"] = max(float(torch.cat([m[1] for m in maps]).mean()), 1e-12)
        return template

    # -- save / load --------------------------------------------------------------------
    def _save_state(self, directory: Path) -> dict:
        state = super()._save_state(directory)
        save_torch(self.template, directory / TEMPLATE_FILE)
        return {**state, "template": TEMPLATE_FILE}

    def _load_state(self, directory: Path, state: dict) -> None:
        super()._load_state(directory, state)
        self.template = load_torch(directory / state.get("template", TEMPLATE_FILE), "template file")


def load_pretrained(network: torch.nn.Module, directory: str | Path) -> None:
    """Load the weights `anomalygen pretrain-detector` wrote to `directory` into `network`."""
    path = Path(directory) / PRETRAINED_WEIGHTS
    if not path.is_file():
        raise AnomalygenError(f"imrnet.pretrained = {directory}: no {PRETRAINED_WEIGHTS} there "
                              f"(write one with `anomalygen pretrain-detector --detector imrnet`)")
    weights = load_torch(path, "pretrained weights file")
    try:
        network.load_state_dict(weights)
    except RuntimeError as exc:
        raise AnomalygenError(f"imrnet.pretrained = {directory}: its network differs from these settings "
                              f"(pretrain with the same imrnet sizes): {str(exc).splitlines()[0]}") from None
