"""Benchmark: 3DzAL (zal3d-small) against BTF and `nearest`, zero-shot, on rendered classes, with the
paper's ablations (Tables 3-4), the measurements that set zal3d-small's Eq. 2 form and fusion weights,
and the CPU time of a training step.

    python benchmarks/zal3d.py --difficulty easy [--size 128] [--square bagel,cable_gland,carrot,foam]
                               [--tuning cookie,dowel,peach,potato] [--tuning-tasks 2] [--seeds 0,1]
                               [--ablations bagel,carrot] [--recipe zal3d-small] [--train 10] [--draws 1000]
                               [--only steps|tuning|square] [--keep DIR]

Data: one `render-mvtec3d` root at --size px and --difficulty holding the square's classes and the
tuning classes: --train training scans, 20 good and 6 per defect type (30 defective) test scans per
class. Every detector reads the same files at the same size.

steps   the CPU time of zal3d's training, per step: building one batch of items (FPFH is computed once
        per task; items are pseudo-anomalous patches, built in DataLoader workers) against one optimizer
        step on a built batch, and a short fit's wall time per step with 0 and 1 loader workers, on the
        tiny path (zal3d-tiny, 64 px, 3 classes) and on zal3d-small.
tuning  on the tuning classes only (tasks A->B in a ring, the other tuning classes task-irrelevant), the
        measurements behind zal3d-small's settings: trainings that each change one setting of the recipe
        (Eq. 2 forms: signed at w_rd 100, the paper's, absolute, squared, none; adding clusters inserted,
        the paper's, or lifted), each scored for every learned_weight (E_theta's length in the bank) and
        classifier weight w_c (w_d = 1) of a grid: pixel AUPRO and image AUROC with intervals.
square  the 4 x 3 zero-shot square (train on A, test on B != A, every other class of the root
        task-irrelevant): nearest, BTF (recipe `detectors`) and 3DzAL (--recipe, --seeds), and the
        ablations: Table 3 (baseline = the seed-0 fit's bank rebuilt from FPFH alone, i.e. BTF at zal3d's
        grid; +L_con (w_rd = 0); +L_rd; +C_w (eta = 0); +IP = 3DzAL) and Table 4 (adding only, removing
        only); the rows that need trainings of their own run at seed 0 on the --ablations training classes.

Metrics: pixel AUPRO@0.3 (btf variant, 100 thresholds) and image AUROC per cell, row means, the mean of
the square with a 95 % bootstrap interval (test scans resampled within each class, --draws draws shared
by every row, anomalygen.intervals), 3DzAL minus BTF paired. Per-cell results are kept under
--keep/results (a killed run continues). Figures go to benchmarks/RESULTS.md by hand, with the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from anomalygen.detectors import get_detector
from anomalygen.detectors.base import FitOptions
from anomalygen.detectors.resources import device_description
from anomalygen.intervals import (ResampledAUPRO, ResampledAUROC, class_draws, difference, mean_interval,
                                  replicates)
from anomalygen.io import open_dataset
from anomalygen.recipes import builtin_recipes, load_recipe

SQUARE = "bagel,cable_gland,carrot,foam"
TUNING = "cookie,dowel,peach,potato"
COUNTS = {"validation": 1, "test_good": 20, "test_per_defect": 6}
# Thin classes (carrot, dowel) at `paper` can need more than render-mvtec3d.yaml's 12 draws to place a visible
# scratch; more draws change nothing where the first draws succeed. 100 is the most the recipe accepts.
MAX_TRIES = 100
FPR_LIMIT, THRESHOLDS = 0.3, 100
# trainings measured on the tuning classes, each one change from the recipe: (name, zal3d settings)
TUNING_TRAININGS = [("recipe", {}),
                    ("Eq. 2 signed, w_rd 100 (paper)", {"rd_form": "signed", "w_rd": 100.0}),
                    ("Eq. 2 absolute, w_rd 100", {"rd_form": "absolute", "w_rd": 100.0}),
                    ("Eq. 2 squared, w_rd 100", {"rd_form": "squared", "w_rd": 100.0}),
                    ("no L_rd (w_rd 0)", {"w_rd": 0.0}),
                    ("adding inserted (paper)", {"attach": "inserted"}),
                    ("adding lifted", {"attach": "lifted"})]
W_C_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)           # classifier weight (w_d = 1)
LW_GRID = (0.0, 0.25, 0.5, 1.0)                     # learned_weight: E_theta's share of the bank


# -- data ------------------------------------------------------------------------------------
def render(root: Path, classes: list[str], size: int, difficulty: str, train: int) -> Path:
    if not root.exists():
        sets = [f"difficulty={difficulty}", f"counts.train={train}"] + [f"counts.{k}={v}" for k, v in COUNTS.items()]
        sets.append(f"max_tries={MAX_TRIES}")
        cmd = [sys.executable, "-m", "anomalygen.cli", "render-mvtec3d", "--classes", ",".join(classes),
               "--size", str(size), "--out", str(root)]
        for s in sets:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return root


def section(recipe: str, name: str) -> dict:
    return load_recipe(builtin_recipes().get(recipe, recipe)).get(name, {})


# -- one cell: a fitted detector scored on a test class --------------------------------------
class Cell:
    """What a row needs of one (train, test) cell: per test scan its label, its gt mask, and per score
    variant the object score and the map."""

    def __init__(self, ds, test: str):
        self.refs = ds.samples(test, "test")
        self.samples = [r.load() for r in self.refs]
        self.labels = np.array([int(s.anomalous) for s in self.samples])
        self.masks = [np.asarray(s.mask) for s in self.samples]
        self._prepared: dict[str, list[np.ndarray]] = {}

    def prepared(self, det) -> list[np.ndarray]:
        """The scans as a fitted zal3d prepares them (resized, background removed), computed once per
        preparation (image settings and seed), whatever model scores them."""
        key = json.dumps([dataclasses.asdict(det.cfg.image_settings()), det.cfg.train.seed], sort_keys=True)
        if key not in self._prepared:
            self._prepared[key] = [det._prepare(s.xyz) for s in self.samples]
        return self._prepared[key]


def score_cell(det, cell: Cell, variants) -> tuple[dict[str, tuple[list, list]], dict]:
    """{variant: (scores, maps)} and {"ms", "cpu_ms"} per scan. variants(det, sample) -> {name: (score, map)}
    combines what the detector returns per scan (zal3d: its score parts; others: score())."""
    out: dict[str, tuple[list, list]] = {}
    t0, c0 = time.perf_counter(), cpu_seconds()
    for s in cell.samples:
        for name, (score, amap) in variants(det, s).items():
            out.setdefault(name, ([], []))
            out[name][0].append(float(score))
            out[name][1].append(np.asarray(amap, np.float32))
    n = len(cell.samples)
    return out, {"ms": 1000 * (time.perf_counter() - t0) / n, "cpu_ms": 1000 * (cpu_seconds() - c0) / n}


def plain(det, sample) -> dict:
    return {"": det.score(sample)}


def zal3d_cells(det, cell: Cell, etas: tuple[float, ...], timed: int = 5) -> tuple[list, dict]:
    """A fitted zal3d's per-cell parts (detector.Cells) of every test scan, and {"ms", "cpu_ms"}: the time of
    score() (preparation, FPFH, both networks, the perturbation) per scan, over `timed` scans after one."""
    out = [det.cells(x, getattr(s, "rgb", None), etas) for s, x in zip(cell.samples, cell.prepared(det))]
    det.score(cell.samples[0])
    t0, c0 = time.perf_counter(), cpu_seconds()
    for s in cell.samples[1:1 + timed]:
        det.score(s)
    n = len(cell.samples[1:1 + timed])
    return out, {"ms": 1000 * (time.perf_counter() - t0) / n, "cpu_ms": 1000 * (cpu_seconds() - c0) / n}


def zal3d_variants(det, cell: Cell, cells: list, w_c: float, eta: float, classifier: bool = True) -> dict:
    """{variant: (scores, maps)} of one fitted zal3d with its current bank: "dist" (distance only), and with
    the classifier, "cls" (+ w_c x C_w without perturbation) and "cls+ip" (with perturbation eta)."""
    out: dict[str, tuple[list, list]] = {}
    for s, c in zip(cell.samples, cells):
        parts = det.weigh(c, tuple(s.xyz.shape[:2]))
        d_score, d_map = parts["dist"]
        got = {"dist": (d_score, d_map)}
        if classifier:
            for key, e in (("cls", 0.0), ("cls+ip", eta)):
                c_score, c_map = parts["cls"][e]
                got[key] = (d_score + w_c * c_score, d_map + w_c * c_map)
        for name, (score, amap) in got.items():
            out.setdefault(name, ([], []))
            out[name][0].append(float(score))
            out[name][1].append(np.asarray(amap, np.float32))
    return out


def metrics(cell: Cell, scores, maps, draws: np.ndarray) -> dict:
    """Full-set AUPRO / I-AUROC and their bootstrap replicates under the test class's draws."""
    a_full, a_rep = replicates(ResampledAUPRO(cell.masks, maps, FPR_LIMIT, THRESHOLDS), draws)
    i_full, i_rep = replicates(ResampledAUROC(cell.labels, scores), draws)
    return {"aupro": a_full, "aupro_rep": a_rep, "i_auroc": i_full, "i_auroc_rep": i_rep}


