"""bf16 on the CPU (`run.precision`): every neural detector trains under bf16-mixed and scores under
bf16 autocast; its losses stay finite, its maps float32, and its object scores rank a small test set
as float32 scoring does (distances, losses and maps are computed in float32 inside autocast)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anomalygen.detectors import get_detector
from anomalygen.detectors.base import FitOptions
from anomalygen.detectors.common.points import knn
from anomalygen.detectors.toydata import write_toy_image_dataset, write_toy_point_dataset
from anomalygen.detectors.training import losscurve
from anomalygen.errors import AnomalygenError, RecipeError
from anomalygen.io import open_dataset
from anomalygen.recipes import load_recipe

PATCHAE = {"n_points": 128, "patches": 8, "patch_points": 16, "score_patches": 16, "width": 8, "latent": 4, "repeat": 4,
           "train": {"epochs": 2, "batch_size": 4, "lr": 0.003, "seed": 1}}
IMRNET = {"n_points": 128, "groups": 8, "patch_points": 8, "compare_points": 8, "dim": 16, "width": 8, "depth": 1,
          "decoder_depth": 1, "feature_layers": 1, "heads": 2, "repeat": 2, "spread_k": 2,
          "train": {"epochs": 2, "batch_size": 4, "lr": 0.003}}
# trained until its maps depend on the scan (with fewer steps the discriminator answers its prior everywhere)
DAS3D = {**load_recipe("das3d-tiny")["das3d"], "repeat": 4,
         "train": {**load_recipe("das3d-tiny")["das3d"]["train"], "epochs": 8, "lr": 0.01}}
ZAL3D = {**load_recipe("zal3d-tiny")["zal3d"], "image_size": 48, "remove_background": False,
         "train": {**load_recipe("zal3d-tiny")["zal3d"]["train"], "epochs": 1}}
CASES = {"patchae": ("points", PATCHAE), "imrnet": ("points", IMRNET), "das3d": ("images", DAS3D),
         "zal3d": ("images", ZAL3D)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    points = write_toy_point_dataset(root / "points", shapes=("sphere",), n_train=2, n_good=3, n_anomalous=3,
                                     n_points=400)
    images = write_toy_image_dataset(root / "images", classes=("dome", "other"), n_train=2, n_good=3, n_anomalous=3,
                                     size=48)
    return {"points": (open_dataset(points), "sphere0", None, points),
            "images": (open_dataset(images), "dome", "other", images)}


class DtypeLog:
    """Output dtypes of the network's Linear / Conv layers, split by train / eval mode."""

    def __init__(self):
        self.seen = {True: set(), False: set()}

    def attach(self, network: torch.nn.Module) -> torch.nn.Module:
        for m in network.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
                m.register_forward_hook(lambda mod, args, out: self.seen[mod.training].add(out.dtype))
        return network


@pytest.mark.parametrize("name", sorted(CASES))
def test_trains_under_bf16_mixed_and_scores_under_autocast_with_the_float32_ranking(name, data, tmp_path):
    torch.set_num_threads(1)
    kind, cfg = CASES[name]
    ds, cls, other, _ = data[kind]
    det = get_detector(name)(cfg, "cpu")
    log = DtypeLog()
    build = det.build_network
    det.build_network = lambda: log.attach(build())
    irrelevant = ds.samples(other, "train") if other else ()
    det.fit(ds.samples(cls, "train"), FitOptions(workdir=tmp_path, precision="bf16-mixed", irrelevant=irrelevant))
    assert torch.bfloat16 in log.seen[True], "training did not run under bf16 autocast"
    _, rows = losscurve.read_rows(tmp_path / "loss.csv")
    assert rows and all(math.isfinite(float(r["loss"])) for r in rows)

    tests = [r.load() for r in ds.samples(cls, "test")]
    scored = {}
    for precision in ("32-true", "bf16-mixed"):
        log.seen[False].clear()
        det.precision = precision
        scored[precision] = [det.score(s) for s in tests]
        assert (torch.bfloat16 in log.seen[False]) == (precision == "bf16-mixed")
    for s, (score, amap) in zip(tests, scored["bf16-mixed"]):
        assert math.isfinite(score) and amap.dtype == np.float32 and np.isfinite(amap).all()
        assert amap.shape == (s.points.shape[:1] if kind == "points" else s.xyz.shape[:2])
    full = np.array([v for v, _ in scored["32-true"]])
    half = np.array([v for v, _ in scored["bf16-mixed"]])
    # bf16 keeps 8 bits of mantissa: scores closer than 2^-7 of their size may swap; every other pair keeps its order
    tol = 2.0 ** -7 * np.abs(full).max()
    apart = [(i, j) for i in range(len(full)) for j in range(len(full)) if full[i] - full[j] > tol]
    assert len(apart) >= len(full), f"too few float32 scores apart to compare rankings: {full}"
    assert all(half[i] > half[j] for i, j in apart), (full, half)


def test_distances_stay_float32_under_autocast():
    """knn recomputes |a - b| in float32: in bf16 two points 1e-3 apart at distance ~100 would come out equal."""
    ref = torch.tensor([[100.0, 0.0, 0.0], [100.001, 0.0, 0.0]])
    query = torch.zeros(1, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d, i = knn(query.bfloat16(), ref, 2)
    assert d.dtype == torch.float32 and i[0].tolist() == [0, 1] and 0.0005 < float(d[0, 1] - d[0, 0]) < 0.0015


def test_the_engine_trains_with_the_recipes_precision_and_refuses_others(data, tmp_path, monkeypatch):
    import lightning.pytorch as pl

    from anomalygen.detectors.engine import train_detector

    asked = []

    class Spy(pl.Trainer):
        def __init__(self, *args, **kwargs):
            asked.append(kwargs["precision"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr("anomalygen.detectors.training.loop.pl.Trainer", Spy)
    ds, cls, _, root = data["points"]
    overrides = {"run.device": "cpu", "run.loader_workers": 0, "run.precision": "bf16-mixed",
                 **{f"patchae.{k}": v for k, v in PATCHAE.items() if k != "train"}, "patchae.train.epochs": 1}
    run = train_detector("patchae", root, tmp_path / "run", classes=[cls], overrides=overrides, progress=False)
    assert asked == ["bf16-mixed"] and run["metrics"]["rows"][0]["samples"] == 6
    with pytest.raises((RecipeError, AnomalygenError), match="run.precision"):
        train_detector("patchae", root, tmp_path / "bad", classes=[cls], overrides={"run.precision": "fp8"})
