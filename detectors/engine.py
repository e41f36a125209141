"""Train a detector per task, score the test split, and report the metrics.

    from anomalygen.detectors.engine import train_detector, evaluate_run
    run = train_detector("btf", "out/anomaly-shapenet", "runs/btf")      # trains, then evaluates
    metrics = evaluate_run("runs/btf")                                   # re-scores with the saved models

`train_detector` fits one model per training set (anomalygen.detectors.tasks), saves each
to RUN/models/<key>/ and keeps run.json current (anomalygen.detectors.runs); `evaluate_run`
loads them, scores the test split, and writes scores/ and the metric tables
(anomalygen.detectors.scores, anomalygen.detectors.reports).

Long trainings: `resume=True` continues an interrupted run (saved models are kept, the
others continue from their checkpoints), `max_minutes` bounds each task's training, and
`devices` > 1 trains data-parallel; all three reach the detector through FitOptions. What a
detector reports of its training (`training_info`: epochs done, whether the budget stopped
it) is recorded per task in run.json.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from anomalygen.errors import AnomalygenError, FormatError, MetricError, Terminated
from anomalygen.io import open_dataset
from anomalygen.io.lock import lock_folder
from anomalygen.io.mvtec3d import LAYOUT as MVTEC_LAYOUT
from anomalygen.limits import minutes
from anomalygen.metrics import aupro, image_auroc, pixel_auroc, point_auroc
from anomalygen.recipe_schema import check_recipe
from anomalygen.recipes import builtin_recipes, get_key, load_recipe
from anomalygen.detectors import available_detectors, get_detector
from anomalygen.detectors.base import Detector, FitOptions, check_devices, check_precision, resolve_device
from anomalygen.detectors.progress import progress_bar
from anomalygen.detectors.reports.tables import summarize, write_metrics
from anomalygen.detectors.runs import (FINGERPRINT, RUN_VERSION, TRAINED, TRAINING, can_resume, check_resumable,
                                       claim_folder, is_saved, model_dir, read_run, release_folder, retrain_remedy,
                                       saved_models, training_fingerprint, write_run)
from anomalygen.detectors.stored import DamagedFile
from anomalygen.detectors.scores import task_scores_file, write_scores
from anomalygen.detectors.tasks import Task, plan_tasks, split_classes


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training, after the run folder was put in order: kept with what can be
    resumed (`resumable`), or removed when nothing could be. str() is the line to show; exit_code is
    the shell's for the signal (130 = SIGINT, 143 = SIGTERM)."""

    def __init__(self, message: str, run_dir: Path, resumable: bool, exit_code: int = 130):
        super().__init__(message)
        self.run_dir, self.resumable, self.exit_code = run_dir, resumable, exit_code

    def __str__(self) -> str:
        return self.args[0]


def train_detector(detector: str, data, out, classes=None, train_classes=None, test_classes=None,
                   recipe: str = "detectors", overrides: dict | None = None, device: str | None = None,
                   evaluate: bool | None = None, overwrite: bool = False, progress: bool = True,
                   resume: bool = False, max_minutes: float | None = None, devices: int = 1) -> dict:
    """Fit `detector` per task on the train split of `data`, save the models and run.json in `out`;
    then (unless evaluate is False) score the test split and write the metrics. Returns run.json's dict
    (with 'metrics' when evaluated).

    resume: continue the run in `out` (same detector, data, classes and settings): tasks whose model
    is saved are skipped, the others are fitted with FitOptions(resume=True).
    max_minutes: training time budget per task; devices: > 1 trains data-parallel.
    Ctrl-C raises TrainingInterrupted; any other failure removes a run folder this call created."""
    # A built-in name wins over a same-named folder in the cwd (`detectors/` in the repo root would
    # otherwise be taken for a recipe path by recipes.recipe_path).
    rec = load_recipe(builtin_recipes().get(str(recipe), recipe), overrides)
    # every key checked before anything is written: detector sections by their typed settings (below),
    # the rest against the shipped recipe of that name (default: detectors.yaml)
    check_recipe(rec, "detectors", typed_sections=available_detectors(), schema_from=str(recipe))
    cls = get_detector(detector)
    dev = resolve_device(device or get_key(rec, "run.device", "auto"))
    set_threads(get_key(rec, "run.threads", None))
    loader_workers = recipe_loader_workers(rec)
    precision = check_precision(get_key(rec, "run.precision", "auto"))
    max_minutes = minutes(max_minutes)
    if cls.trains_network or devices != 1:
        check_devices(devices, dev)
    data = Path(data)
    dataset = open_dataset(data)
    tasks = plan_tasks(dataset, classes, train_classes, test_classes, irrelevant=cls.uses_irrelevant)
    if evaluate if evaluate is not None else get_key(rec, "run.evaluate", True):
        check_test_files(dataset, tasks)  # before hours of training, not after
    fingerprint = training_fingerprint(dataset, [c for t in tasks for c in t.train + t.irrelevant])
    # validates the detector's settings before anything is written; the realized config has defaults filled in
    config = cls(get_key(rec, detector, {}) or {}, dev).config
    out = Path(out)
    run = {
        "version": RUN_VERSION, "status": TRAINING, "detector": detector, "data": str(data.resolve()),
        "layout": dataset.layout, "device": str(dev), "recipe": rec.get("_source"), "overrides": overrides or {},
        "config": config, "run": get_key(rec, "run", {}), "fit": {"max_minutes": max_minutes, "devices": devices},
        "zero_shot": bool(split_classes(train_classes, "--train-class")), "tasks": [t.as_dict() for t in tasks],
        "trained": {}, FINGERPRINT: fingerprint,
    }
    claim = claim_folder(out, overwrite=overwrite, resume=resume)
    previous = check_resumable(out, run) if resume else {}
    if resume:
        check_saved_models(out, tasks)
    try:
        write_run(out, run)
        options = FitOptions(resume=resume, max_minutes=max_minutes, devices=devices, loader_workers=loader_workers,
                             progress=progress, precision=precision)
        _train_tasks(cls, dev, dataset, tasks, out, options, run, previous.get("trained", {}))
    except BaseException as exc:
        cause = _interrupt_of(exc)
        if cause is not None:
            raise _interrupted(out, claim, len({t.model_key for t in tasks}), isinstance(cause, Terminated)) from None
        release_folder(out, claim)  # no half-trained run left behind
        raise
    run["status"] = TRAINED
    write_run(out, run)
    if evaluate if evaluate is not None else get_key(rec, "run.evaluate", True):
        run["metrics"] = evaluate_run(out, device=device, progress=progress)
    return run


