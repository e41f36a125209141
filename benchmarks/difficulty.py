"""Benchmark: BTF (PatchCore-FPFH) and the `nearest` baseline against the build's `difficulty` dial and
its acquisition keys, per defect type, with bootstrap intervals.

    python benchmarks/difficulty.py [--rows easy,paper,hard] [--keys pose=any,variation=3,views=2,density=2,noise=0.5]
                                    [--key-level paper] [--classes 40] [--test-per-class 36] [--table3]
                                    [--png benchmarks/difficulty.png] [--keep DIR [--reuse]] [--workers 2]
                                    [--group 8 [--finished-only]]
    python benchmarks/difficulty.py --render bagel,cookie,dowel,potato --size 128 --rows easy,paper --png ''

A row is a level (`easy`, `paper`, `hard` or a number t), optionally with recipe keys added after a `+`
(`paper+pose=none`, `1.5+variation=3`). `--keys K=V,...` adds one row per key at `--key-level`: that
level with the key set alone, every other acquisition key off, beside the level with all of them off
(its base row), so each row says how far that key moves BTF. For each row: `build-shapenet` with the
recipe's keys set, then BTF and `nearest` trained per class on the 4 normal templates and scored on
the test split. Printed (markdown):

* per row and detector: I-AUROC and point AUROC, the mean over classes with a 95 % bootstrap interval
  (test samples resampled within each class, then the mean over classes: 1,000 draws for I-AUROC, 200
  for point AUROC on a fixed 2,000-point subsample of each test cloud), and the defective samples the
  build did not write (ratio outside 1-10 %, or too few labelled points beyond tau: `rejected_samples`);
* per defect type (normal test samples plus that type's, per class, then the mean): BTF and nearest;
* the key rows: BTF and nearest I-AUROC with the key on, and the change against the base row;
* with `--table3`: per class, BTF's I-AUROC beside the BTF-FPFH figure of Anomaly-ShapeNet's Table 3.

With `--render CLASSES` the rows are `render-mvtec3d` builds (MVTec 3D-AD layout, `--size` pixels, 20 good and
30 defective test scans per class) and the second figure is the pixel AUROC over every pixel.

Builds and runs go to `--keep` (a temp folder without it); `--reuse` reads back a row whose build and
both runs are there, so one row can be made per invocation and all read back together at the end.
`--group 8` builds and runs the classes 8 at a time (group i in `--keep`/group-<i>, every 5th class of
the 40 in group 0, ...), so a long row yields figures for the groups it finished: `--reuse
--finished-only` pools the groups `--keep` holds (bootstrap draws of each class, then the mean over all
pooled classes) and makes none.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from scipy.stats import rankdata

from anomalygen.builds.difficulty import LEVELS, difficulty_value, level_name
from anomalygen.builds.settings import ACQUISITION_KEYS
from anomalygen.builds.shapenet import build_dataset
from anomalygen.detectors.engine import train_detector
from anomalygen.detectors.scores import read_scores, task_scores_file
from anomalygen.io import open_dataset
from anomalygen.io.samples import GOOD
from anomalygen.mesh.result import DEFECTS
from anomalygen.recipes import load_recipe

DETECTORS = ("btf", "nearest")
I_DRAWS, P_DRAWS, P_POINTS = 1000, 200, 2000

# Anomaly-ShapeNet (Li et al., CVPR 2024), Table 3, row BTF(FPFH), I-AUROC per class as printed
# (the paper's mean over the 40 classes: 0.528)
TABLE3_BTF_FPFH = {
    "cap0": 0.618, "cap3": 0.522, "helmet3": 0.444, "cup0": 0.586, "bowl4": 0.609, "vase3": 0.699,
    "headset1": 0.490, "eraser0": 0.719, "vase8": 0.668, "cap4": 0.520, "vase2": 0.546, "vase4": 0.510,
    "helmet0": 0.571, "bucket1": 0.633, "bottle3": 0.322, "vase0": 0.342, "bottle0": 0.344, "tap1": 0.546,
    "bowl0": 0.509, "bucket0": 0.401, "vase5": 0.409, "vase1": 0.219, "vase9": 0.268, "ashtray0": 0.420,
    "bottle1": 0.546, "tap0": 0.560, "phone": 0.671, "cup1": 0.610, "vase7": 0.518, "helmet2": 0.542,
    "cap5": 0.586, "shelf0": 0.609, "bowl5": 0.699, "bowl3": 0.490, "helmet1": 0.719, "bowl1": 0.668,
    "headset0": 0.520, "bag0": 0.546, "bowl2": 0.510, "jar": 0.424,
}
TABLE3_MEAN = 0.528
# the released data names two of Table 3's columns differently: "jar" is jar0 and, by elimination
# (the other 38 names match), "phone" is microphone0
TABLE3_NAMES = {"jar0": "jar", "microphone0": "phone"}


def table3_figure(cls: str) -> float:
    """Table 3's BTF-FPFH I-AUROC of a class of the 40 (NaN for a class outside them)."""
    return TABLE3_BTF_FPFH.get(TABLE3_NAMES.get(cls, cls), float("nan"))


