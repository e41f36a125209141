"""Benchmark: 3DzAL's ablations (paper Tables 3 and 4) on rendered MVTec 3D-AD classes, zero-shot.

    python benchmarks/zal3d.py [--train bagel] [--test cookie,potato,tire] [--irrelevant dowel,peach]
                               [--size 64] [--recipe zal3d-tiny] [--epochs 5] [--keep DIR] [--set KEY=VALUE]

Data: `anomalygen render-mvtec3d --classes <all of them> --size SIZE` (8 training samples per class,
2 good + 2 per defect type in test). One model per training configuration is fitted on the
training class with the task-irrelevant classes as the source of adding patches; each is scored
on every test class (so the irrelevant classes are one fixed set here, not the paper's "the other
8" per test class). Scoring-only switches (w_c = 0: no classifier; eta = 0: no perturbation)
reuse the fitted model. Rows:

Table 3  baseline   bank FPFH only, no classifier (BTF at the same grid)
         +L_con     learned features trained with Eq. 1 only (w_rd = 0), no classifier
         +L_rd      Eq. 1 + Eq. 2, no classifier
         +C_w       + the normalcy classifier score (eta = 0)
         +IP        + input perturbation (eta from the recipe): the full method
Table 4  adding / removing / both pseudo-anomaly types (full method)
Cells: pixel AUPRO@0.3 (100 thresholds) / image AUROC, per test class, and their mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from anomalygen.detectors import get_detector
from anomalygen.detectors.base import FitOptions
from anomalygen.detectors.engine import evaluate_task
from anomalygen.detectors.tasks import Task
from anomalygen.io import open_dataset
from anomalygen.recipes import builtin_recipes, load_recipe, parse_overrides

ALL = "bagel,cookie,dowel,peach,potato,tire"


def render(root: Path, size: int) -> Path:
    if not root.exists():
        subprocess.run([sys.executable, "-m", "anomalygen.cli", "render-mvtec3d", "--classes", ALL, "--size", str(size),
                        "--out", str(root)], check=True, stdout=subprocess.DEVNULL)
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default="bagel")
    ap.add_argument("--test", default="cookie,potato,tire")
    ap.add_argument("--irrelevant", default="dowel,peach")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--recipe", default="zal3d-tiny")
    ap.add_argument("--epochs", type=int, default=5, help="training epochs (3DzAL: 5)")
    ap.add_argument("--keep", default=None, help="keep the rendered data here (re-used when present)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of the recipe's zal3d section, e.g. --set patch_size=8 (repeatable)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-zal3d-"))
    data = render(work / f"data-{args.size}", args.size)
    ds = open_dataset(data)
    rec = load_recipe(builtin_recipes().get(args.recipe, args.recipe))
    base = {**rec["zal3d"], "image_size": args.size, "train": {**rec["zal3d"].get("train", {}), "epochs": args.epochs}}
    for key, value in parse_overrides(args.overrides).items():
        base[key] = value
    tests, aux_classes = args.test.split(","), args.irrelevant.split(",")
    refs = ds.samples(args.train, "train")
    aux = [r for c in aux_classes for r in ds.samples(c, "train")]
    run_cfg = {"aupro_variant": "btf", "aupro_thresholds": 100, "warmup": False}  # the AUPRO papers report
    print(f"zal3d ablations: train {args.train}, test {args.test}, irrelevant {args.irrelevant}; {args.recipe} at "
          f"{args.size} px, {args.epochs} epochs {' '.join(args.overrides)}; cpu, torch threads 1; "
          f"load average {os.getloadavg()}")

    def fit(**changes):
        cfg = {**base, **changes}
        det = get_detector("zal3d")(cfg, "cpu")
        t0 = time.perf_counter()
        det.fit(refs, FitOptions(irrelevant=aux))
        return det, time.perf_counter() - t0

    def score(det, **scoring):
        det.cfg = dataclasses.replace(det.cfg, **scoring)
        cells = []
        for t in tests:
            row = evaluate_task(det, ds, Task(f"{args.train}->{t}", [args.train], t), run_cfg, progress=False)
            cells.append((row["aupro"], row["i_auroc"]))
        return cells

    rows = []
    det, s = fit(learned_features=False)
    rows.append(("3", "baseline (FPFH bank)", score(det, w_c=0.0), s))
    det, s = fit(w_rd=0.0)
    rows.append(("3", "+L_con", score(det, w_c=0.0), s))
    full, s_full = fit()
    eta = full.cfg.eta
    rows.append(("3", "+L_con +L_rd", score(full, w_c=0.0), s_full))
    rows.append(("3", "+L_con +L_rd +C_w", score(full, w_c=base.get("w_c", 1.0), eta=0.0), s_full))
    rows.append(("3", f"+L_con +L_rd +C_w +IP (eta {eta})", score(full, eta=eta), s_full))
    det, s = fit(kinds=["adding"])
    rows.append(("4", "adding only", score(det), s))
    det, s = fit(kinds=["removing"])
    rows.append(("4", "removing only", score(det), s))
    rows.append(("4", "adding + removing", rows[4][2], s_full))

    head = " | ".join(f"{args.train}->{t}" for t in tests)
    print(f"\n| table | configuration | {head} | mean | fit s |")
    print("|---|---|" + "---|" * len(tests) + "---|---|")
    for table, name, cells, secs in rows:
        txt = " | ".join(f"{a:.3f} / {i:.3f}" for a, i in cells)
        mean = f"{np.mean([a for a, _ in cells]):.3f} / {np.mean([i for _, i in cells]):.3f}"
        print(f"| {table} | {name} | {txt} | {mean} | {secs:.0f} |")
    print(f"\ncells: pixel AUPRO@0.3 / image AUROC; data {data}; load average at the end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