def _train_tasks(cls, dev, dataset, tasks: list[Task], out: Path, options: FitOptions, run: dict,
                 previous: dict) -> None:
    """Fit and save one model per training set, recording each in run.json's `trained` as it is saved
    (train sample count and the detector's training_info); with options.resume a saved model is kept."""
    bar = progress_bar(options.progress)
    for task in bar(tasks, desc=f"train {cls.name}"):
        if task.model_key in run["trained"]:
            continue
        refs = [r for c in task.train for r in dataset.samples(c, "train")]
        irrelevant = [r for c in task.irrelevant for r in dataset.samples(c, "train")]
        counts = {"train_samples": len(refs), **({"irrelevant_samples": len(irrelevant)} if task.irrelevant else {})}
        workdir = model_dir(out, task.model_key)
        if options.resume and is_saved(workdir):
            run["trained"][task.model_key] = {**previous.get(task.model_key, {}), **counts}
        else:
            det: Detector = cls(run["config"], dev)
            try:  # a damaged checkpoint or loss curve of a resumed fit
                det.fit(refs, replace(options, workdir=workdir, task=task.model_key, irrelevant=irrelevant))
            except DamagedFile as exc:
                raise exc.with_remedy(retrain_remedy(out, task.model_key)) from None
            det.save(workdir)
            run["trained"][task.model_key] = {**counts, **det.training_info}
        write_run(out, run)


def _interrupt_of(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) behind `exc`, also when a library turned it into its own error (open3d's
    import does: ImportError 'initialization failed' with the KeyboardInterrupt as its cause)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _interrupted(out: Path, claim: str | None, models: int, terminated: bool = False) -> TrainingInterrupted:
    """Keep an interrupted run that can be resumed; otherwise undo what this call created."""
    how, code = ("terminated (SIGTERM)", 143) if terminated else ("interrupted", 130)
    if can_resume(out):
        return TrainingInterrupted(f"{how}: {out} kept ({len(saved_models(out))} of {models} models saved); "
                                   "run the same command with --resume to continue", out, True, code)
    release_folder(out, claim)
    if claim is None:
        return TrainingInterrupted(f"{how}: nothing to resume from yet in {out}", out, False, code)
    undone = "removed" if claim == "created" else "emptied"
    return TrainingInterrupted(f"{how} before anything could be resumed; {out} {undone}", out, False, code)


def check_test_files(dataset, tasks: list[Task]) -> None:
    """One line for the first test sample the layout's reader would refuse for want of a file (an
    anomalous sample without its ground truth: it would be scored as all normal)."""
    for c in sorted({t.test for t in tasks}):
        for ref in dataset.samples(c, "test"):
            problem = dataset.missing(ref)
            if problem:
                raise FormatError(problem)


def check_saved_models(run_dir: Path, tasks: list[Task]) -> None:
    """Before a resumed run trains anything: every saved model it would keep loads, or one line names
    the damaged file and what to do."""
    for key in sorted({t.model_key for t in tasks}):
        if is_saved(model_dir(run_dir, key)):
            load_model(run_dir, key, "cpu")