# ------------------------------------------------------------------ rows

def parse_row(spec: str) -> tuple[float, dict, str]:
    """'paper+pose=any+noise=0.5' -> (t, {key: value}, folder-safe name)."""
    level, *keys = spec.split("+")
    t = difficulty_value(float(level) if level.replace(".", "", 1).isdigit() else level)
    over = {}
    for kv in keys:
        k, _, v = kv.partition("=")
        over[k.strip()] = yaml.safe_load(v)
    name = level_name(t) + "".join(f"+{k}={v}" for k, v in over.items())
    return t, over, name


def key_rows(keys: str, level: str) -> list[str]:
    """The base row (every acquisition key off at `level`) and one row per key alone."""
    off = "+".join(f"{k}={0 if k != 'pose' else 'none'}" for k in ACQUISITION_KEYS)
    rows = [f"{level}+{off}"]
    for kv in keys.split(","):
        k = kv.split("=")[0]
        rows.append(f"{level}+" + "+".join(f"{o}={0 if o != 'pose' else 'none'}" if o != k else kv
                                         for o in ACQUISITION_KEYS))
    return rows


def short_name(name: str) -> str:
    """A row's name without the keys that are off (for tables)."""
    level, *keys = name.split("+")
    on = [k for k in keys if k.split("=")[1] not in ("0", "none", "0.0")]
    return level + ("+" + "+".join(on) if on else ("" if not keys else " (keys off)"))


def build_row(spec: str, classes: str, test: int, root: Path, workers: int, reuse: bool,
              render_size: int = 0) -> tuple[Path, float]:
    """Build one row's data: build-shapenet, or with `render_size` render-mvtec3d at that size with 20 good
    and 30 defective test scans per class (BENCHMARKS.md)."""
    t, over, name = parse_row(spec)
    data = root / f"data-{name}"
    if reuse and (data / "manifest.json").is_file():
        return data, float("nan")
    t0 = time.perf_counter()
    if render_size:
        from anomalygen.builds.render import render_mvtec3d

        counts = {"size": render_size, "counts.test_good": 20, "counts.test_per_defect": 6}
        render_mvtec3d(data, classes.split(","), load_recipe("render-mvtec3d", {"difficulty": t, **counts, **over}),
                       workers=workers, overwrite=True)
        return data, time.perf_counter() - t0
    # binary PCD (the same float32 values as the ASCII files; a third of the disk) and no meshes
    files = {"dataset.pcd_binary": True, "dataset.write_meshes": "none"}
    build_dataset(data, load_recipe("anomaly-shapenet", {"difficulty": t, **files, **over}), classes=classes,
                  test_per_class=test, workers=workers, overwrite=True)
    return data, time.perf_counter() - t0


