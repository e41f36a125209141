"""Train a detector per class, score the test split, and report the metrics.

A run folder (the `--out` of `anomalygen train-detector`) holds:
    run.json                   detector, data, layout, recipe settings, tasks
    models/<train-key>/        one saved detector per training set (detector.json + state)
    scores/<task>.npz          object scores and every predicted map (for preview / re-analysis)
    metrics.json, metrics.csv, metrics.md   per task and mean
A task is (training classes -> test class): 'bowl0' in the usual protocol, 'bagel->carrot'
in the zero-shot protocol of 3DzAL (train on one class, test on another).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from anomalygen.errors import AnomalygenError, MetricError
from anomalygen.io import atomic_path, open_dataset, write_text_atomic
from anomalygen.io.mvtec3d import LAYOUT as MVTEC_LAYOUT
from anomalygen.metrics import aupro, image_auroc, pixel_auroc, point_auroc
from anomalygen.recipes import builtin_recipes, get_key, load_recipe
from anomalygen.detectors import get_detector
from anomalygen.detectors.base import Detector, FitOptions, resolve_device
from anomalygen.detectors.progress import progress_bar

RUN_FILE = "run.json"
RUN_VERSION = 1
RUN_ENTRIES = {RUN_FILE, "models", "scores", "metrics.json", "metrics.csv", "metrics.md", "preview"}


@dataclass
class Task:
    name: str
    train: list[str]
    test: str

    @property
    def model_key(self) -> str:
        return "+".join(self.train)

    def as_dict(self) -> dict:
        return {"name": self.name, "train": self.train, "test": self.test, "model": f"models/{self.model_key}"}


def _split_classes(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [c.strip() for c in items if c.strip()]
    return items or None


def plan_tasks(dataset, classes=None, train_classes=None, test_classes=None) -> list[Task]:
    """Per-class tasks, or zero-shot tasks (train on `train_classes`, test on each of `test_classes`)."""
    known = dataset.classes()
    if not known:
        raise AnomalygenError(f"{dataset.root}: dataset holds no classes")
    classes, train_classes, test_classes = map(_split_classes, (classes, train_classes, test_classes))
    if (train_classes is None) != (test_classes is None):
        raise AnomalygenError("zero-shot mode needs both --train-class and --test-class")
    if train_classes and classes:
        raise AnomalygenError("give either --classes or --train-class/--test-class, not both")
    for c in (classes or []) + (train_classes or []) + (test_classes or []):
        if c not in known:
            raise AnomalygenError(f"class {c!r} is not in {dataset.root}; it holds: {', '.join(known)}")
    if train_classes:
        tasks = [Task(f"{'+'.join(train_classes)}->{t}", train_classes, t) for t in test_classes]
    else:
        tasks = [Task(c, [c], c) for c in (classes or known)]
    for t in tasks:
        for c in t.train:
            if not dataset.samples(c, "train"):
                raise AnomalygenError(f"class {c!r}: empty train split in {dataset.root}")
        if not dataset.samples(t.test, "test"):
            raise AnomalygenError(f"class {t.test!r}: empty test split in {dataset.root}")
    return tasks


def train_detector(detector: str, data, out, classes=None, train_classes=None, test_classes=None,
                   recipe: str = "detectors", overrides: dict | None = None, device: str | None = None,
                   evaluate: bool | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Fit `detector` per task on the train split of `data`, save the models and run.json in `out`;
    then (unless evaluate is False) score the test split and write the metrics. Returns run.json's dict
    (with 'metrics' when evaluated)."""
    # A built-in name wins over a same-named folder in the cwd (`detectors/` in the repo root would
    # otherwise be taken for a recipe path by recipes.recipe_path).
    rec = load_recipe(builtin_recipes().get(str(recipe), recipe), overrides)
    cls = get_detector(detector)
    config = get_key(rec, detector, {}) or {}
    dev = resolve_device(device or get_key(rec, "run.device", "auto"))
    set_threads(get_key(rec, "run.threads", None))
    loader_workers = get_key(rec, "run.loader_workers", 0)
    if isinstance(loader_workers, bool) or not isinstance(loader_workers, int) or loader_workers < 0:
        raise AnomalygenError(f"run.loader_workers must be a non-negative integer, got {loader_workers!r}")
    data = Path(data)
    dataset = open_dataset(data)
    tasks = plan_tasks(dataset, classes, train_classes, test_classes)
    cls(config, dev)  # validates the detector's settings before anything is written
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise AnomalygenError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
        foreign = [p.name for p in out.iterdir() if p.name not in RUN_ENTRIES]
        if foreign:
            raise AnomalygenError(f"{out} holds files that are not a detector run's ({', '.join(sorted(foreign)[:3])}); "
                                  "refusing to overwrite it")
        shutil.rmtree(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    bar = progress_bar(progress)
    trained: dict[str, dict] = {}
    try:
        for task in bar(tasks, desc=f"train {detector}"):
            if task.model_key in trained:
                continue
            refs = [r for c in task.train for r in dataset.samples(c, "train")]
            det: Detector = cls(config, dev)
            workdir = out / "models" / task.model_key
            det.fit(refs, FitOptions(workdir=workdir, loader_workers=loader_workers, progress=progress,
                                     task=task.model_key))
            det.save(workdir)
            trained[task.model_key] = {"train_samples": len(refs)}
            config = det.config  # realized config (defaults filled in)
    except BaseException:
        if created:  # no half-trained run left behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    run = {
        "version": RUN_VERSION, "detector": detector, "data": str(data.resolve()), "layout": dataset.layout,
        "device": str(dev), "recipe": rec.get("_source"), "overrides": overrides or {},
        "config": config, "run": get_key(rec, "run", {}),
        "zero_shot": bool(_split_classes(train_classes)), "tasks": [t.as_dict() for t in tasks], "trained": trained,
    }
    write_text_atomic(out / RUN_FILE, json.dumps(run, indent=2))
    if evaluate if evaluate is not None else get_key(rec, "run.evaluate", True):
        run["metrics"] = evaluate_run(out, device=device, progress=progress)
    return run