def load_model(run_dir: Path, model_key: str, device) -> Detector:
    """The saved detector of one task; a damaged file of it is one line saying how to retrain that task."""
    try:
        return Detector.load(model_dir(run_dir, model_key), device)
    except DamagedFile as exc:
        raise exc.with_remedy(retrain_remedy(run_dir, model_key)) from None


def recipe_loader_workers(rec: dict) -> int:
    """Recipe run.loader_workers: DataLoader worker processes of a training fit (0 = in the main process)."""
    workers = get_key(rec, "run.loader_workers", 0)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise AnomalygenError(f"run.loader_workers must be a non-negative integer, got {workers!r}")
    return workers


def set_threads(threads) -> None:
    """Recipe run.threads: torch's CPU threads (null = torch's default, one per core)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise AnomalygenError(f"run.threads must be a positive integer or null, got {threads!r}")
    import torch

    torch.set_num_threads(threads)


def _metric(fn, *args, **kw) -> tuple[float | None, str | None]:
    try:
        return fn(*args, **kw), None
    except MetricError as exc:
        return None, str(exc)


def evaluate_task(det: Detector, dataset, task: Task, run_cfg: dict, progress: bool = True,
                  scores_path: Path | None = None) -> dict:
    """Score the test split of one task's class; returns its metrics row (and writes `scores_path`)."""
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
                                     **aupro_options(run_cfg))
        row["notes"] += [note] if note else []
    else:
        row["point_auroc"], note = _metric(point_auroc, targets, maps)
        row["notes"] += [note] if note else []
    row.update(res)
    if scores_path is not None:
        write_scores(scores_path, names, defects, scores, maps)
    return row


def aupro_options(run_cfg: dict) -> dict:
    """The AUPRO variant a run's `run` section asks for (recipes/detectors.yaml: aupro_variant, aupro_thresholds)."""
    variant = run_cfg.get("aupro_variant") or "exact"
    return {"variant": variant, "num_thresholds": int(run_cfg.get("aupro_thresholds") or 100)}


def aupro_description(run_cfg: dict) -> str:
    """How the table's AUPRO was computed, in words that name the public code it matches."""
    opts = aupro_options(run_cfg)
    if opts["variant"] == "btf":
        return f"btf: 3D-ADS au_pro_util.py, {opts['num_thresholds']} thresholds"
    return "exact: every distinct score a threshold, as anomalib's AUPRO"


def evaluate_run(run_dir, data=None, device: str | None = None, out=None, progress: bool = True) -> dict:
    """Load each task's model from `run_dir`, score the test split of `data` (default: the run's data),
    and write metrics.json / metrics.csv / metrics.md (and scores/) into `out` (default: run_dir)."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    if run["status"] != TRAINED:
        raise AnomalygenError(f"{run_dir}: training did not finish; run the same train-detector command with --resume")
    data = Path(data) if data else Path(run["data"])
    dataset = open_dataset(data)
    if (dataset.layout == MVTEC_LAYOUT) != (run["layout"] == MVTEC_LAYOUT):
        raise AnomalygenError(f"{data} is {dataset.layout} but the run was trained on {run['layout']}")
    run_cfg = run.get("run", {})
    dev = resolve_device(device or run_cfg.get("device", "auto"))
    set_threads(run_cfg.get("threads"))
    precision = check_precision(run_cfg.get("precision", "auto"))
    out = Path(out) if out else run_dir
    tasks = [Task.from_dict(t) for t in run["tasks"]]
    known = dataset.classes()
    for t in tasks:
        if t.test not in known or not dataset.samples(t.test, "test"):
            raise AnomalygenError(f"class {t.test!r} has no test split in {data}")
    save_maps = run_cfg.get("save_maps", True)
    out.mkdir(parents=True, exist_ok=True)
    lock_folder(out, "--out" if out != run_dir else "run folder")  # a run being trained or scored is not scored twice
    rows, models = [], {}
    for task in tqdm(tasks, desc=f"evaluate {run['detector']}", disable=not progress, leave=False, dynamic_ncols=True):
        if task.model_key not in models:
            models = {task.model_key: load_model(run_dir, task.model_key, dev)}
            models[task.model_key].precision = precision
        path = task_scores_file(out, task.name) if save_maps else None
        rows.append(evaluate_task(models[task.model_key], dataset, task, run_cfg, progress, path))
    kind = "images" if dataset.layout == MVTEC_LAYOUT else "points"
    metrics = {"detector": run["detector"], "data": str(data.resolve()), "layout": dataset.layout, "kind": kind,
               "device": str(dev), "aupro_variant": aupro_description(run_cfg), "rows": rows,
               "mean": summarize(rows, kind)}
    described = sorted({m.description() for m in models.values()} - {""})
    if described:
        metrics["description"] = "; ".join(described)
    write_metrics(out, metrics)
    return metrics