def run_detector(det: str, data: Path, root: Path, name: str, reuse: bool) -> tuple[dict, float]:
    run = root / f"{det}-{name}"
    if reuse and (run / "metrics.json").is_file():
        return json.loads((run / "metrics.json").read_text()), float("nan")
    t0 = time.perf_counter()
    res = train_detector(det, data, run, overrides={"run.threads": 1}, overwrite=True, progress=False)
    return res["metrics"], time.perf_counter() - t0


# ------------------------------------------------------------------ figures

def fast_auroc(y: np.ndarray, s: np.ndarray) -> float:
    """AUROC by the rank-sum (Mann-Whitney) formula, ties at their mean rank; NaN with one class only."""
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y.astype(bool)].sum() - pos * (pos + 1) / 2) / (pos * neg))


def class_figures(y: np.ndarray, scores: np.ndarray, labels: list, maps: list, rng: np.random.Generator) -> dict:
    """One class's I-AUROC and point AUROC, and their bootstrap draws (test samples resampled)."""
    n = len(y)
    i_draws = np.full(I_DRAWS, np.nan)
    for k in range(I_DRAWS):
        idx = rng.integers(0, n, n)
        i_draws[k] = fast_auroc(y[idx], scores[idx])
    keep = [rng.choice(len(lab), min(P_POINTS, len(lab)), replace=False) for lab in labels]
    lab_s = [labels[i][keep[i]] for i in range(n)]
    map_s = [maps[i][keep[i]] for i in range(n)]
    p_draws = np.full(P_DRAWS, np.nan)
    for k in range(P_DRAWS):
        idx = rng.integers(0, n, n)
        p_draws[k] = fast_auroc(np.concatenate([lab_s[i] for i in idx]), np.concatenate([map_s[i] for i in idx]))
    return {"i": fast_auroc(y, scores), "p": fast_auroc(np.concatenate(labels), np.concatenate(maps)),
            "i_draws": i_draws, "p_draws": p_draws}


def interval(draws: list[np.ndarray]) -> tuple[float, float]:
    """95 % percentile interval of the mean over classes, draw by draw (NaN draws of a class skipped)."""
    means = np.nanmean(np.vstack(draws), axis=0)
    return float(np.nanpercentile(means, 2.5)), float(np.nanpercentile(means, 97.5))


def truth(sample) -> np.ndarray:
    """A test sample's per-point (cloud) or per-pixel (scan, flattened) 0/1 labels."""
    mask = getattr(sample, "mask", None)
    return np.asarray(sample.labels if mask is None else mask.ravel() > 0, np.uint8)


def _evaluate_part(spec: str, classes: str, test: int, root: Path, workers: int, reuse: bool,
                   render_size: int = 0) -> dict:
    """One row on one group of classes (its own build and runs in `root`): the raw figures that
    `evaluate_row` pools over the groups (per class, bootstrap draws, per defect type)."""
    t, over, name = parse_row(spec)
    data, build_s = build_row(spec, classes, test, root, workers, reuse, render_size)
    manifest = json.loads((data / "manifest.json").read_text())
    rejected = manifest.get("rejected_samples", [])
    anomalous_planned = (manifest["counts"]["anomalous"] if "counts" in manifest else
                         sum(r["defect"] != GOOD for r in manifest["samples"])) + len(rejected)
    ds = open_dataset(data)
    out = {"build_s": build_s, "rejected": len(rejected), "anomalous_planned": anomalous_planned,
           "rejected_by_type": {d: sum(r["defect"] == d for r in rejected) for d in DEFECTS}}
    labels_of = {}
    for det in DETECTORS:
        metrics, run_s = run_detector(det, data, root, name, reuse)
        rng = np.random.default_rng(0)
        per_class, per_type, i_draws, p_draws = {}, {d: [] for d in DEFECTS}, [], []
        for row in metrics["rows"]:
            cls = row["test"]
            sc = read_scores(task_scores_file(root / f"{det}-{name}", cls))
            if cls not in labels_of:
                labels_of[cls] = {(r.defect, r.name): truth(r.load()) for r in ds.samples(cls, "test")}
            labels = [labels_of[cls][d, n] for d, n in zip(sc["defects"], sc["names"])]  # MVTec names repeat per type
            maps = [np.asarray(m, np.float64).ravel() for m in sc["maps"]]
            scores = np.asarray(sc["scores"], np.float64)
            y = np.array([int(lab.any()) for lab in labels])
            f = class_figures(y, scores, labels, maps, rng)
            per_class[cls] = (f["i"], f["p"])
            i_draws.append(f["i_draws"])
            p_draws.append(f["p_draws"])
            defects = list(sc["defects"])
            for d in DEFECTS:
                sel = [k for k, dd in enumerate(defects) if dd in (d, GOOD)]
                ys = y[sel]
                if ys.any() and not ys.all():
                    per_type[d].append((fast_auroc(ys, scores[sel]),
                                        fast_auroc(np.concatenate([labels[k] for k in sel]),
                                                   np.concatenate([maps[k] for k in sel]))))
        out[det] = {"per_class": per_class, "run_s": run_s, "i_draws": i_draws, "p_draws": p_draws,
                    "per_type": per_type}
    return out