def set_threads(threads) -> None:
    """Recipe run.threads: torch's CPU threads (null = torch's default, one per core)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise AnomalygenError(f"run.threads must be a positive integer or null, got {threads!r}")
    import torch

    torch.set_num_threads(threads)


def read_run(run_dir) -> dict:
    run_dir = Path(run_dir)
    p = run_dir / RUN_FILE
    if not p.is_file():
        raise AnomalygenError(f"{run_dir}: not a detector run (no {RUN_FILE}); create one with `anomalygen train-detector`")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise AnomalygenError(f"{p}: corrupt run file ({exc})") from None


def _metric(fn, *args, **kw) -> tuple[float | None, str | None]:
    try:
        return fn(*args, **kw), None
    except MetricError as exc:
        return None, str(exc)


def evaluate_task(det: Detector, dataset, task: Task, run_cfg: dict, progress: bool = True,
                  scores_path: Path | None = None) -> dict:
    """Score the test split of one task's class; returns its metrics row."""
    from anomalygen.detectors.resources import Meter

    refs = dataset.samples(task.test, "test")
    if refs and run_cfg.get("warmup", True):
        det.score(refs[0].load())  # untimed: first calls pay one-off costs (lazy imports, allocator warm-up)
    meter = Meter(det.device)
    labels, scores, targets, maps, names, defects = [], [], [], [], [], []
    batch = int(run_cfg.get("batch_size") or 1)
    bar = tqdm(total=len(refs), desc=f"{task.name} score", disable=not progress, leave=False, dynamic_ncols=True)
    for b in range(0, len(refs), batch):
        chunk = refs[b:b + batch]
        samples = [r.load() for r in chunk]
        results = meter.time(det.score_batch, samples, count=len(samples))
        for ref, sample, (s, amap) in zip(chunk, samples, results):
            target = sample.labels if hasattr(sample, "labels") else sample.mask
            if amap.shape != np.shape(target):
                raise AnomalygenError(f"{det.name} returned a map of shape {amap.shape} for {ref.name} "
                                      f"(expected {np.shape(target)})")
            labels.append(int(sample.anomalous)); scores.append(s)
            targets.append(np.asarray(target)); maps.append(amap)
            names.append(ref.name); defects.append(ref.defect)
        bar.update(len(chunk))
    bar.close()
    res = meter.result()
    row = {"task": task.name, "train": task.train, "test": task.test, "samples": len(refs),
           "anomalous": int(sum(labels)), "notes": []}
    row["i_auroc"], note = _metric(image_auroc, labels, scores)
    row["notes"] += [note] if note else []
    if dataset.layout == MVTEC_LAYOUT:
        row["p_auroc"], note = _metric(pixel_auroc, targets, maps)
        row["notes"] += [note] if note else []
        row["aupro"], note = _metric(aupro, targets, maps, fpr_limit=run_cfg.get("aupro_fpr_limit", 0.3),
                                     num_thresholds=run_cfg.get("aupro_thresholds"))
        row["notes"] += [note] if note else []
    else:
        row["point_auroc"], note = _metric(point_auroc, targets, maps)
        row["notes"] += [note] if note else []
    row.update(res)
    if scores_path is not None:
        flat = np.concatenate([m.ravel() for m in maps]).astype(np.float16) if maps else np.zeros(0, np.float16)
        shapes = np.array([m.shape if m.ndim == 2 else (m.shape[0], 0) for m in maps], np.int64).reshape(-1, 2)
        with atomic_path(scores_path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, names=np.array(names), defects=np.array(defects),
                                    scores=np.array(scores, np.float64), maps=flat, shapes=shapes)
    return row


