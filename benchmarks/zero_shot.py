"""Benchmark: 3DzAL's zero-shot protocol (train on one class, test on each other) on rendered classes.

    python benchmarks/zero_shot.py [--detectors zal3d,btf] [--classes bagel,cable_gland,carrot,foam]
                                   [--size 160] [--device auto] [--threads N] [--recipe detectors]
                                   [--set KEY=VALUE ...] [--keep DIR]

Data: `anomalygen render-mvtec3d --classes <classes> --size <size>` (default recipe counts: 8 train,
2 validation, 2 good and 2 per defect type in test), built once. Then `anomalygen.detectors.zeroshot`
runs the square for every detector (first compared with the second): each class trains, each other
class tests, the rest are task-irrelevant data. Prints the pixel AUPRO (Table 1) and image AUROC
(Table 2) matrices with per-row means, the mean gain of the first detector over the second, and the
wall time. The paper's square is all ten classes at full resolution; the default here is a 4 x 3
subset that fits a 2-core CPU. Figures go to benchmarks/RESULTS.md by hand, with the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anomalygen.detectors import available_detectors
from anomalygen.detectors.resources import device_description
from anomalygen.detectors.zeroshot import matrices_markdown, zero_shot
from anomalygen.recipes import parse_overrides

CLASSES = "bagel,cable_gland,carrot,foam"


def default_detectors() -> str:
    return "zal3d,btf" if "zal3d" in available_detectors() else "btf"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detectors", default=default_detectors(), help="comma-separated; first compared with second "
                    "(default: zal3d,btf when zal3d is registered, else btf)")
    ap.add_argument("--classes", default=CLASSES, help=f"rendered classes of the square (default {CLASSES})")
    ap.add_argument("--size", type=int, default=160, help="rendered image size in pixels (default 160)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (recipe run.threads)")
    ap.add_argument("--recipe", default="detectors", help="detector recipe (default: detectors)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override, repeatable, e.g. --set btf.images.image_size=112")
    ap.add_argument("--keep", default=None, help="keep data and runs in this folder (re-used when present)")
    args = ap.parse_args(argv)

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-zero-shot-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"rendered-{args.size}"
    if not data.exists():
        subprocess.run([sys.executable, "-m", "anomalygen.cli", "render-mvtec3d", "--classes", args.classes,
                        "--size", str(args.size), "--out", str(data)], check=True, stdout=subprocess.DEVNULL)
    overrides = parse_overrides(args.overrides)
    if args.threads:
        overrides["run.threads"] = args.threads
    import torch

    print(f"device: {device_description(args.device)}; torch {torch.__version__}; load average {os.getloadavg()}")
    t0 = time.perf_counter()
    result = zero_shot(args.detectors, data, work / f"zero-shot-{args.detectors.replace(',', '-')}",
                       classes=args.classes, recipe=args.recipe, overrides=overrides, device=args.device)
    wall = time.perf_counter() - t0
    n = len(result["classes"])
    print(f"\ndata: render-mvtec3d --classes {args.classes} --size {args.size} ({data}); "
          f"{n} x {n - 1} square, recipe {args.recipe}, overrides {overrides or 'none'}\n")
    print(matrices_markdown(result))
    if "gain" in result:
        g = result["gain"]
        print(f"mean gain of {g['of']} over {g['over']}: pixel AUPRO {100 * g['aupro']['mean']:+.1f} points, "
              f"image AUROC {100 * g['i_auroc']['mean']:+.1f} points (paper, 10 x 9 on MVTec 3D-AD: "
              "AUPRO 70.8 vs 67.3, +3.5; I-AUROC 53.0 vs 51.2, +1.8)")
    print(f"wall {wall:.0f} s (runs kept in {work}); load average at the end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
