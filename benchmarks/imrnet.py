"""Benchmark: IMRNet-small (from the shipped backbone and from scratch) against `nearest` and BTF on
build-shapenet data, and the paper's Table 4 sampler ablation.

    python benchmarks/imrnet.py --difficulty easy [--classes 8] [--train-seeds 0,1] [--score-seeds 0,1,2]
                                [--rows nearest,btf,builtin,scratch] [--ablation gps:gps,gps:fps,fps:fps,...]
                                [--quantiles 0.95]
                                [--recipe imrnet-small] [--threads 1] [--set KEY=VALUE ...] [--keep DIR]

Data: `anomalygen build-shapenet --classes N --set difficulty=LEVEL` (the first N classes; 4 train
and 36 test clouds each), built once into --keep. Every row reads the same files.
Rows (each class fitted on its 4 training clouds, scored on its 36 test clouds):
  nearest   distance to the nearest training point (recipes/detectors.yaml `nearest`)
  btf       BTF / PatchCore-FPFH (recipes/detectors.yaml `btf`)
  builtin   IMRNet, --recipe (imrnet-small) as shipped: fine-tuned from the builtin backbone
  scratch   the same with imrnet.pretrained = null (random initial weights, same steps)
IMRNet rows are fitted once per training seed (imrnet.train.seed) and scored once per scoring seed
(imrnet.score_seed: pools, centres, masks; the template stays the one the fit made).
Eq. 19 threshold (--quantiles): the builtin seed-0 models rescored (scoring seed 0) with other
imrnet.template_quantile values, the template's threshold and scales fitted again for each.
Ablation (paper Table 4): TRAIN:SCORE pairs of centre samplers (gps | fps | random), training seed 0,
scoring seed 0, from the builtin backbone: a model is fine-tuned per training sampler and rescored
with each scoring sampler (template and scales fitted again for it: IMRNetDetector.with_scoring).
Figures: per row, the mean over classes of I-AUROC and point AUROC with 95 % bootstrap intervals
(test clouds resampled within each class, 1,000 draws; anomalygen.metrics.bootstrap_class_means);
fit wall minutes and CPU minutes per class (IMRNet: fine-tuning plus template; CPU time counts the
loader worker), score ms per sample (wall and CPU, score() only, after an untimed warm-up), peak
RSS while scoring a class. Wall times on a shared machine are inflated by its load (printed at the
start and the end); CPU times are not. Results are kept per row and class under --keep, so a rerun
continues where a killed one stopped. Anchors: the paper's Table 3 means (IMRNet 0.661, BTF-FPFH
0.528 I-AUROC, 40 classes of their data) and Table 4 (GPS 0.66 / 0.65, FPS 0.64 / 0.62, RS 0.55 /
0.61 I-AUC / P-AUC).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PAPER_TABLE4 = {"random": (0.55, 0.61), "fps": (0.64, 0.62), "gps": (0.66, 0.65)}
PAPER_TABLE3 = {"imrnet": 0.661, "btf": 0.528}
IMRNET_ROWS = ("builtin", "scratch")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the loader workers of a fit)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def build(classes: int, difficulty: str, root: Path) -> Path:
    if not (root / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "anomalygen.cli", "build-shapenet", "--classes", str(classes),
                        "--set", f"difficulty={difficulty}", "--out", str(root), "--quiet"], check=True)
    return root


class Unit:
    """One row's result on one class, cached as <keep>/results/<row>/<class>.npz + .json."""

    def __init__(self, keep: Path, row: str, cls: str):
        self.npz = keep / "results" / row / f"{cls}.npz"
        self.meta = self.npz.with_suffix(".json")

    def done(self) -> bool:
        return self.npz.is_file() and self.meta.is_file()

    def write(self, scores: list[float], maps: list[np.ndarray], meta: dict) -> None:
        self.npz.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(self.npz, scores=np.array(scores), sizes=np.array([len(m) for m in maps]),
                            maps=np.concatenate(maps).astype(np.float32))
        self.meta.write_text(json.dumps(meta))

    def read(self) -> tuple[np.ndarray, list[np.ndarray], dict]:
        z = np.load(self.npz)
        maps = np.split(z["maps"], np.cumsum(z["sizes"])[:-1])
        return z["scores"], maps, json.loads(self.meta.read_text())


def score_all(det, tests) -> tuple[list[float], list[np.ndarray], dict]:
    from anomalygen.detectors.resources import Meter

    det.score(tests[0])  # untimed warm-up
    meter = Meter(det.device)
    cpu0 = time.process_time()
    results = [meter.time(det.score, s) for s in tests]
    res = meter.result()
    return [r[0] for r in results], [r[1] for r in results], {
        "ms_per_sample": res["ms_per_sample"], "cpu_ms_per_sample": 1000 * (time.process_time() - cpu0) / len(tests),
        "peak_rss_mib": res["peak_rss_mib"]}


