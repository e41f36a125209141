"""Benchmark: the BTF / PatchCore-FPFH baseline end to end on small built datasets.

    python benchmarks/detectors.py [--device auto] [--threads N] [--keep DIR]

1. point clouds: `anomalygen build-shapenet` output when that command exists in this build
   (2 classes), else the easy toy set (spheres/tori, 10,000 points per cloud);
2. organized clouds: `anomalygen render-mvtec3d` output (bagel, tire at 224 px) when that
   command exists, else the toy dome scans at 224 px;
then `train-detector --detector btf` + evaluation on each, printing the metrics tables
(ms per sample = score() only; peak RSS; GPU max allocated on cuda) and wall-clock times.
Figures go to benchmarks/RESULTS.md by hand, with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anomalygen.cli import COMMANDS
from anomalygen.detectors.engine import evaluate_run, train_detector
from anomalygen.detectors.reports import markdown_table
from anomalygen.detectors.toydata import write_toy_image_dataset, write_toy_point_dataset


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "anomalygen.cli", *args], check=True, stdout=subprocess.DEVNULL)


def point_dataset(root: Path) -> tuple[Path, str]:
    if "build-shapenet" in COMMANDS:
        cli("build-shapenet", "--classes", "2", "--out", str(root))
        return root, "build-shapenet --classes 2"
    write_toy_point_dataset(root, n_train=4, n_good=4, n_anomalous=8, n_points=10000)
    return root, "toy spheres/tori, 10,000 points (build-shapenet not in this build)"


def image_dataset(root: Path) -> tuple[Path, str]:
    if "render-mvtec3d" in COMMANDS:
        cli("render-mvtec3d", "--classes", "bagel,tire", "--size", "224", "--out", str(root))
        return root, "render-mvtec3d --classes bagel,tire --size 224"
    write_toy_image_dataset(root, n_train=8, n_good=2, n_anomalous=4, size=224)
    return root, "toy dome scans 224 px (render-mvtec3d not in this build)"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (recipe run.threads)")
    ap.add_argument("--keep", default=None, help="keep datasets and runs in this folder")
    ap.add_argument("--only", choices=("points", "images"), default=None)
    args = ap.parse_args(argv)
    import torch

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-detectors-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()}, "
          f"torch {torch.__version__}, cuda: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    overrides = {"run.threads": args.threads} if args.threads else {}
    for kind, make in (("points", point_dataset), ("images", image_dataset)):
        if args.only and kind != args.only:
            continue
        t0 = time.perf_counter()
        data, what = make(work / f"data-{kind}")
        t_data = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = train_detector("btf", data, work / f"run-{kind}", overrides=overrides, device=args.device,
                             evaluate=False, overwrite=True, progress=False)
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = evaluate_run(work / f"run-{kind}", device=args.device, progress=False)
        t_eval = time.perf_counter() - t0
        print(f"\n## {kind}: {what}")
        print(f"data {t_data:.1f} s, train {t_train:.1f} s ({sum(v['train_samples'] for v in run['trained'].values())} "
              f"train samples), evaluate {t_eval:.1f} s ({metrics['mean']['samples']} test samples), "
              f"torch threads {torch.get_num_threads()}, load average now {os.getloadavg()}\n")
        print(markdown_table(metrics))
    print(f"(datasets and runs in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