class Results:
    """Per-cell metrics on disk: RESULTS/<row>/<seed>/<train>-<test>.npz (a killed run continues)."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, row: str, seed, train: str, test: str) -> Path:
        return self.root / row.replace(" ", "_").replace("/", "_") / str(seed) / f"{train}-{test}.npz"

    def has(self, *key) -> bool:
        return self.path(*key).is_file()

    def put(self, key, m: dict, extra: dict) -> None:
        p = self.path(*key)
        p.parent.mkdir(parents=True, exist_ok=True)
        np.savez(p, **{k: np.asarray(v) for k, v in m.items()}, extra=json.dumps(extra))

    def get(self, *key) -> dict:
        z = np.load(self.path(*key))
        d = {k: z[k] for k in z.files if k != "extra"}
        d.update(json.loads(str(z["extra"])))
        return d


# -- fitting -----------------------------------------------------------------------------------
def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (loader workers) so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def fit(name: str, config: dict, ds, train: str, irrelevant: list[str], workers: int = 0):
    """A detector fitted on `train`'s training scans (pseudo anomalies from `irrelevant`'s); (it, wall seconds,
    CPU seconds: on a shared machine the CPU time is the figure that says what a quiet one would take)."""
    det = get_detector(name)(config, "cpu")
    refs = ds.samples(train, "train")
    aux = [r for c in irrelevant for r in ds.samples(c, "train")]
    t0, c0 = time.perf_counter(), cpu_seconds()
    det.fit(refs, FitOptions(irrelevant=aux, progress=False, loader_workers=workers))
    return det, time.perf_counter() - t0, cpu_seconds() - c0


def zal3d_config(base: dict, seed: int, **changes) -> dict:
    cfg = {**base, **changes}
    cfg["train"] = {**base.get("train", {}), "seed": seed}
    return cfg


# -- the square ------------------------------------------------------------------------------
FULL = "3DzAL"
BASELINE = "T3 baseline (FPFH bank)"
DERIVED = {"dist": "T3 +L_con +L_rd", "cls": "T3 +C_w (eta 0)", "cls+ip": FULL}  # score variants of a 3DzAL fit
TRAINED_ABLATIONS = [("T3 +L_con (w_rd 0)", {"w_rd": 0.0}, False), ("T4 adding only", {"kinds": ["adding"]}, True),
                     ("T4 removing only", {"kinds": ["removing"]}, True)]
ABLATION_ROWS = [BASELINE, "T3 +L_con (w_rd 0)", DERIVED["dist"], DERIVED["cls"], FULL, "T4 adding only",
                 "T4 removing only"]


def run_square(ds, args, results: Results, draws: dict, zbase: dict, workers: int) -> None:
    """Fill `results` for every row and cell of the square (metrics and timings per cell). The Table 3
    baseline is the seed-0 3DzAL fit with its bank rebuilt from FPFH alone (BTF at zal3d's grid); the
    trained ablations run for the training classes in --ablations."""
    square, classes = args.square.split(","), ds.classes()
    eta, w_c = float(zbase.get("eta", 0.1)), float(zbase.get("w_c", 1.0))
    cells = {t: None for t in square}

    def cell(test):
        if cells[test] is None:
            cells[test] = Cell(ds, test)
        return cells[test]

    def record(seed, a, b, out_by_variant, times, names):
        for variant, row_name in names.items():
            scores, maps = out_by_variant[variant]
            results.put((row_name, seed, a, b), metrics(cell(b), scores, maps, draws[b]), times)

    for a in square:
        tests = [b for b in square if b != a]
        for name in [d for d in ("nearest", "btf") if d in args.detectors]:
            if all(results.has(name, 0, a, b) for b in tests):
                continue
            det, fit_s, cpu_s = fit(name, section("detectors", name), ds, a, [])
            for b in tests:
                out, ms = score_cell(det, cell(b), plain)
                record(0, a, b, out, {"fit_s": fit_s, "cpu_s": cpu_s, **ms}, {"": name})
            print(f"  {name} {a}: fit {fit_s:.0f} s ({cpu_s:.0f} CPU s)", flush=True)
        jobs = [(FULL, s, {}, True) for s in args.seeds] if "zal3d" in args.detectors else []
        if a in args.ablations:
            jobs += [(row, 0, changes, classifier) for row, changes, classifier in TRAINED_ABLATIONS]
        for row, seed, changes, classifier in jobs:
            for b in tests:
                names = DERIVED if row == FULL else {"cls+ip": row} if classifier else {"dist": row}
                baseline = row == FULL and seed == 0
                if all(results.has(n, seed, a, b) for n in names.values()) and \
                        (not baseline or results.has(BASELINE, 0, a, b)):
                    continue
                irrelevant = [c for c in classes if c not in (a, b)]
                det, fit_s, cpu_s = fit("zal3d", zal3d_config(zbase, seed, **changes), ds, a, irrelevant, workers)
                parts, ms = zal3d_cells(det, cell(b), (0.0, eta) if classifier else ())
                times = {"fit_s": fit_s, "cpu_s": cpu_s, "steps": det.training_info.get("steps"), **ms}
                record(seed, a, b, zal3d_variants(det, cell(b), parts, w_c, eta, classifier), times, names)
                if baseline:
                    det.cfg = dataclasses.replace(det.cfg, learned_features=False)
                    det.fit_bank(det.training_cells(ds.samples(a, "train")))
                    record(0, a, b, zal3d_variants(det, cell(b), parts, w_c, eta, False), times, {"dist": BASELINE})
                print(f"  {row} seed {seed} {a}->{b}: fit {fit_s:.0f} s ({cpu_s:.0f} CPU s), {ms['ms']:.0f} ms/scan, "
                      f"steps {det.training_info.get('steps')}", flush=True)


def square_tables(results: Results, args) -> str:
    """The matrices, the means with intervals and the paired differences over the cells of the square that
    nearest, BTF and 3DzAL have all run (a stopped run reports what it finished, and says which cells)."""
    square = args.square.split(",")

    def seeds_of(row):
        base = results.root / row.replace(" ", "_").replace("/", "_")
        return sorted(int(p.name) for p in base.iterdir()) if base.is_dir() else []

    every = [(a, b) for a in square for b in square if b != a]
    cells = [(a, b) for a, b in every if all(any(results.has(r, s, a, b) for s in seeds_of(r))
                                             for r in ("nearest", "btf", FULL))]
    if not cells:
        return "no cell of the square has results for nearest, btf and 3DzAL yet"

    def covering(row, on):
        """The row's seeds that ran every cell of `on` (a row's mean is over the same seeds on every cell)."""
        return [s for s in seeds_of(row) if all(results.has(row, s, a, b) for a, b in on)]

    def cell_value(row, a, b, metric, on=None):
        """(full, replicates) averaged over the row's seeds (those covering every cell of `on` when given)."""
        seeds = covering(row, on) if on is not None else seeds_of(row)
        got = [results.get(row, s, a, b) for s in seeds if results.has(row, s, a, b)]
        if not got:
            return None
        return (float(np.mean([g[metric] for g in got])), np.mean([g[metric + "_rep"] for g in got], axis=0))

    def summary(rows, on):
        out = ["| row | seeds | pixel AUPRO % | image AUROC % | per-seed AUPRO means | fit s / task (CPU s) | "
               "ms / scan (CPU ms) |", "|---|---|---|---|---|---|---|"]
        for row in rows:
            vals = {m: [cell_value(row, a, b, m, on) for a, b in on] for m in ("aupro", "i_auroc")}
            if any(v is None for v in vals["aupro"]):
                out.append(f"| {row} | not run on these cells |  |  |  |  |  |")
                continue
            seeds = covering(row, on)
            per_seed = [np.mean([results.get(row, s, a, b)["aupro"] for a, b in on]) for s in seeds]
            t = np.array([[results.get(row, s, a, b)[k] for k in ("fit_s", "cpu_s", "ms", "cpu_ms")]
                          for s in seeds for a, b in on])
            out.append(f"| {row} | {','.join(map(str, seeds))} | {mean_interval(vals['aupro'])} | "
                       f"{mean_interval(vals['i_auroc'])} | {', '.join(f'{100 * v:.1f}' for v in per_seed)} | "
                       f"{np.median(t[:, 0]):.0f} ({np.median(t[:, 1]):.0f}) | "
                       f"{np.median(t[:, 2]):.0f} ({np.median(t[:, 3]):.0f}) |")
        return out

    def differences(pairs, on):
        out = ["| difference | pixel AUPRO | image AUROC |", "|---|---|---|"]
        for first, second in pairs:
            cols = []
            for m in ("aupro", "i_auroc"):
                va, vb = [cell_value(first, a, b, m, on) for a, b in on], [cell_value(second, a, b, m, on) for a, b in on]
                cols.append("n/a" if None in va or None in vb else
                            str(mean_interval([difference(x, y) for x, y in zip(va, vb)])))
            out.append(f"| {first} - {second} | {cols[0]} | {cols[1]} |")
        return out

    lines = []
    for metric, title in (("aupro", "pixel AUPRO@0.3 (btf variant)"), ("i_auroc", "image AUROC")):
        for row in ("nearest", "btf", FULL):
            seeds = seeds_of(row)
            lines += [f"### {row}: {title}, %" + (f" (per cell, the mean of the seeds of {seeds} it ran)"
                                                   if len(seeds) > 1 else ""),
                      "", "| train \\ test | " + " | ".join(square) + " | mean |", "|---|" + "---:|" * (len(square) + 1)]
            for a in square:
                vals = [cell_value(row, a, b, metric) if b != a else None for b in square]
                txt = ["-" if b == a else ("n/a" if v is None else f"{100 * v[0]:.1f}") for b, v in zip(square, vals)]
                got = [v[0] for v in vals if v is not None]
                lines.append(f"| {a} | " + " | ".join(txt) + (f" | {100 * np.mean(got):.1f} |" if got else " | n/a |"))
            lines.append("")
    done = "every cell" if len(cells) == len(every) else "the cells run: " + ", ".join(f"{a}->{b}" for a, b in cells)
    lines += [f"### Means over the square ({len(cells)} of {len(every)} cells: {done}), 95 % bootstrap intervals", ""]
    lines += summary(["nearest", "btf", FULL, BASELINE, DERIVED["dist"], DERIVED["cls"]], cells)
    lines += ["", "### Paired differences over the square (same test scans, same draws), points", ""]
    lines += differences([(FULL, "btf"), (FULL, BASELINE), (BASELINE, "btf"), ("btf", "nearest")], cells)
    for seed in seeds_of(FULL):
        mine = [(a, b) for a, b in cells if results.has(FULL, seed, a, b)]
        if mine and mine != cells:
            lines += ["", f"### 3DzAL seed {seed} on the {len(mine)} cells it ran", ""]
            lines += summary(["btf", FULL], mine)
    on = [(a, b) for a, b in cells if a in args.ablations]
    if not on:
        return "\n".join(lines)
    lines += ["", f"### Ablations (paper Tables 3-4) on the cells trained on {', '.join(args.ablations)} "
              f"({len(on)} cells), seed 0 for the trained ablations", ""]
    lines += summary(["btf"] + ABLATION_ROWS, on)
    return "\n".join(lines)


