"""Benchmark: a training epoch's peak memory does not grow with the size of the train split.

    python benchmarks/training_memory.py [--sizes 1000,10000] [--points 2048] [--workers 2] [--threads N] [--keep DIR]

For each size, writes a train split of that many small clouds (spheres and tori, `--points`
points, Anomaly-ShapeNet layout through anomalygen.io writers) to a temporary folder, then in
a fresh process trains patchae (recipe defaults, one epoch, one draw per cloud) on the
split's sample references with `--workers` loader processes. Prints, per size, the training
process's peak RSS during the fit (reset just before it), the loader workers' peak RSS, and
samples per second (the fit's wall time, Lightning's start-up included).
Figures go to benchmarks/RESULTS.md by hand, with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ANCHOR = "flat: peak RSS at 10,000 within ~10 % of 1,000"
CLS = "blob0"


def write_split(root: Path, size: int, points: int, seed: int = 0) -> float:
    """`size` normal training clouds of class blob0; returns the seconds it took."""
    from anomalygen.detectors.toydata import POINT_SHAPES, toy_point_cloud
    from anomalygen.io import GOOD, PointSample, anomaly_shapenet

    start = time.perf_counter()
    for k in range(size):
        rng = np.random.default_rng([seed, k])
        pts, labels = toy_point_cloud(POINT_SHAPES[k % len(POINT_SHAPES)], points, rng)
        anomaly_shapenet.write_sample(root, PointSample(pts, labels, CLS, "train", GOOD,
                                                        anomaly_shapenet.sample_name(CLS, "train", k)), binary=True)
    return time.perf_counter() - start


def train_once(root: Path, workers: int, threads: int | None) -> dict:
    """One patchae epoch over the split at `root`, measured (runs in its own process)."""
    import torch

    from anomalygen.detectors import get_detector
    from anomalygen.detectors.base import FitOptions
    from anomalygen.detectors.resources import Meter
    from anomalygen.io import open_dataset
    from anomalygen.recipes import builtin_recipes, get_key, load_recipe

    if threads:
        torch.set_num_threads(threads)
    config = get_key(load_recipe(builtin_recipes()["detectors"]), "patchae")
    config = {**config, "repeat": 1, "train": {**config["train"], "epochs": 1}}
    refs = open_dataset(root).samples(CLS, "train")
    det = get_detector("patchae")(config, device="cpu")
    with tempfile.TemporaryDirectory() as workdir:
        meter = Meter(det.device)  # resets the peak-RSS counter to the current RSS: what follows is the fit
        before = meter.result()["peak_rss_mib"]  # imports and the split's sample references
        meter.time(det.fit, refs, FitOptions(workdir=Path(workdir), loader_workers=workers), count=len(refs))
        res = meter.result()
    return {"samples": len(refs), "seconds": meter.seconds, "samples_per_s": len(refs) / meter.seconds,
            "peak_rss_mib": res["peak_rss_mib"], "peak_rss_scope": res["peak_rss_scope"], "rss_before_fit_mib": before,
            # the loader workers have exited (joined) by now: their largest peak
            "workers_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
            "steps": det.training_info["steps"], "torch_threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000", help="train split sizes, comma-separated")
    ap.add_argument("--points", type=int, default=2048, help="points per cloud")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads of the training process")
    ap.add_argument("--keep", type=Path, default=None, help="write the splits here and keep them")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(train_once(args.child, args.workers, args.threads)))
        return
    base = args.keep or Path(tempfile.mkdtemp(prefix="anomalygen-trainmem-"))
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            root = base / f"split-{size}"
            shutil.rmtree(root, ignore_errors=True)
            written = write_split(root, size, args.points)
            cmd = [sys.executable, __file__, "--child", str(root), "--workers", str(args.workers)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            row["write_s"] = written
            rows.append(row)
            print(f"{size:>6} samples: peak RSS {row['peak_rss_mib']:.0f} MiB (training process; "
                  f"{row['rss_before_fit_mib']:.0f} MiB before the fit: imports, sample references), "
                  f"{row['workers_peak_rss_mib']:.0f} MiB (largest loader worker); "
                  f"{row['samples_per_s']:.1f} samples/s ({row['seconds']:.1f} s, {row['steps']} steps; "
                  f"split written in {written:.1f} s)", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        growth = 100.0 * (last["peak_rss_mib"] / first["peak_rss_mib"] - 1.0)
        print(f"{ANCHOR}: {first['samples']:,} -> {last['samples']:,} samples, training process "
              f"{first['peak_rss_mib']:.0f} -> {last['peak_rss_mib']:.0f} MiB ({growth:+.1f} %), loader workers "
              f"{first['workers_peak_rss_mib']:.0f} -> {last['workers_peak_rss_mib']:.0f} MiB")
    print(f"torch threads {rows[0]['torch_threads']}, {args.workers} loader workers, {args.points} points per cloud, "
          f"patchae recipe defaults, 1 epoch; training-process peak RSS "
          + ("reset just before the fit" if rows[0]["peak_rss_scope"] == "class" else "over the process lifetime"))


if __name__ == "__main__":
    main()
