"""Benchmark: IMRNet on built Anomaly-ShapeNet-layout data: the paper's Table 4 sampler ablation, and IMRNet vs BTF.

    python benchmarks/imrnet.py [--classes 2] [--recipe imrnet-tiny] [--device auto] [--threads N]
                                [--samplers gps,fps,random] [--no-pretrain] [--set KEY=VALUE ...] [--keep DIR]

Data: `anomalygen build-shapenet --classes N` (the first N classes; built once into --keep).
1. Pretraining (`pretrain_imrnet`, imrnet.pretrain of the recipe) on the procedural catalog; its time.
2. Table 4: IMRNet fine-tuned per class from that checkpoint with each centre sampler (gps, fps,
   random: the same number of centres, points and training steps), I-AUROC and point AUROC.
3. IMRNet (gps) vs BTF (recipes/detectors.yaml `btf`) on the same classes: I-AUROC, point AUROC,
   fine-tuning seconds per class, ms/sample (score() only, after an untimed warm-up), peak RSS and,
   on cuda, torch's max allocated GPU memory.
The paper's figures are printed beside ours as anchors (Table 4: GPS 0.66 / 0.65, FPS 0.64 / 0.62,
RS 0.55 / 0.61 on their data; Table 3 means: IMRNet 0.661 vs BTF-FPFH 0.528 over 40 classes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anomalygen.detectors.engine import evaluate_run, train_detector
from anomalygen.detectors.resources import device_description
from anomalygen.recipes import builtin_recipes, get_key, load_recipe, parse_overrides

PAPER_TABLE4 = {"random": (0.55, 0.61), "fps": (0.64, 0.62), "gps": (0.66, 0.65)}
PAPER_MEAN = {"imrnet": 0.661, "btf": 0.528}  # Table 3, 40 Anomaly-ShapeNet classes, I-AUROC


def build(classes: int, root: Path) -> Path:
    if not root.exists():
        subprocess.run([sys.executable, "-m", "anomalygen.cli", "build-shapenet", "--classes", str(classes),
                        "--out", str(root)], check=True, stdout=subprocess.DEVNULL)
    return root


def run_detector(name: str, data: Path, out: Path, recipe: str, overrides: dict, device: str) -> dict:
    t0 = time.perf_counter()
    run = train_detector(name, data, out, recipe=recipe, overrides=overrides, device=device, evaluate=False,
                         overwrite=True, progress=False)
    train_s = (time.perf_counter() - t0) / max(len(run["trained"]), 1)
    m = evaluate_run(out, device=device, progress=False)
    return {**m["mean"], "train_s": train_s, "rows": m["rows"]}


def f3(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classes", type=int, default=2, help="build-shapenet --classes N (default 2)")
    ap.add_argument("--recipe", default="imrnet-tiny", help="IMRNet recipe (imrnet-tiny on CPU; detectors = paper sizes)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (recipe run.threads)")
    ap.add_argument("--samplers", default="gps,fps,random")
    ap.add_argument("--no-pretrain", dest="pretrain", action="store_false", help="fine-tune from random weights")
    ap.add_argument("--no-btf", dest="btf", action="store_false")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override an IMRNet recipe key, e.g. --set imrnet.train.epochs=50")
    ap.add_argument("--keep", default=None, help="keep data and runs in this folder (data re-used when present)")
    args = ap.parse_args(argv)
    import torch

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-imrnet-"))
    work.mkdir(parents=True, exist_ok=True)
    common = {"run.threads": args.threads} if args.threads else {}
    overrides = {**common, **parse_overrides(args.overrides)}
    print(f"device: {device_description(args.device)}; torch {torch.__version__}; load average {os.getloadavg()}")
    data = build(args.classes, work / f"data-shapenet-{args.classes}")

    pretrain_s = None
    if args.pretrain:
        from anomalygen.detectors.imrnet.pretrain import PRETRAIN_FILE, pretrain_imrnet

        rec = load_recipe(builtin_recipes().get(args.recipe, args.recipe), overrides)
        pre = work / f"pretrained-{args.recipe}"
        if (pre / PRETRAIN_FILE).is_file():  # re-used: fine-tuning refuses it if its network sizes differ
            summary = json.loads((pre / PRETRAIN_FILE).read_text())
        else:
            summary = pretrain_imrnet(get_key(rec, "imrnet", {}) or {}, pre, device=args.device, resume=pre.exists())
        pretrain_s = summary["seconds"]
        overrides["imrnet.pretrained"] = str(pre)
        print(f"pretrained on {summary['shapes']} shapes, {summary['training']['steps']} steps: {pretrain_s:.1f} s")

    results = {}
    for sampler in args.samplers.split(","):
        results[sampler] = run_detector("imrnet", data, work / f"run-imrnet-{sampler}", args.recipe,
                                        {**overrides, "imrnet.sampler": sampler}, args.device)
        print(f"imrnet {sampler}: I-AUROC {f3(results[sampler].get('i_auroc'))}, "
              f"point AUROC {f3(results[sampler].get('point_auroc'))}", flush=True)
    btf = run_detector("btf", data, work / "run-btf", "detectors", common, args.device) if args.btf else None

    print(f"\ndata: {data} (build-shapenet --classes {args.classes}); recipe {args.recipe}"
          f"{'' if args.pretrain else ', no pretraining'}; overrides {args.overrides or 'none'}")
    print("\nTable 4 (sampler ablation), mean over classes; paper anchors from their Table 4")
    print("| sampler | I-AUROC | point AUROC | paper I-AUC | paper P-AUC |")
    print("|---|---|---|---|---|")
    for sampler, r in results.items():
        pi, pp = PAPER_TABLE4.get(sampler, (None, None))
        print(f"| {sampler} | {f3(r.get('i_auroc'))} | {f3(r.get('point_auroc'))} | {f3(pi)} | {f3(pp)} |")

    print("\nIMRNet vs BTF, per class and mean; paper anchors: Table 3 means over 40 classes")
    print("| detector | class | I-AUROC | point AUROC | train s/class | ms/sample | peak RSS MiB | GPU MiB |")
    print("|---|---|---|---|---|---|---|---|")
    pairs = [("imrnet (gps)", results.get("gps"))] + ([("btf", btf)] if btf else [])
    for name, r in pairs:
        if r is None:
            continue
        for row in r["rows"] + [{**r, "task": "**mean**"}]:
            gpu = row.get("gpu_max_allocated_mib")
            print(f"| {name} | {row['task']} | {f3(row.get('i_auroc'))} | {f3(row.get('point_auroc'))} | "
                  f"{r['train_s']:.1f} | {row.get('ms_per_sample', 0):.1f} | {row.get('peak_rss_mib', 0):.0f} | "
                  f"{'-' if gpu is None else f'{gpu:.0f}'} |")
    print(f"| paper | mean of 40 | imrnet {PAPER_MEAN['imrnet']} / btf-fpfh {PAPER_MEAN['btf']} | | | | | |")
    if pretrain_s is not None:
        print(f"\npretraining: {pretrain_s:.1f} s")
    print(f"load average at the end {os.getloadavg()}; train s/class = fine-tuning (or BTF fit) wall time per class")
    return 0


if __name__ == "__main__":
    sys.exit(main())
