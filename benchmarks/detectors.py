"""Benchmark: every registered detector trained and scored on the same built data, one table.

    python benchmarks/detectors.py [--detectors btf,patchae,das3d] [--only points|images] [--device auto]
                                   [--threads N] [--keep DIR] [--recipe das3d=das3d-tiny] [--set KEY=VALUE]

Data (built once, shared by every detector):
  points: `anomalygen build-shapenet --classes 2` (ashtray0, bag0; Anomaly-ShapeNet layout)
  images: `anomalygen render-mvtec3d --classes bagel,tire --size 224` (MVTec 3D-AD layout)
Each detector runs `train_detector` with its recipe section from `recipes/detectors.yaml` on
every data kind it supports, then `evaluate_run`. The table: I-AUROC, point AUROC or P-AUROC
and exact AUPRO@0.3, training seconds per class, ms per sample (score() only, after one
untimed warm-up sample), peak RSS and, on cuda, torch's max allocated GPU memory, with the
device name above it. A detector that can time its network alone (`time_forward`, DAS3D) adds
"fwd ms": one forward pass, batch 1, after warm-up passes. `--recipe DET=NAME` trains DET with
another recipe (e.g. das3d=das3d-tiny, the CPU smoke configuration); `--set` overrides its keys.
Figures go to benchmarks/RESULTS.md by hand, with the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anomalygen.detectors import available_detectors, get_detector
from anomalygen.detectors.engine import evaluate_run, train_detector
from anomalygen.detectors.resources import device_description

DATA = {
    "points": ("build-shapenet", "--classes", "2"),
    "images": ("render-mvtec3d", "--classes", "bagel,tire", "--size", "224"),
}
# benchmarked by their own script (pretraining first, paper sizes meant for a GPU): benchmarks/imrnet.py
OWN_BENCHMARK = {"imrnet"}
COLUMNS = [("i_auroc", "I-AUROC"), ("point_auroc", "point AUROC"), ("p_auroc", "P-AUROC"), ("aupro", "AUPRO@0.3"),
           ("train_s", "train s"), ("ms_per_sample", "ms/sample"), ("forward_ms", "fwd ms"), ("peak_rss_mib", "peak RSS MiB"),
           ("gpu_max_allocated_mib", "GPU MiB")]


def build(kind: str, root: Path) -> Path:
    if not root.exists():
        subprocess.run([sys.executable, "-m", "anomalygen.cli", *DATA[kind], "--out", str(root)], check=True,
                       stdout=subprocess.DEVNULL)
    return root


def fmt(v, key: str) -> str:
    if v is None:
        return "-"
    if key == "forward_ms":
        return f"{v:.2f}"
    return f"{v:.1f}" if key in ("train_s", "ms_per_sample") else f"{v:.0f}" if key.endswith("_mib") else f"{v:.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detectors", default=",".join(d for d in available_detectors() if d not in OWN_BENCHMARK),
                    help="comma-separated (default: all but those with their own benchmark script)")
    ap.add_argument("--only", choices=tuple(DATA), default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (recipe run.threads)")
    ap.add_argument("--keep", default=None, help="keep datasets and runs in this folder (re-used when present)")
    ap.add_argument("--recipe", action="append", default=[], metavar="DET=NAME",
                    help="train DET with recipe NAME instead of detectors (repeatable), e.g. das3d=das3d-tiny")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override for every detector, e.g. das3d.train.epochs=20 (repeatable)")
    args = ap.parse_args(argv)
    from anomalygen.detectors.base import Detector
    from anomalygen.detectors.runs import model_dir
    from anomalygen.recipes import parse_overrides

    recipes = dict(r.split("=", 1) for r in args.recipe)
    import torch

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-detectors-"))
    work.mkdir(parents=True, exist_ok=True)
    overrides = {**({"run.threads": args.threads} if args.threads else {}), **parse_overrides(args.overrides)}
    print(f"device: {device_description(args.device)}; torch {torch.__version__}; load average {os.getloadavg()}")
    rows = []
    for kind in DATA:
        if args.only and kind != args.only:
            continue
        data = build(kind, work / f"data-{kind}")
        for name in args.detectors.split(","):
            if kind not in get_detector(name).kinds:
                continue
            out = work / f"run-{name}-{kind}"
            t0 = time.perf_counter()
            mine = {k: v for k, v in overrides.items() if k.startswith("run.") or k.startswith(name + ".")}
            run = train_detector(name, data, out, recipe=recipes.get(name, "detectors"), overrides=mine,
                                 device=args.device, evaluate=False, overwrite=True, progress=False)
            train_s = (time.perf_counter() - t0) / max(len(run["trained"]), 1)
            metrics = evaluate_run(out, device=args.device, progress=False)
            forward = {}
            for key in run["trained"]:
                det = Detector.load(model_dir(out, key), args.device)
                if hasattr(det, "time_forward"):
                    forward[key] = det.time_forward()
            for r in metrics["rows"] + [{**metrics["mean"], "task": "mean"}]:
                fwd = forward.get(r["task"], sum(forward.values()) / len(forward) if forward else None)
                rows.append({"detector": name, "data": kind, **r, "train_s": train_s, "forward_ms": fwd})
            if recipes.get(name):
                print(f"{name}: recipe {recipes[name]}")
    used = [(k, h) for k, h in COLUMNS if any(r.get(k) is not None for r in rows)]
    print(f"\ndata: {work}  (points: {' '.join(DATA['points'])}; images: {' '.join(DATA['images'])})")
    print("| detector | data | class | " + " | ".join(h for _, h in used) + " |")
    print("|---|---|---|" + "---|" * len(used))
    for r in rows:
        cls = f"**{r['task']}**" if r["task"] == "mean" else r["task"]
        print(f"| {r['detector']} | {r['data']} | {cls} | " + " | ".join(fmt(r.get(k), k) for k, _ in used) + " |")
    print(f"\nload average at the end {os.getloadavg()}; train s = training wall time per class")
    return 0


if __name__ == "__main__":
    sys.exit(main())