def load_scores(path) -> dict:
    """Read scores/<task>.npz back: names, defects, scores and the list of maps."""
    z = np.load(path)
    maps, off = [], 0
    for h, w in z["shapes"]:
        n = h * w if w else h
        m = z["maps"][off:off + n].astype(np.float32)
        maps.append(m.reshape(h, w) if w else m)
        off += n
    return {"names": list(z["names"]), "defects": list(z["defects"]), "scores": z["scores"], "maps": maps}


METRIC_COLUMNS = {
    "points": [("i_auroc", "I-AUROC"), ("point_auroc", "point AUROC")],
    "images": [("i_auroc", "I-AUROC"), ("p_auroc", "P-AUROC"), ("aupro", "AUPRO@0.3")],
}
COST_COLUMNS = [("ms_per_sample", "ms/sample"), ("peak_rss_mib", "peak RSS MiB"), ("gpu_max_allocated_mib", "GPU MiB")]


def _mean(values):
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def summarize(rows: list[dict], kind: str) -> dict:
    mean = {"task": "mean", "samples": sum(r["samples"] for r in rows), "anomalous": sum(r["anomalous"] for r in rows)}
    for key, _ in METRIC_COLUMNS[kind] + COST_COLUMNS:
        mean[key] = _mean([r.get(key) for r in rows])
    mean["peak_rss_mib"] = max((r["peak_rss_mib"] for r in rows), default=None)
    gpu = [r["gpu_max_allocated_mib"] for r in rows if r.get("gpu_max_allocated_mib") is not None]
    mean["gpu_max_allocated_mib"] = max(gpu) if gpu else None
    return mean


def _fmt(v, key) -> str:
    if v is None:
        return "n/a"
    if key in ("ms_per_sample", "peak_rss_mib", "gpu_max_allocated_mib"):
        return f"{v:.1f}" if key == "ms_per_sample" else f"{v:.0f}"
    return f"{v:.3f}"


