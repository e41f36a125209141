"""BTF / PatchCore-FPFH: handcrafted FPFH features + a PatchCore memory bank of normal patches.

Point clouds (Anomaly-ShapeNet, Real3D-AD): FPFH on a farthest-point subsample, one bank
entry per subsampled point; a test point's score is its subsample neighbour's distance to
the bank (nearest-neighbour spreading); the object score is PatchCore's reweighted max.

Organized clouds (MVTec 3D-AD): BTF's grid approach. xyz is resized (nearest) to
`image_size`, FPFH is computed on the valid pixels' points and laid back on the grid,
smoothed with a 3x3 mean and pooled to a `feature_grid` x `feature_grid` patch grid; patch
scores are upsampled to the input size and blurred.

Radii are fractions of the object scale: the median bounding-box diagonal of the training
samples, fixed at fit time so that test samples are measured with the same ruler.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anomalygen.errors import AnomalygenError, RecipeError
from anomalygen.io.samples import ImageSample, PointSample
from anomalygen.detectors.base import Detector
from anomalygen.detectors.data import iterate_samples
from anomalygen.detectors.progress import progress_bar
from anomalygen.detectors.common.fpfh import FPFH_DIM, fpfh
from anomalygen.detectors.common.memory_bank import MemoryBank
from anomalygen.detectors.common.points import farthest_point_sample
from anomalygen.detectors.common.spread import scaled_sigma, spread_to_pixels, spread_to_points

DEFAULTS = {  # used only when a key is absent; recipes/detectors.yaml holds the shipped values
    "seed": 0, "projection_dim": 128, "reweight_k": 3,
    "points": {"coreset_fraction": 0.25, "n_points": 2048, "normal_radius": 0.05, "feature_radius": 0.12, "normal_max_nn": 30,
               "feature_max_nn": 100, "spread_k": 1},
    "images": {"coreset_fraction": 0.1, "image_size": 224, "feature_grid": 56, "normal_radius": 0.02, "feature_radius": 0.05,
               "normal_max_nn": 30, "feature_max_nn": 100, "blur_sigma": 4.0, "remove_background": True,
               "background": {"border": 0.1, "plane_distance": 0.005, "ransac_iterations": 200, "dbscan_eps": 4.0,
                              "dbscan_min_points": 10}},
}


def _merge(defaults: dict, given: dict, prefix: str = "btf") -> dict:
    """Defaults overlaid with the recipe section; unknown keys and non-mapping sections are errors."""
    if not isinstance(given, dict):
        raise RecipeError(f"{prefix} must be a mapping, got {given!r}")
    out = dict(defaults)
    for k, v in given.items():
        if k not in defaults:
            raise RecipeError(f"unknown setting {prefix}.{k}; known: {', '.join(sorted(defaults))}")
        out[k] = _merge(defaults[k], v, f"{prefix}.{k}") if isinstance(defaults[k], dict) else v
    return out


def _check(cfg: dict) -> dict:
    def num(path, lo, hi, kind=(int, float)):
        node = cfg
        for p in path.split("."):
            node = node[p]
        if isinstance(node, bool) or not isinstance(node, kind) or not lo <= node <= hi:
            raise RecipeError(f"btf.{path} = {node!r}: expected {'an integer' if kind is int else 'a number'} in [{lo}, {hi}]")
    num("projection_dim", 0, 100000, int)
    num("reweight_k", 1, 1000, int)
    num("seed", 0, 2**63 - 1, int)
    for k in ("n_points", "normal_max_nn", "feature_max_nn", "spread_k"):
        num(f"points.{k}", 1, 10**7, int)
    for k in ("image_size", "feature_grid", "normal_max_nn", "feature_max_nn"):
        num(f"images.{k}", 1, 10**5, int)
    for kind in ("points", "images"):
        num(f"{kind}.coreset_fraction", 1e-6, 1.0)
        num(f"{kind}.normal_radius", 1e-9, 10.0)
        num(f"{kind}.feature_radius", 1e-9, 10.0)
    num("images.blur_sigma", 0.0, 100.0)
    if not isinstance(cfg["images"]["remove_background"], bool):
        raise RecipeError("btf.images.remove_background must be true or false")
    num("images.background.border", 0.01, 0.5)
    num("images.background.plane_distance", 0.0, 10.0)
    num("images.background.ransac_iterations", 1, 100000, int)
    num("images.background.dbscan_eps", 0.1, 1000.0)
    num("images.background.dbscan_min_points", 1, 100000, int)
    if cfg["images"]["feature_grid"] > cfg["images"]["image_size"]:
        raise RecipeError("btf.images.feature_grid must not exceed btf.images.image_size")
    return cfg


def _diag(points: np.ndarray) -> float:
    return float(np.linalg.norm(points.max(0) - points.min(0))) if len(points) else 0.0


class BTFDetector(Detector):
    name = "btf"
    kinds = ("points", "images")
    scores_batches = True

    def __init__(self, config: dict | None = None, device="auto"):
        super().__init__(config, device)
        self.cfg = _check(_merge(DEFAULTS, self.config))
        self.config = self.cfg
        self.scale = 1.0
        self.bank: MemoryBank | None = None

    # -- features ----------------------------------------------------------------------
    def _radii(self, section: dict) -> tuple[float, float]:
        return section["normal_radius"] * self.scale, section["feature_radius"] * self.scale

    def _subsample(self, points: np.ndarray) -> np.ndarray:
        """Indices of the FPS subsample where features are computed (deterministic: starts at point 0)."""
        n = min(self.cfg["points"]["n_points"], len(points))
        pts = torch.as_tensor(points, dtype=torch.float32, device=self.device)
        return farthest_point_sample(pts, n, start=0).cpu().numpy()

    def _point_features(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.cfg["points"]
        sub = points[self._subsample(points)]
        rn, rf = self._radii(p)
        return sub, fpfh(sub, rn, rf, p["normal_max_nn"], p["feature_max_nn"])

    def _prepare_xyz(self, xyz: np.ndarray) -> np.ndarray:
        """xyz resized (nearest) to image_size^2, background zeroed as BTF preprocesses MVTec 3D-AD:
        RANSAC plane on the border pixels, points within plane_distance dropped, largest DBSCAN
        cluster kept (anomalygen.scans.remove_background, seeded, deterministic)."""
        c = self.cfg["images"]
        s = c["image_size"]
        t = torch.as_tensor(np.asarray(xyz), dtype=torch.float32).permute(2, 0, 1)[None]
        small = F.interpolate(t, size=(s, s), mode="nearest")[0].permute(1, 2, 0).numpy().copy()
        if c["remove_background"] and np.any(small != 0):
            try:
                from anomalygen.scans import BackgroundConfig, remove_background
            except ImportError:
                raise AnomalygenError("background removal needs anomalygen.depth, absent from this build; "
                                      "set btf.images.remove_background=false") from None
            fg = remove_background(small, BackgroundConfig(**c["background"]), np.random.default_rng(self.cfg["seed"]))
            small[~fg] = 0
        return small

    def _image_features(self, small: np.ndarray) -> torch.Tensor:
        """(G*G, 33) patch features of a prepared organized cloud (BTF: FPFH on grid, 3x3 mean, adaptive pool)."""
        c = self.cfg["images"]
        s, g = c["image_size"], c["feature_grid"]
        valid = np.any(small != 0, axis=-1)
        grid = np.zeros((s, s, FPFH_DIM), np.float32)
        if valid.sum() >= 3:
            rn, rf = self._radii(c)
            # MVTec xyz is in camera coordinates: orient normals toward the camera at the origin.
            grid[valid] = fpfh(small[valid], rn, rf, c["normal_max_nn"], c["feature_max_nn"], toward=np.zeros(3))
        f = torch.from_numpy(grid).permute(2, 0, 1)[None]
        f = F.avg_pool2d(f, 3, stride=1, padding=1)
        f = F.adaptive_avg_pool2d(f, (g, g))
        return f[0].permute(1, 2, 0).reshape(g * g, FPFH_DIM)

    # -- interface ---------------------------------------------------------------------
    def _fit(self, data, options) -> None:
        """Two passes over the lazily read training set: the object scale (median diagonal) first,
        because the FPFH radii depend on it, then the features. Point clouds are read twice
        instead of held in memory; prepared organized clouds (small) are kept between passes."""
        bar = progress_bar(options.progress)
        read = lambda desc: bar(iterate_samples(data, options.loader_workers, self.kind), desc=desc, total=len(data))  # noqa: E731
        if self.kind == "points":
            diags = [_diag(np.asarray(s.points, np.float32)) for s in read("scale")]
            clouds = None
        else:
            clouds = [self._prepare_xyz(s.xyz) for s in read("preprocess")]
            diags = [_diag(x[np.any(x != 0, axis=-1)]) for x in clouds]
        self.scale = float(np.median(diags)) or 1.0
        feats = []
        if self.kind == "points":
            for s in read("features"):
                feats.append(torch.from_numpy(self._point_features(np.asarray(s.points, np.float32))[1]))
        else:
            for x in bar(clouds, desc="features"):
                feats.append(self._image_features(x))
        feats = torch.cat(feats).to(self.device)
        self.bank = MemoryBank.fit(feats, self.cfg[self.kind]["coreset_fraction"], self.cfg["projection_dim"],
                                   self.cfg["seed"], self.cfg["reweight_k"])

    def _score(self, sample):
        return self._score_many([sample])[0]

    def _score_many(self, samples):
        """Features per sample (open3d, CPU), then ONE memory-bank search for all their patches."""
        feats, subs = [], []
        for s in samples:
            if isinstance(s, PointSample) and len(s.points) == 0:
                subs.append(np.zeros((0, 3), np.float32))
                feats.append(torch.zeros(0, FPFH_DIM))
            elif isinstance(s, PointSample):
                sub, f = self._point_features(np.asarray(s.points, np.float32))
                subs.append(sub)
                feats.append(torch.from_numpy(f))
            else:
                assert isinstance(s, ImageSample)
                feats.append(self._image_features(self._prepare_xyz(s.xyz)))
        allf = torch.cat(feats).to(self.device)
        dist, nn_idx = self.bank.patch_scores(allf)
        out, start = [], 0
        for i, s in enumerate(samples):
            n = len(feats[i])
            f, d, j = allf[start:start + n], dist[start:start + n], nn_idx[start:start + n]
            start += n
            if n == 0:
                out.append((0.0, np.zeros(len(s.points), np.float32)))
                continue
            obj = self.bank.object_score(f, d, j)
            if isinstance(s, PointSample):
                pts = torch.as_tensor(np.asarray(s.points, np.float32), device=self.device)
                dense = spread_to_points(pts, torch.from_numpy(subs[i]).to(self.device), d, self.cfg["points"]["spread_k"])
                out.append((obj, dense.cpu().numpy()))
            else:
                g = self.cfg["images"]["feature_grid"]
                size = tuple(s.xyz.shape[:2])
                amap = spread_to_pixels(d.reshape(g, g), size, scaled_sigma(self.cfg["images"]["blur_sigma"], size))
                out.append((obj, amap.cpu().numpy()))
        return out

    def _save_state(self, directory: Path) -> dict:
        self.bank.save(directory / "memory_bank.npy")
        return {"scale": self.scale, "bank_size": len(self.bank)}

    def _load_state(self, directory: Path, state: dict) -> None:
        self.scale = float(state["scale"])
        self.bank = MemoryBank.load(directory / "memory_bank.npy", self.cfg["reweight_k"], self.device)