def class_groups(classes: str, size: int) -> list[str]:
    """`classes` ('a,b' or N: the first N of the 40) in groups of about `size` (0: one group), each
    'a,b,...'; a group takes every k-th class, so the groups that finish first span the categories."""
    if classes.strip().isdigit():
        from anomalygen.shapes.sources import open_source

        names = open_source(None).classes()[:int(classes)]
    else:
        names = [c.strip() for c in classes.split(",") if c.strip()]
    k = -(-len(names) // size) if size else 1
    return [",".join(names[i::k]) for i in range(k)]


def group_done(spec: str, root: Path) -> bool:
    """Whether `root` holds this row's build and both detectors' finished runs."""
    name = parse_row(spec)[2]
    return (root / f"data-{name}" / "manifest.json").is_file() and all(
        (root / f"{det}-{name}" / "metrics.json").is_file() for det in DETECTORS)


def evaluate_row(spec: str, classes: str, test: int, root: Path, workers: int, reuse: bool,
                 render_size: int = 0, group: int = 0, finished_only: bool = False) -> dict:
    """Build one row, run both detectors, and gather every figure the tables print. With `group`, the
    classes are built and run `group` at a time (each group in root/group-<i>, so a long row yields
    figures for the groups it finished); `finished_only` counts only the groups root already holds."""
    t, over, name = parse_row(spec)
    groups = class_groups(classes, group) if group else [classes]
    parts = []
    for i, cls in enumerate(groups):
        where = root / f"group-{i}" if group else root
        if finished_only and not group_done(spec, where):
            continue
        parts.append(_evaluate_part(spec, cls, test, where, workers, reuse, render_size))
    if not parts:
        raise SystemExit(f"row {spec}: no finished group of classes in {root}")
    out = {"spec": spec, "name": name, "t": t, "keys": over,
           "build_s": sum(p["build_s"] for p in parts),
           "rejected": sum(p["rejected"] for p in parts),
           "anomalous_planned": sum(p["anomalous_planned"] for p in parts),
           "rejected_by_type": {d: sum(p["rejected_by_type"][d] for p in parts) for d in DEFECTS}}
    for det in DETECTORS:
        per_class = {c: v for p in parts for c, v in p[det]["per_class"].items()}
        per_type = {d: [v for p in parts for v in p[det]["per_type"][d]] for d in DEFECTS}
        out[det] = {
            "per_class": per_class, "run_s": sum(p[det]["run_s"] for p in parts),
            "mean": tuple(float(np.mean([v[i] for v in per_class.values()])) for i in (0, 1)),
            "i_ci": interval([d for p in parts for d in p[det]["i_draws"]]),
            "p_ci": interval([d for p in parts for d in p[det]["p_draws"]]),
            "per_defect": {d: tuple(float(np.mean([v[i] for v in vs])) for i in (0, 1)) for d, vs in per_type.items() if vs},
        }
    return out


# ------------------------------------------------------------------ tables

def _ci(r: dict, det: str, which: int) -> str:
    lo, hi = r[det]["i_ci"] if which == 0 else r[det]["p_ci"]
    return f"{r[det]['mean'][which]:.3f} [{lo:.3f}, {hi:.3f}]"


def print_tables(results: list[dict], keyed: list[dict], table3: bool) -> None:
    rows = results + keyed
    print("Means over classes, 95 % bootstrap intervals (test samples resampled within each class)")
    print("| row | BTF I-AUROC | BTF point AUROC | nearest I-AUROC | nearest point AUROC | not written (ratio or depth) | "
          "build s / BTF s / nearest s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {short_name(r['name'])} (t={r['t']:g}) | {_ci(r, 'btf', 0)} | {_ci(r, 'btf', 1)} | "
              f"{_ci(r, 'nearest', 0)} | {_ci(r, 'nearest', 1)} | {r['rejected']} of {r['anomalous_planned']} | "
              f"{r['build_s']:.0f} / {r['btf']['run_s']:.0f} / {r['nearest']['run_s']:.0f} |")
    for det in DETECTORS:
        print(f"\n{det}: I-AUROC / point AUROC per defect type (normal test samples + that type, per class, mean)")
        print("| defect | " + " | ".join(short_name(r["name"]) for r in rows) + " |")
        print("|---" * (len(rows) + 1) + "|")
        for d in DEFECTS:
            cells = [f"{r[det]['per_defect'][d][0]:.3f} / {r[det]['per_defect'][d][1]:.3f}"
                     if d in r[det]["per_defect"] else "-" for r in rows]
            print(f"| {d} | " + " | ".join(cells) + " |")
        print("| **all** | " + " | ".join(f"{r[det]['mean'][0]:.3f} / {r[det]['mean'][1]:.3f}" for r in rows) + " |")
    print("\nDefective samples not written (ratio outside 1-10 %, or too few labelled points beyond tau), per type")
    print("| row | " + " | ".join(DEFECTS) + " |")
    print("|---" * (len(DEFECTS) + 1) + "|")
    for r in rows:
        print(f"| {short_name(r['name'])} | " + " | ".join(str(r["rejected_by_type"][d]) for d in DEFECTS) + " |")
    if keyed:
        base = keyed[0]
        print(f"\nOne acquisition key at a time at t = {base['t']:g} (base: every key off)")
        print("| key | BTF I-AUROC | change vs base | nearest I-AUROC | change vs base |")
        print("|---|---|---|---|---|")
        for r in keyed:
            on = short_name(r["name"]).partition("+")[2] or "(base: none)"
            print(f"| {on} | {_ci(r, 'btf', 0)} | {r['btf']['mean'][0] - base['btf']['mean'][0]:+.3f} | "
                  f"{_ci(r, 'nearest', 0)} | {r['nearest']['mean'][0] - base['nearest']['mean'][0]:+.3f} |")
    if not table3:
        return
    print("\nPer class: BTF I-AUROC on this build vs BTF-FPFH in Anomaly-ShapeNet Table 3")
    print("| class | Table 3 | " + " | ".join(short_name(r["name"]) for r in results) + " |")
    print("|---" * (len(results) + 2) + "|")
    classes = list(results[0]["btf"]["per_class"])
    for c in classes:
        print(f"| {c} | {table3_figure(c):.3f} | "
              + " | ".join(f"{r['btf']['per_class'][c][0]:.3f}" for r in results) + " |")
    ref = np.array([table3_figure(c) for c in classes])
    means = [np.array([r["btf"]["per_class"][c][0] for c in classes]) for r in results]
    print(f"| **mean** | {np.nanmean(ref):.3f} | " + " | ".join(f"{m.mean():.3f}" for m in means) + " |")
    print("| mean gap (build - Table 3) | - | " + " | ".join(f"{np.nanmean(m - ref):+.3f}" for m in means) + " |")
    print("| mean abs gap | - | " + " | ".join(f"{np.nanmean(np.abs(m - ref)):.3f}" for m in means) + " |")
    print(f"(Table 3's mean over its 40 classes: {TABLE3_MEAN}; over the classes above: {np.nanmean(ref):.3f})")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [r["t"] for r in results]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for i, (ax, title) in enumerate(zip(axes, ("I-AUROC", "point AUROC"))):
        for d in DEFECTS:
            ys = [r["btf"]["per_defect"].get(d, (np.nan, np.nan))[i] for r in results]
            ax.plot(ts, ys, marker="o", lw=1.2, label=d)
        ax.plot(ts, [r["btf"]["mean"][i] for r in results], color="k", lw=2.5, marker="s", label="BTF, all")
        lo = [r["btf"]["i_ci" if i == 0 else "p_ci"][0] for r in results]
        hi = [r["btf"]["i_ci" if i == 0 else "p_ci"][1] for r in results]
        ax.fill_between(ts, lo, hi, color="k", alpha=0.12)
        ax.plot(ts, [r["nearest"]["mean"][i] for r in results], color="m", lw=2, ls="-.", marker="^",
                label="nearest, all")
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        if i == 0:
            ax.axhline(TABLE3_MEAN, color="r", ls="--", lw=1, label="Table 3 BTF-FPFH mean")
        ax.set_xlabel("difficulty t (" + ", ".join(f"{k} = {v:g}" for k, v in LEVELS.items()) + ")")
        ax.set_title(f"{title} vs difficulty (BTF per type, nearest)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AUROC")
    axes[1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="easy,paper,hard", help="comma-separated levels, each optionally +KEY=VALUE...")
    ap.add_argument("--keys", default="", help="one row per KEY=VALUE at --key-level, e.g. pose=any,variation=3")
    ap.add_argument("--key-level", default="paper")
    ap.add_argument("--classes", default="ashtray0,bag0", help="names, or N for the first N of the 40")
    ap.add_argument("--test-per-class", type=int, default=36)
    ap.add_argument("--table3", action="store_true", help="per-class comparison with Anomaly-ShapeNet Table 3")
    ap.add_argument("--png", default="benchmarks/difficulty.png")
    ap.add_argument("--keep", default=None, help="folder for the builds and runs (default: a temp folder)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="read back the rows --keep already holds instead of remaking them")
    ap.add_argument("--render", default=None, metavar="CLASSES",
                    help="rows of render-mvtec3d instead (these classes, 20 good + 30 defective test scans each)")
    ap.add_argument("--size", type=int, default=128, help="render-mvtec3d image size with --render")
    ap.add_argument("--group", type=int, default=0,
                    help="build and run the classes this many at a time (each group in --keep/group-<i>)")
    ap.add_argument("--finished-only", action="store_true",
                    help="with --reuse and --group: count only the groups --keep holds finished, make none")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.keep or tmp)
        print(f"classes {a.render or a.classes}, {a.test_per_class} test samples per class, load average "
              f"{open('/proc/loadavg').read().split()[0]} at start, {os.cpu_count()} CPUs", flush=True)
        results, keyed = [], []
        for spec in [s for s in a.rows.split(",") if s]:
            results.append(evaluate_row(spec, a.render or a.classes, a.test_per_class, root, a.workers, a.reuse,
                                        a.size if a.render else 0, a.group, a.finished_only))
            r = results[-1]
            print(f"  {r['name']} ({len(r['btf']['per_class'])} classes): BTF {r['btf']['mean'][0]:.3f}, nearest {r['nearest']['mean'][0]:.3f}",
                  file=sys.stderr, flush=True)
        for spec in key_rows(a.keys, a.key_level) if a.keys else []:
            keyed.append(evaluate_row(spec, a.render or a.classes, a.test_per_class, root, a.workers, a.reuse,
                                      a.size if a.render else 0, a.group, a.finished_only))
            r = keyed[-1]
            print(f"  {r['name']}: BTF {r['btf']['mean'][0]:.3f}, nearest {r['nearest']['mean'][0]:.3f}",
                  file=sys.stderr, flush=True)
        print_tables(results, keyed, a.table3)
        print(f"load average at the end: {open('/proc/loadavg').read().split()[0]}")
        if a.png and len(results) > 1:
            plot(results, Path(a.png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