# -- tuning: Eq. 2 form and the fusion weight on classes outside the square -------------------
def run_tuning(ds, args, zbase: dict, workers: int, draws: dict) -> str:
    """Per training of TUNING_TRAININGS (one change from the recipe; duplicates of it skipped) and tuning task
    A->B: AUPRO / I-AUROC with their replicates for every learned_weight of LW_GRID (the bank rebuilt, the
    networks kept) and every w_c of W_C_GRID; stored as JSON under --keep/tuning (a killed run continues)."""
    tuning = args.tuning.split(",")
    tasks = [(tuning[i], tuning[(i + 1) % len(tuning)]) for i in range(len(tuning))][:args.tuning_tasks]
    eta = float(zbase.get("eta", 0.1))
    store = Path(args.keep) / "tuning"
    seen, results = {}, {}
    for name, changes in TUNING_TRAININGS:
        cfg = zal3d_config(zbase, 0, **changes)
        key = json.dumps(cfg, sort_keys=True)
        resolved = json.dumps(get_detector("zal3d")(cfg, "cpu").config, sort_keys=True)
        if resolved in seen:
            continue
        seen[resolved] = name
        results[name] = []
        for a, b in tasks:
            digest = hashlib.sha1(key.encode()).hexdigest()[:10]  # the settings, not the row's name, key the cache
            path = store / digest / f"{a}-{b}.json"
            if not path.is_file():
                det, fit_s, cpu_s = fit("zal3d", cfg, ds, a, [c for c in tuning if c not in (a, b)], workers)
                cell, got = Cell(ds, b), {"fit_s": fit_s, "cpu_s": cpu_s,
                                          "steps": det.training_info.get("steps"), "grid": {}}
                training, (parts, _) = det.training_cells(ds.samples(a, "train")), zal3d_cells(det, cell, (eta,))
                for lw in LW_GRID:
                    det.cfg = dataclasses.replace(det.cfg, learned_weight=lw, learned_features=lw > 0)
                    det.fit_bank(training)
                    weighed = [det.weigh(c, tuple(s.xyz.shape[:2])) for s, c in zip(cell.samples, parts)]
                    (d_scores, d_maps), (c_scores, c_maps) = [list(zip(*[w["dist"] for w in weighed])),
                                                              list(zip(*[w["cls"][eta] for w in weighed]))]
                    got["grid"][str(lw)] = {str(w): metrics(cell, [d + w * c for d, c in zip(d_scores, c_scores)],
                                                            [d + w * c for d, c in zip(d_maps, c_maps)],
                                                            draws[b][:args.tuning_draws])
                                            for w in W_C_GRID}
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(got, default=lambda x: x.tolist()))
                print(f"  tuning {name} {a}->{b}: fit {fit_s:.0f} s", flush=True)
            results[name].append(json.loads(path.read_text()))
    lw0, wc0 = str(float(zbase.get("learned_weight", 1.0))), str(float(zbase.get("w_c", 1.0)))

    def iv(cells, metric="aupro"):
        return mean_interval([(g[metric], np.array(g[metric + "_rep"])) for g in cells])

    lines = [f"### Trainings on the tuning classes ({', '.join(f'{a}->{b}' for a, b in tasks)}), "
             f"each one change from {args.recipe}", "",
             f"| training | AUPRO, recipe weights (learned {lw0}, w_c {wc0}) | I-AUROC | AUPRO, distance only, "
             f"learned 1.0 | best AUPRO over the grid (learned, w_c) | fit s (CPU s) |", "|---|---|---|---|---|---|"]
    for name, cells in results.items():
        at = [c["grid"][lw0][wc0] for c in cells] if lw0 in cells[0]["grid"] else None
        grid_means = {(lw, w): np.mean([c["grid"][lw][w]["aupro"] for c in cells]) for lw in cells[0]["grid"]
                      for w in cells[0]["grid"][lw]}
        best = max(grid_means, key=grid_means.get)
        lines.append(f"| {name} | {iv(at) if at else 'n/a'} | {iv(at, 'i_auroc') if at else 'n/a'} | "
                     f"{iv([c['grid']['1.0']['0.0'] for c in cells])} | {100 * grid_means[best]:.1f} (learned {best[0]}, "
                     f"w_c {best[1]}) | "
                     f"{np.median([c['fit_s'] for c in cells]):.0f} ({np.median([c['cpu_s'] for c in cells]):.0f}) |")
    cells = results[next(iter(results))]
    lines += ["", f"### Bank and fusion weights of the {args.recipe} training: mean AUPRO % (I-AUROC %)", "",
              "| learned_weight \\ w_c | " + " | ".join(str(w) for w in W_C_GRID) + " |",
              "|---|" + "---|" * len(W_C_GRID)]
    for lw in cells[0]["grid"]:
        lines.append(f"| {lw} | " + " | ".join(
            f"{100 * np.mean([c['grid'][lw][str(w)]['aupro'] for c in cells]):.1f} "
            f"({100 * np.mean([c['grid'][lw][str(w)]['i_auroc'] for c in cells]):.1f})" for w in W_C_GRID) + " |")
    return "\n".join(lines)