def fit(name: str, config: dict, train, workdir: Path, model: Path, loader_workers: int):
    """A fitted detector, loaded from `model` when a previous run saved it; (detector, fit record)."""
    from anomalygen.detectors import get_detector
    from anomalygen.detectors.base import Detector, FitOptions

    record = model / "fit.json"
    if record.is_file():
        return Detector.load(model, "cpu"), json.loads(record.read_text())
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    det = get_detector(name)(config, "cpu").fit(train, FitOptions(workdir=workdir, loader_workers=loader_workers,
                                                                    task=model.name))
    rec = {"fit_wall_min": (time.perf_counter() - wall0) / 60, "fit_cpu_min": (cpu_seconds() - cpu0) / 60,
           "steps": det.training_info.get("steps"), "load": os.getloadavg()[0]}
    det.save(model)
    record.write_text(json.dumps(rec))
    return det, rec


def interval(lo_hi) -> str:
    return "-" if lo_hi is None else f"[{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]"


def summarize(keep: Path, row: str, classes: list[str], truth: dict) -> dict | None:
    from anomalygen.metrics import bootstrap_class_means, image_auroc, point_auroc

    units = [Unit(keep, row, c) for c in classes]
    if not all(u.done() for u in units):
        return None
    per, metas, ia, pa = [], [], [], []
    for cls, u in zip(classes, units):
        scores, maps, meta = u.read()
        labels, targets = truth[cls]
        per.append({"labels": labels, "scores": scores, "targets": targets, "maps": maps})
        metas.append(meta)
        ia.append(image_auroc(labels, scores))
        pa.append(point_auroc(targets, maps))
    ci = bootstrap_class_means(per)
    mean = lambda k: float(np.mean([m[k] for m in metas])) if all(m.get(k) is not None for m in metas) else None
    return {"row": row, "i_auroc": float(np.mean(ia)), "point_auroc": float(np.mean(pa)), "i_ci": ci["i_auroc"],
            "p_ci": ci["point_auroc"], "per_class": dict(zip(classes, zip(ia, pa))),
            **{k: mean(k) for k in ("fit_wall_min", "fit_cpu_min", "steps", "ms_per_sample", "cpu_ms_per_sample")},
            "peak_rss_mib": max(m["peak_rss_mib"] for m in metas)}