def markdown_table(metrics: dict) -> str:
    kind = metrics["kind"]
    cols = [("task", "class")] + METRIC_COLUMNS[kind] + [("samples", "test samples")] + COST_COLUMNS
    if not any(r.get("gpu_max_allocated_mib") is not None for r in metrics["rows"]):
        cols = cols[:-1]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in metrics["rows"] + [metrics["mean"]]:
        cells = [str(r[k]) if k in ("task", "samples") else _fmt(r.get(k), k) for k, _ in cols]
        if r is metrics["mean"]:
            cells[0] = "**mean**"
        lines.append("| " + " | ".join(cells) + " |")
    foot = (f"\n{metrics['detector']} on {metrics['data']} ({metrics['layout']}), device {metrics['device']}. "
            "ms/sample: score() only (no file loading). peak RSS: the process's peak resident memory while scoring "
            f"the class{' (lifetime peak: could not reset)' if any(r.get('peak_rss_scope') == 'process' for r in metrics['rows']) else ''}."
            + (" AUPRO exact (every distinct score a threshold)." if kind == "images" and metrics.get("aupro_thresholds") is None else ""))
    notes = [f"- {r['task']}: {n}" for r in metrics["rows"] for n in r.get("notes", [])]
    return "\n".join(lines) + "\n" + foot + ("\n\nNot computed:\n" + "\n".join(notes) if notes else "") + "\n"


def _csv(metrics: dict) -> str:
    keys = ["task", "samples", "anomalous"] + [k for k, _ in METRIC_COLUMNS[metrics["kind"]] + COST_COLUMNS]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for r in metrics["rows"] + [metrics["mean"]]:
        w.writerow(["" if r.get(k) is None else r.get(k) for k in keys])
    return buf.getvalue()


def evaluate_run(run_dir, data=None, device: str | None = None, out=None, progress: bool = True) -> dict:
    """Load each task's model from `run_dir`, score the test split of `data` (default: the run's data),
    and write metrics.json / metrics.csv / metrics.md (and scores/) into `out` (default: run_dir)."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    data = Path(data) if data else Path(run["data"])
    dataset = open_dataset(data)
    if (dataset.layout == MVTEC_LAYOUT) != (run["layout"] == MVTEC_LAYOUT):
        raise AnomalygenError(f"{data} is {dataset.layout} but the run was trained on {run['layout']}")
    run_cfg = run.get("run", {})
    dev = resolve_device(device or run_cfg.get("device", "auto"))
    set_threads(run_cfg.get("threads"))
    out = Path(out) if out else run_dir
    tasks = [Task(t["name"], t["train"], t["test"]) for t in run["tasks"]]
    known = dataset.classes()
    for t in tasks:
        if t.test not in known or not dataset.samples(t.test, "test"):
            raise AnomalygenError(f"class {t.test!r} has no test split in {data}")
    save_maps = run_cfg.get("save_maps", True)
    rows, models = [], {}
    for task in tqdm(tasks, desc=f"evaluate {run['detector']}", disable=not progress, leave=False, dynamic_ncols=True):
        if task.model_key not in models:
            models = {task.model_key: Detector.load(run_dir / "models" / task.model_key, dev)}
        scores_path = out / "scores" / f"{task.name.replace('/', '_')}.npz" if save_maps else None
        rows.append(evaluate_task(models[task.model_key], dataset, task, run_cfg, progress, scores_path))
    kind = "images" if dataset.layout == MVTEC_LAYOUT else "points"
    metrics = {"detector": run["detector"], "data": str(data.resolve()), "layout": dataset.layout, "kind": kind,
               "device": str(dev), "aupro_thresholds": run_cfg.get("aupro_thresholds"), "rows": rows,
               "mean": summarize(rows, kind)}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2, default=_nan_safe))
    write_text_atomic(out / "metrics.csv", _csv(metrics))
    write_text_atomic(out / "metrics.md", markdown_table(metrics))
    return metrics


def _nan_safe(x):
    if isinstance(x, (np.floating, np.integer)):
        v = x.item()
        return None if isinstance(v, float) and math.isnan(v) else v
    raise TypeError(f"not JSON-serializable: {type(x).__name__}")