# -- steps: where a training step's time goes --------------------------------------------------
def step_timing(ds, recipe: str, train: str, irrelevant: list[str], changes: dict, rounds: int = 6) -> dict:
    """Batch build ms (main process), optimizer step ms on a built batch, and a short fit's wall ms per
    step with 0 and with 1 loader worker (medians)."""
    from torch.utils.data import default_collate

    from anomalygen.detectors.neural import NeuralDetector

    cfg = {**section(recipe, "zal3d"), **changes}
    det = get_detector("zal3d")(cfg, "cpu")
    refs, aux = ds.samples(train, "train"), [r for c in irrelevant for r in ds.samples(c, "train")]
    captured = {}
    real_fit = NeuralDetector._fit
    try:  # prepare as fit does (FPFH, points of interest), without training
        NeuralDetector._fit = lambda self, data, options: captured.setdefault("items", self.training_items(data)) and \
            setattr(self, "network", self.build_network())
        t0 = time.perf_counter()
        det.fit(refs, FitOptions(irrelevant=aux, progress=False))
        prepare_s = time.perf_counter() - t0
    finally:
        NeuralDetector._fit = real_fit
    items, net, bs = captured["items"], det.network.train(), det.cfg.train.batch_size
    loss = det.training_loss()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    build, step = [], []
    for r in range(rounds):
        t = time.perf_counter()
        batch = default_collate([items[(0, (r * bs + j) % len(items))] for j in range(bs)])
        build.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        value = loss(net, batch)["loss"]
        opt.zero_grad()
        value.backward()
        opt.step()
        step.append(1000 * (time.perf_counter() - t))
    out = {"prepare_s": prepare_s, "items_per_epoch": len(items), "batch": bs,
           "patches_per_item": int(batch["pos"].shape[1] + batch["neg"].shape[1]),
           "build_ms": float(np.median(build[1:])), "step_ms": float(np.median(step[1:]))}
    for workers in (0, 1):
        det = get_detector("zal3d")({**cfg, "train": {**cfg.get("train", {}), "epochs": 1}}, "cpu")
        t0 = time.perf_counter()
        det.fit(refs, FitOptions(irrelevant=aux, progress=False, loader_workers=workers))
        wall = time.perf_counter() - t0
        out[f"fit_s_workers{workers}"] = wall
        out[f"steps_workers{workers}"] = det.training_info["steps"]
    return out


