"""Benchmark: DAS3D-small against BTF and `nearest` on the same rendered scans, with 95 % bootstrap intervals.

    python benchmarks/das3d.py --difficulty easy [--classes bagel,cookie,dowel,tire] [--seeds 0,1]
                               [--rows nearest,btf,das3d,das3d-3d] [--keep DIR] [--threads 1] [--draws 1000]
                               [--set KEY=VALUE ...]

Data (one folder, read by every row): `anomalygen render-mvtec3d --size 128 --set difficulty=D` with 40 train,
20 good and 6 per defect type (30 defective: bulge, concavity, hole, crack, scratch) test scans per class.
Rows: `nearest` and BTF (recipe `detectors`, no training randomness: one run each), DAS3D-small RGB+3D and 3D
only (recipe `das3d-small`, `--seeds` training seeds each). Every run scores with `run.aupro_variant=btf`
(3D-ADS's au_pro_util.py, the AUPRO the 3D AD papers report) and `run.threads` = --threads. `--set` overrides
recipe keys of the DAS3D rows (e.g. das3d.train.epochs=30).

Each (row, seed, class) is its own run folder under --keep (default: a temporary folder), trained and scored
niced by this process, one at a time; a folder that already holds metrics.json is read, not trained again,
so an interrupted benchmark continues where it stopped. Per run: training wall and CPU seconds, the load
average before and after, ms/sample (score() only) and peak RSS from the engine, and the loss curve's slope
over its last fifth (`end slope`: relative change of the epoch-mean loss per tenth of the run; near 0 = flat).

Metrics come from the saved maps (RUN/scores, float16) and the dataset's gt, by anomalygen.metrics; the mean
is over classes (and over seeds for the DAS3D rows). 95 % intervals: `--draws` bootstrap draws that resample
each class's good and defective test scans with replacement (stratified, so each draw has both), the same
draws for every row (so rows are compared pair-wise, see the `minus btf` lines). P-AUROC's draws are exact
on the float16 maps (per-scan histograms over their distinct values); AUPRO's draws keep the full set's 100
thresholds (the btf variant re-picks them per set: an approximation of its spread, not of its value).
Writes results.json and results.md under --keep/<difficulty>/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = "bagel,cookie,dowel,tire"
COUNTS = {"counts.train": 40, "counts.validation": 0, "counts.test_good": 20, "counts.test_per_defect": 6}
SIZE = 128
# A thin class (dowel) at `paper` can need more than render-mvtec3d.yaml's 12 draws to place a visible scratch;
# more draws change nothing where the first draws succeed. 100 is the most the recipe accepts.
MAX_TRIES = 100
# row -> (detector, recipe, overrides, trained with a seed)
ROWS = {
    "nearest": ("nearest", "detectors", {}, False),
    "btf": ("btf", "detectors", {}, False),
    "das3d": ("das3d", "das3d-small", {}, True),
    "das3d-3d": ("das3d", "das3d-small", {"das3d.modalities": "3d"}, True),
}
LABELS = {"nearest": "nearest", "btf": "BTF", "das3d": "DAS3D-small rgb+3d", "das3d-3d": "DAS3D-small 3d"}
METRICS = ("i_auroc", "p_auroc", "aupro")
FPR_LIMIT = 0.3
THRESHOLDS = 100


def render(out: Path, difficulty: str, classes: str) -> Path:
    """The benchmark's scans (re-used when `out` is complete)."""
    if (out / ".done").is_file():
        return out
    sets = [a for k, v in {"difficulty": difficulty, **COUNTS, "max_tries": MAX_TRIES}.items() for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "anomalygen.cli", "render-mvtec3d", "--classes", classes, "--size", str(SIZE),
           *sets, "--out", str(out), "--overwrite"]
    with open(out.parent / f"render-{out.name}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    (out / ".done").write_text(" ".join(cmd[1:]) + "\n")
    return out


def train_one(row: str, seed: int | None, cls: str, data: Path, out: Path, threads: int, extra: dict) -> dict:
    """Train and score one (row, seed, class) run unless `out` already holds its metrics; returns its record."""
    from anomalygen.detectors.engine import evaluate_run, train_detector

    record_path = out / "benchmark.json"
    if (out / "metrics.json").is_file() and record_path.is_file():
        return json.loads(record_path.read_text())
    detector, recipe, overrides, seeded = ROWS[row]
    sets = {"run.aupro_variant": "btf", "run.threads": threads, **overrides}
    if seeded:
        sets.update({f"{detector}.train.seed": seed, **extra})
    load0, cpu0, t0 = os.getloadavg(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run = train_detector(detector, data, out, classes=cls, recipe=recipe, overrides=sets, evaluate=False,
                         overwrite=True, progress=False)
    train_s, cpu1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    load1 = os.getloadavg()
    metrics = evaluate_run(out, progress=False)
    row_m = metrics["rows"][0]
    record = {"row": row, "seed": seed, "class": cls, "overrides": sets, "train_wall_s": train_s,
              "train_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
              "load_before": load0, "load_after": load1, "ms_per_sample": row_m["ms_per_sample"],
              "peak_rss_mib": row_m["peak_rss_mib"], "engine": {k: row_m.get(k) for k in METRICS},
              "training": run["trained"].get(cls, {}), "end_slope": end_slope(out / "models" / cls / "loss.csv")}
    record_path.write_text(json.dumps(record, indent=2))
    return record


def end_slope(loss_csv: Path) -> float | None:
    """Relative change of the epoch-mean loss per tenth of the run, fitted over the last fifth of the epochs."""
    if not loss_csv.is_file():
        return None
    lines = loss_csv.read_text().splitlines()
    head = lines[0].split(",")
    if "loss" not in head or "epoch" not in head:
        return None
    ep = np.array([float(r.split(",")[head.index("epoch")]) for r in lines[1:]])
    loss = np.array([float(r.split(",")[head.index("loss")]) for r in lines[1:]])
    epochs = np.unique(ep)
    means = np.array([loss[ep == e].mean() for e in epochs])
    tail = max(len(epochs) // 5, 2)
    if len(epochs) < 4:
        return None
    x, y = epochs[-tail:] / len(epochs), means[-tail:]
    slope = np.polyfit(x, y, 1)[0]
    return float(slope * 0.1 / means[-tail:].mean())


# -- metrics and bootstrap -----------------------------------------------------------------------------------
class ClassStats:
    """One class's test set as per-scan sufficient statistics, so a resampled set's metrics are weighted sums."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray, masks: list, maps: list):
        from scipy import ndimage

        from anomalygen.metrics import EIGHT_CONNECTED, aupro, image_auroc, pixel_auroc

        self.labels, self.scores = labels, scores
        self.point = {"i_auroc": image_auroc(labels, scores), "p_auroc": pixel_auroc(masks, maps),
                      "aupro": aupro(masks, maps, FPR_LIMIT, "btf", THRESHOLDS)}
        flat = np.concatenate([m.ravel() for m in maps])
        values = np.unique(flat)
        bins = [np.searchsorted(values, m.ravel()) for m in maps]
        k = len(values)
        self.pos = np.stack([np.bincount(b[g.ravel() > 0], minlength=k) for b, g in zip(bins, masks)]).astype(np.float64)
        self.neg = np.stack([np.bincount(b[g.ravel() == 0], minlength=k) for b, g in zip(bins, masks)]).astype(np.float64)
        neg_sorted = np.sort(flat[np.concatenate([g.ravel() == 0 for g in masks])])
        ranks = np.linspace(0, len(neg_sorted) - 1, num=THRESHOLDS).astype(int)
        t = neg_sorted[ranks]  # the btf variant's thresholds on the full set
        self.neg_count = self.neg.sum(1)
        self.neg_above = np.stack([(m.ravel()[g.ravel() == 0][:, None] > t).sum(0) for m, g in zip(maps, masks)])
        self.pro_sum = np.zeros((len(maps), THRESHOLDS))
        self.n_comp = np.zeros(len(maps))
        for i, (m, g) in enumerate(zip(maps, masks)):
            lab, n = ndimage.label(g > 0, structure=EIGHT_CONNECTED)
            for c in range(1, n + 1):
                self.pro_sum[i] += (m[lab == c][:, None] > t).mean(0)
            self.n_comp[i] = n

    def resampled(self, w: np.ndarray) -> dict:
        """Metrics of each resampled set: w (draws, scans) = how often each scan is drawn."""
        out = {"i_auroc": np.array([weighted_auroc(self.labels, self.scores, wi) for wi in w])}
        p, n = w @ self.pos, w @ self.neg
        below = np.cumsum(n, 1) - n
        out["p_auroc"] = (p * (below + 0.5 * n)).sum(1) / (p.sum(1) * n.sum(1))
        fpr = (w @ self.neg_above) / (w @ self.neg_count)[:, None]
        pro = (w @ self.pro_sum) / (w @ self.n_comp)[:, None]
        out["aupro"] = np.array([curve_area(f, q) for f, q in zip(fpr, pro)])
        return out


def weighted_auroc(labels: np.ndarray, scores: np.ndarray, w: np.ndarray) -> float:
    """ROC AUC of the set holding scan i w[i] times (ties count half)."""
    pos, neg = labels > 0, labels == 0
    sp, wp, sn, wn = scores[pos], w[pos], scores[neg], w[neg]
    greater = (sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :])
    return float(wp @ greater @ wn / (wp.sum() * wn.sum()))


def curve_area(fpr: np.ndarray, pro: np.ndarray) -> float:
    """The btf variant's AUPRO from a curve sampled at its thresholds (FPR descending with the threshold)."""
    from anomalygen.metrics import trapezoid_to

    order = np.argsort(fpr, kind="stable")
    return trapezoid_to(np.r_[fpr[order], 1.0], np.r_[pro[order], 1.0], FPR_LIMIT) / FPR_LIMIT


def draw_weights(labels: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, scans) multiplicities of a stratified bootstrap: good and defective scans resampled separately."""
    w = np.zeros((draws, len(labels)))
    for group in (np.flatnonzero(labels == 0), np.flatnonzero(labels > 0)):
        picks = rng.choice(group, size=(draws, len(group)))
        for d in range(draws):
            np.add.at(w[d], picks[d], 1.0)
    return w


def test_set(data: Path, cls: str):
    """(keys (defect, name), labels, gt masks) of a class's test split, in the engine's scoring order."""
    from anomalygen.io import open_dataset

    refs = open_dataset(data).samples(cls, "test")
    samples = [r.load() for r in refs]
    return ([(r.defect, r.name) for r in refs], np.array([int(s.anomalous) for s in samples]),
            [np.asarray(s.mask) for s in samples])


def run_stats(out: Path, cls: str, keys, labels, masks) -> ClassStats:
    from anomalygen.detectors.scores import read_scores, task_scores_file

    saved = read_scores(task_scores_file(out, cls))
    if list(zip(saved["defects"], saved["names"])) != keys:
        raise SystemExit(f"{out}: its scores are not the benchmark's test scans, in order")
    return ClassStats(labels, np.asarray(saved["scores"]), masks, saved["maps"])


def interval(x: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(x, 2.5)), float(np.percentile(x, 97.5))


def machine() -> str:
    model = platform.processor() or "cpu"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch

    return f"{model}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"


def fmt_ci(point: float, ci: tuple[float, float]) -> str:
    return f"{point:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--difficulty", required=True, help="render-mvtec3d difficulty: easy | paper | hard | a number")
    ap.add_argument("--classes", default=CLASSES, help=f"comma-separated, at least 4 (default {CLASSES})")
    ap.add_argument("--seeds", default="0,1", help="training seeds of the DAS3D rows (default 0,1)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated of {', '.join(ROWS)}")
    ap.add_argument("--keep", default=None, help="folder for the data and runs (re-used when present)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads of every run (default 1)")
    ap.add_argument("--draws", type=int, default=1000, help="bootstrap draws (default 1000)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override of the DAS3D rows, e.g. das3d.train.epochs=30 (repeatable)")
    args = ap.parse_args(argv)
    from anomalygen.recipes import parse_overrides

    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    classes, seeds = args.classes.split(","), [int(s) for s in args.seeds.split(",")]
    extra = parse_overrides(args.overrides)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-das3d-"))
    root = work / args.difficulty
    root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; load average {os.getloadavg()}", flush=True)
    t_start = time.perf_counter()
    data = render(work / f"data-{args.difficulty}", args.difficulty, ",".join(classes))
    print(f"data: {data} ({time.perf_counter() - t_start:.0f} s)", flush=True)

    runs: dict[tuple[str, int | None, str], tuple[Path, dict]] = {}
    for row in rows:
        for seed in (seeds if ROWS[row][3] else [None]):
            for cls in classes:
                out = root / row / ("once" if seed is None else f"seed{seed}") / cls
                rec = train_one(row, seed, cls, data, out, args.threads, extra)
                runs[(row, seed, cls)] = (out, rec)
                print(f"{row} seed {seed} {cls}: train {rec['train_wall_s']:.0f} s wall / {rec['train_cpu_s']:.0f} s CPU"
                      f" (load {rec['load_before'][0]:.1f} -> {rec['load_after'][0]:.1f}), "
                      + ", ".join(f"{k} {rec['engine'][k]:.3f}" for k in METRICS if rec["engine"].get(k) is not None),
                      flush=True)

    rng = np.random.default_rng(0)
    tests = {cls: test_set(data, cls) for cls in classes}
    weights = {cls: draw_weights(tests[cls][1], args.draws, rng) for cls in classes}
    table, draws_of = {}, {}
    for row in rows:
        row_seeds = seeds if ROWS[row][3] else [None]
        per_seed_point, per_seed_draws, per_class = [], [], {}
        for seed in row_seeds:
            points, draws = [], []
            for cls in classes:
                out, _ = runs[(row, seed, cls)]
                st = run_stats(out, cls, *tests[cls])
                points.append(st.point)
                draws.append(st.resampled(weights[cls]))
                per_class.setdefault(cls, []).append(st.point)
            per_seed_point.append({m: float(np.mean([p[m] for p in points])) for m in METRICS})
            per_seed_draws.append({m: np.mean([d[m] for d in draws], axis=0) for m in METRICS})
        d = {m: np.mean([s[m] for s in per_seed_draws], axis=0) for m in METRICS}
        draws_of[row] = d
        recs = [runs[(row, s, c)][1] for s in row_seeds for c in classes]
        table[row] = {
            "point": {m: float(np.mean([s[m] for s in per_seed_point])) for m in METRICS},
            "ci": {m: interval(d[m]) for m in METRICS},
            "seeds": {str(s): p for s, p in zip(row_seeds, per_seed_point)},
            "classes": {c: {m: float(np.mean([p[m] for p in ps])) for m in METRICS} for c, ps in per_class.items()},
            "train_wall_s": float(np.mean([r["train_wall_s"] for r in recs])),
            "train_cpu_s": float(np.mean([r["train_cpu_s"] for r in recs])),
            "ms_per_sample": float(np.mean([r["ms_per_sample"] for r in recs])),
            "peak_rss_mib": float(max(r["peak_rss_mib"] for r in recs)),
            "steps": sorted({r["training"].get("steps") for r in recs if r["training"].get("steps")}),
            "end_slope": [r["end_slope"] for r in recs if r["end_slope"] is not None],
            "load": [min(r["load_before"][0] for r in recs), max(r["load_after"][0] for r in recs)],
        }
    lines = [f"difficulty {args.difficulty}; classes {', '.join(classes)}; {len(tests[classes[0]][1])} test scans per "
             f"class; {args.draws} bootstrap draws; DAS3D seeds {args.seeds}; machine {machine()}",
             "", "| row | I-AUROC [95 % CI] | P-AUROC [95 % CI] | AUPRO@0.3 btf [95 % CI] | per seed I-AUROC / AUPRO | "
             "train s/class wall (CPU) | steps | end slope | ms/sample | peak RSS MiB | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        t = table[row]
        seeds_txt = "; ".join(f"{v['i_auroc']:.3f} / {v['aupro']:.3f}" for v in t["seeds"].values()) if ROWS[row][3] else "-"
        slope = f"{max(t['end_slope'], key=abs):+.3f}" if t["end_slope"] else "-"
        lines.append(f"| {LABELS[row]} | " + " | ".join(fmt_ci(t["point"][m], t["ci"][m]) for m in METRICS)
                     + f" | {seeds_txt} | {t['train_wall_s']:.0f} ({t['train_cpu_s']:.0f}) | "
                     + (",".join(map(str, t["steps"])) or "-") + f" | {slope} | {t['ms_per_sample']:.0f} | "
                     + f"{t['peak_rss_mib']:.0f} | {t['load'][0]:.1f}-{t['load'][1]:.1f} |")
    if "btf" in rows:
        lines.append("")
        for row in rows:
            if row == "btf":
                continue
            diff = {m: draws_of[row][m] - draws_of["btf"][m] for m in METRICS}
            lines.append(f"{LABELS[row]} minus BTF (paired draws): " + ", ".join(
                f"{m} {table[row]['point'][m] - table['btf']['point'][m]:+.3f} "
                f"[{interval(diff[m])[0]:+.3f}, {interval(diff[m])[1]:+.3f}]" for m in METRICS))
    lines += ["", "| row | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for row in rows:
        lines.append(f"| {LABELS[row]} | " + " | ".join(
            "/".join(f"{table[row]['classes'][c][m]:.3f}" for m in METRICS) for c in classes) + " |")
    lines.append("(per class: I-AUROC/P-AUROC/AUPRO, mean over seeds)")
    lines.append(f"\nwall {time.perf_counter() - t_start:.0f} s; load average at the end {os.getloadavg()}")
    text = "\n".join(lines)
    print(text)
    (root / "results.md").write_text(text + "\n")
    (root / "results.json").write_text(json.dumps({"args": vars(args), "table": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