def f3(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def f1(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--difficulty", required=True, help="build-shapenet difficulty: easy | paper | hard | a number")
    ap.add_argument("--classes", type=int, default=8, help="build-shapenet --classes N (default 8)")
    ap.add_argument("--subset", default=None, help="run only these of the built classes (comma-separated); "
                    "the tables need every class, kept results count")
    ap.add_argument("--rows", default="nearest,btf,builtin,scratch")
    ap.add_argument("--train-seeds", default="0,1")
    ap.add_argument("--score-seeds", default="0,1,2")
    ap.add_argument("--ablation", default="gps:gps,gps:fps,gps:random,fps:fps,fps:gps,random:random",
                    help="TRAIN:SCORE sampler pairs ('' = none)")
    ap.add_argument("--quantiles", default="0.95",
                    help="imrnet.template_quantile values to rescore the builtin seed-0 models with, against the "
                         "recipe's ('' = none)")
    ap.add_argument("--recipe", default="imrnet-small")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the fitting / scoring process")
    ap.add_argument("--loader-workers", type=int, default=1, help="DataLoader workers of an IMRNet fit")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override an IMRNet recipe key, e.g. --set imrnet.train.epochs=20")
    ap.add_argument("--keep", default=None, help="data, models and results (re-used when present)")
    args = ap.parse_args(argv)
    import torch

    from anomalygen.detectors.resources import device_description
    from anomalygen.io import open_dataset
    from anomalygen.recipes import builtin_recipes, get_key, load_recipe, parse_overrides

    torch.set_num_threads(args.threads)
    keep = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-imrnet-"))
    keep.mkdir(parents=True, exist_ok=True)
    print(f"device: {device_description('cpu')}; torch {torch.__version__}, {args.threads} thread(s); "
          f"load average at the start {os.getloadavg()}", flush=True)
    data = build(args.classes, args.difficulty, keep / f"data-{args.difficulty}-{args.classes}")
    ds = open_dataset(data)
    classes = ds.classes()
    train = {c: [r.load() for r in ds.samples(c, "train")] for c in classes}
    tests = {c: [r.load() for r in ds.samples(c, "test")] for c in classes}
    truth = {c: (np.array([int(s.anomalous) for s in tests[c]]), [np.asarray(s.labels) for s in tests[c]])
             for c in classes}
    base = load_recipe(builtin_recipes()["detectors"])
    imr = get_key(load_recipe(builtin_recipes().get(args.recipe, args.recipe), parse_overrides(args.overrides)),
                  "imrnet", {}) or {}
    rows, train_seeds, score_seeds = args.rows.split(","), args.train_seeds.split(","), args.score_seeds.split(",")
    pairs = [p.split(":") for p in args.ablation.split(",") if p]
    tag = f"{args.difficulty}-{args.classes}"
    order = []

    def run_unit(row: str, cls: str, name: str, config: dict, model_key: str, scoring: dict | None = None,
                 refit: bool = False) -> None:
        unit = Unit(keep / tag, row, cls)
        order.append(row) if row not in order else None
        if unit.done():
            return
        det, rec = fit(name, config, train[cls], keep / tag / "work" / model_key / cls,
                       keep / tag / "models" / model_key / cls, args.loader_workers)
        if scoring:
            det = det.with_scoring(train[cls] if refit else None, **scoring)
        scores, maps, meta = score_all(det, tests[cls])
        unit.write(scores, maps, {**rec, **meta, "load_end": os.getloadavg()[0]})
        print(f"{row} {cls}: I-AUROC {f3(_auroc(truth[cls][0], scores))}, fit {f1(rec['fit_wall_min'])} min wall / "
              f"{f1(rec['fit_cpu_min'])} min CPU, {meta['ms_per_sample']:.0f} ms/sample (load {os.getloadavg()[0]:.1f})",
              flush=True)

    for cls in args.subset.split(",") if args.subset else classes:
        for row in rows:
            if row in ("nearest", "btf"):
                run_unit(row, cls, row, get_key(base, row, {}) or {}, row)
            elif row in IMRNET_ROWS:
                for ts in train_seeds:
                    config = {**imr, "train": {**imr.get("train", {}), "seed": int(ts)}}
                    if row == "scratch":
                        config["pretrained"] = None
                    for ss in score_seeds:
                        run_unit(f"{row}-t{ts}-s{ss}", cls, "imrnet", config, f"{row}-t{ts}", {"score_seed": int(ss)})
            else:
                raise SystemExit(f"unknown row {row!r}; use nearest, btf, builtin, scratch")
        for q in [float(q) for q in args.quantiles.split(",") if q]:  # Eq. 19 threshold, template refitted
            config = {**imr, "train": {**imr.get("train", {}), "seed": 0}}
            run_unit(f"builtin-t0-s0-q{q:g}", cls, "imrnet", config, "builtin-t0", {"template_quantile": q}, refit=True)
        for tr, sc in pairs:
            config = {**imr, "sampler": tr, "train": {**imr.get("train", {}), "seed": 0}}
            key = "builtin-t0" if tr == imr.get("sampler", "gps") else f"builtin-t0-{tr}"
            run_unit(f"ablation-{tr}-{sc}", cls, "imrnet", config, key, {"score_sampler": sc}, refit=True)

    print(f"\ndata: {data} (build-shapenet --classes {args.classes}, difficulty {args.difficulty}); IMRNet recipe "
          f"{args.recipe}, overrides {args.overrides or 'none'}")
    print(f"mean over {len(classes)} classes ({', '.join(classes)}); [95 % bootstrap interval]; times per class / sample")
    print("| row | I-AUROC | point AUROC | fit min wall | fit min CPU | steps | ms/sample wall | ms/sample CPU | "
          "peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    summaries = {}
    for row in order:
        s = summarize(keep / tag, row, classes, truth)
        if s is None:
            continue
        summaries[row] = s
        print(f"| {row} | {f3(s['i_auroc'])} {interval(s['i_ci'])} | {f3(s['point_auroc'])} {interval(s['p_ci'])} | "
              f"{f1(s['fit_wall_min'])} | {f1(s['fit_cpu_min'])} | {s['steps'] or '-'} | {f1(s['ms_per_sample'])} | "
              f"{f1(s['cpu_ms_per_sample'])} | {s['peak_rss_mib']:.0f} |")
    print(f"| paper Table 3 (40 classes, I-AUROC) | imrnet {PAPER_TABLE3['imrnet']} / btf-fpfh {PAPER_TABLE3['btf']} "
          f"| | | | | | | |")
    if pairs:
        print("\nTable 4 (centre samplers at training : scoring); paper: GPS 0.66 / 0.65, FPS 0.64 / 0.62, RS 0.55 / 0.61")
    print("\nper class (I-AUROC / point AUROC):")
    print("| row | " + " | ".join(classes) + " |")
    print("|---|" + "---|" * len(classes))
    for row, s in summaries.items():
        print(f"| {row} | " + " | ".join(f"{a:.3f} / {p:.3f}" for a, p in s["per_class"].values()) + " |")
    (keep / tag / "summary.json").write_text(json.dumps(summaries, indent=1))
    print(f"\nload average at the end {os.getloadavg()}")
    return 0


def _auroc(labels, scores) -> float | None:
    from anomalygen.metrics import image_auroc

    try:
        return image_auroc(labels, scores)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