def run_steps(work: Path, args) -> str:
    tiny = render(work / "tiny-64", ["bagel", "tire", "cookie"], 64, "easy", 2)
    lines = ["| path | items/epoch x patches/item | batch build ms | step ms | prepare s | 1-epoch fit s, "
             "0 workers | 1 worker | steps |", "|---|---|---|---|---|---|---|---|"]
    runs = [("zal3d-tiny (64 px)", open_dataset(tiny), "zal3d-tiny", "bagel", ["tire", "cookie"], {}),
            ("zal3d-tiny, 2 positives x 16 negatives", open_dataset(tiny), "zal3d-tiny", "bagel", ["tire", "cookie"],
             {"positives": 2, "negatives": 16})]
    if args.size:
        data = open_dataset(Path(args.keep) / f"rendered-{args.size}-{args.difficulty}")
        sq = args.square.split(",")
        runs.append((f"{args.recipe} ({args.size} px)", data, args.recipe, sq[0], sq[1:], {}))
    for name, ds, recipe, train, irrelevant, changes in runs:
        r = step_timing(ds, recipe, train, irrelevant, changes)
        lines.append(f"| {name} | {r['items_per_epoch']} x {r['patches_per_item']} | {r['build_ms']:.0f} | "
                     f"{r['step_ms']:.0f} | {r['prepare_s']:.1f} | {r['fit_s_workers0']:.1f} | {r['fit_s_workers1']:.1f} | "
                     f"{r['steps_workers0']} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--difficulty", required=True, help="render-mvtec3d difficulty: easy | paper | hard | a number")
    ap.add_argument("--size", type=int, default=128, help="rendered size in pixels, every detector's input (default 128)")
    ap.add_argument("--square", default=SQUARE, help=f"classes of the reported square (default {SQUARE})")
    ap.add_argument("--tuning", default=TUNING, help=f"classes the Eq. 2 form and w_c are measured on (default {TUNING})")
    ap.add_argument("--tuning-tasks", type=int, default=4, help="tasks of the tuning ring (default 4)")
    ap.add_argument("--seeds", default="0,1", help="3DzAL training seeds (default 0,1)")
    ap.add_argument("--ablations", default=None, help="training classes whose cells run the trained ablations "
                    "(default: every class of the square)")
    ap.add_argument("--detectors", default="nearest,btf,zal3d", help="rows the square fits (default nearest,btf,zal3d; "
                    "two processes sharing --keep may split them, e.g. one with --detectors zal3d --seeds 1)")
    ap.add_argument("--recipe", default="zal3d-small", help="zal3d recipe (default zal3d-small)")
    ap.add_argument("--train", type=int, default=10, help="training scans per class (default 10)")
    ap.add_argument("--draws", type=int, default=1000, help="bootstrap draws (default 1000)")
    ap.add_argument("--tuning-draws", type=int, default=200, help="bootstrap draws of the tuning grid (default 200)")
    ap.add_argument("--workers", type=int, default=None, help="loader workers of zal3d's training (default: the recipe's)")
    ap.add_argument("--only", choices=("steps", "tuning", "square", "tables"), default=None,
                    help="run one part (default: all); tables: the square's tables from --keep's results, no fitting")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--keep", default=None, help="data, per-cell results and tables live here (re-used when present)")
    args = ap.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.detectors = args.detectors.split(",")
    args.ablations = (args.ablations or args.square).split(",")
    torch.set_num_threads(args.threads)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-zal3d-"))
    args.keep = str(work)
    work.mkdir(parents=True, exist_ok=True)
    classes = args.square.split(",") + [c for c in args.tuning.split(",") if c not in args.square.split(",")]
    recipe = load_recipe(builtin_recipes().get(args.recipe, args.recipe))
    zbase = recipe["zal3d"]
    workers = args.workers if args.workers is not None else int(recipe.get("run", {}).get("loader_workers", 0))
    print(f"device: {device_description('cpu')}; torch {torch.__version__}, {args.threads} thread(s); "
          f"load average {os.getloadavg()}; difficulty {args.difficulty}, {args.size} px, recipe {args.recipe}, "
          f"loader workers {workers}", flush=True)
    t_start = time.perf_counter()
    data = render(work / f"rendered-{args.size}-{args.difficulty}", classes, args.size, args.difficulty, args.train)
    ds = open_dataset(data)
    sizes = {c: len(ds.samples(c, "test")) for c in classes}
    draws = class_draws(sizes, args.draws, seed=0)
    print(f"data: {data} ({', '.join(f'{c} {n}' for c, n in sizes.items())} test scans; {args.train} train)",
          flush=True)
    out = []
    if args.only in (None, "steps"):
        out += ["## steps", run_steps(work, args)]
    if args.only in (None, "tuning"):
        out += ["## tuning", run_tuning(ds, args, zbase, workers, draws)]
    if args.only in (None, "square", "tables"):
        results = Results(work / "results")
        if args.only != "tables":
            run_square(ds, args, results, draws, zbase, workers)
        out += ["## square", square_tables(results, args)]
    text = "\n\n".join(out)
    print("\n" + text)
    (work / f"tables-{args.only or 'all'}-{args.difficulty}.md").write_text(text + "\n")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nwall {time.perf_counter() - t_start:.0f} s; peak RSS {peak:.0f} MiB; load average at the end "
          f"{os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
