"""Self-supervised pretraining of IMRNet's backbone on meshes of a shape source (the paper pretrains
on ShapeNet-55; no weights can be downloaded, so ours come from our own shapes).

`pretrain_imrnet` samples `imrnet.pretrain.shapes` meshes of the procedural catalog (or of
`source`: ShapeNetCore v2 or a folder of meshes, anomalygen.shapes.open_source), draws a fresh,
randomly rotated and scaled point sample of one per training item, and trains the masked
reconstruction with the shared loop (checkpoints, --resume, time budget, loss curve). It writes
OUT/model.pt (the weights per-class training starts from with `imrnet.pretrained: OUT`) and
OUT/pretrain.json (settings, source, training summary, seconds).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from anomalygen.detectors.base import FitOptions
from anomalygen.detectors.imrnet.data import PretrainItems, ShapeSourceMeshes
from anomalygen.detectors.imrnet.detector import PRETRAINED_WEIGHTS, IMRNetDetector
from anomalygen.errors import AnomalygenError
from anomalygen.io.lock import lock_folder
from anomalygen.io.output_dir import check_out_path
from anomalygen.limits import minutes
from anomalygen.detectors.stored import save_torch
from anomalygen.io import write_text_atomic
from anomalygen.shapes.sources import open_source

PRETRAIN_FILE = "pretrain.json"
# the settings the network and its training loss depend on
PRETRAIN_KEYS = ("n_points", "groups", "patch_points", "mask_ratio", "sampler", "tau", "salient_ratio", "geometry_k",
                 "dim", "width", "depth", "decoder_depth", "heads", "centre_jitter")


def pretrain_imrnet(config: dict | None, out, source: str | None = None, device: str = "auto",
                    progress: bool = False, resume: bool = False, max_minutes: float | None = None,
                    loader_workers: int = 0) -> dict:
    """Pretrain on a shape source and write OUT/model.pt and OUT/pretrain.json; returns the latter's dict.
    `source` overrides the recipe's imrnet.pretrain.source (None / 'procedural': the catalog)."""
    max_minutes = minutes(max_minutes)  # before anything is written: the rule of every command
    det = IMRNetDetector(config, device)
    c = det.cfg
    out = Path(out)
    check_out_path(out)
    if (out / PRETRAINED_WEIGHTS).exists() and not resume:
        raise AnomalygenError(f"{out} already holds a pretrained model; choose another --out")
    src = open_source(source if source is not None else c.pretrain.source)
    seed = c.pretrain.train.seed
    items = PretrainItems(ShapeSourceMeshes(src, c.pretrain.shapes, seed), c.n_points, det.centre_plan(), seed,
                          c.pretrain.rotate, c.pretrain.scale)
    from anomalygen.detectors.training.loop import fit_network  # Lightning loads only to train

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = det.build_network()
    out.mkdir(parents=True, exist_ok=True)
    lock_folder(out)  # a second pretraining into OUT stops here, naming this process
    start = time.monotonic()
    options = FitOptions(workdir=out, resume=resume, max_minutes=max_minutes, progress=progress,
                         loader_workers=loader_workers, task="imrnet")
    # what the pretrained weights depend on (not the fine-tuning or scoring settings), so that --resume
    # accepts the checkpoint whatever those say
    identity = {"detector": "imrnet-pretrain", "pretrain": det.config["pretrain"],
                "network": {k: det.config[k] for k in PRETRAIN_KEYS}}
    result = fit_network(network, items, det.training_loss(), c.pretrain.train, options, det.device, "pretrain",
                         identity, "imrnet.pretrain.train")
    save_torch(network.state_dict(), out / PRETRAINED_WEIGHTS)  # same weights, same bytes
    summary = {"detector": "imrnet", "config": det.config, "source": src.summary(), "shapes": c.pretrain.shapes,
               "training": result.as_dict(), "seconds": round(time.monotonic() - start, 2),
               "device": str(det.device)}
    write_text_atomic(out / PRETRAIN_FILE, json.dumps(summary, indent=2))
    return summary
