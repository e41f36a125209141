"""`anomalygen view RUN`: a detector run as page groups (anomalygen.view), one per task: each
test sample's ground truth beside the predicted map read back from RUN/scores, with the task's
metrics in its heading.

Scores are quantized over the task's range (its lowest score to its 99.9th percentile, so one
outlier does not squeeze every other score into the lowest bins; higher scores show as the top bin).
"""

from __future__ import annotations

import json
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from anomalygen.errors import AnomalygenError
from anomalygen.io import open_dataset
from anomalygen.view.datasets import manifest_records, record_of, view_sample
from anomalygen.view.samples import ViewGroup
from anomalygen.detectors.reports.tables import METRIC_COLUMNS
from anomalygen.detectors.runs import read_run
from anomalygen.detectors.scores import read_scores, task_scores_file


def _task_metrics(directory: Path) -> dict[str, dict]:
    """{task: {metric: value}} from RUN/metrics.json (empty when it is missing or unreadable)."""
    try:
        rows = json.loads((directory / "metrics.json").read_text()).get("rows", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    keys = [k for cols in METRIC_COLUMNS.values() for k, _ in cols]
    return {r["task"]: {k: r[k] for k in keys if isinstance(r.get(k), (int, float))} for r in rows if "task" in r}


def score_range(maps: list[np.ndarray]) -> tuple[float, float]:
    every = np.concatenate([np.ravel(m) for m in maps]) if maps else np.zeros(1)
    every = every[np.isfinite(every)]
    if not len(every):
        return 0.0, 1.0
    lo, hi = float(every.min()), float(np.percentile(every, 99.9))
    return lo, hi if hi > lo else lo + 1.0


@lru_cache(maxsize=1)
def _task_scores(path: Path) -> dict:
    """One task's scores, kept while its samples are written (the page goes task by task, so one
    task's maps are in memory at a time)."""
    return read_scores(path)


def _run_sample(path: Path, i: int, ref, record: dict):
    scores = _task_scores(path)
    return view_sample(ref, record, scores["maps"][i], float(scores["scores"][i]))


def run_groups(directory: str | Path, classes: list[str] | None = None) -> tuple[list[ViewGroup], dict]:
    """(one group per task of the run, optionally only tasks testing `classes`; the page's 'about')."""
    directory = Path(directory)
    run = read_run(directory)
    tasks = [t for t in run["tasks"] if not classes or t["test"] in classes or t["name"] in classes]
    if not tasks:
        raise AnomalygenError(f"{directory}: no task tests any of {', '.join(classes or [])}")
    if not Path(run["data"]).is_dir():
        raise AnomalygenError(f"{directory}: the run's data folder {run['data']} is not there (moved or removed)")
    dataset = open_dataset(run["data"])
    _, records = manifest_records(run["data"])
    metrics = _task_metrics(directory)
    groups = []
    for task in tasks:
        path = task_scores_file(directory, task["name"])
        if not path.is_file():
            raise AnomalygenError(f"{directory}: no predicted maps for {task['name']}; run `anomalygen evaluate {directory}` first")
        scores = read_scores(path)
        refs = {r.name + "/" + r.defect: r for r in dataset.samples(task["test"], "test")}
        keys = [f"{n}/{d}" for n, d in zip(scores["names"], scores["defects"])]
        loaders = [partial(_run_sample, path, i, refs[key], record_of(records, refs[key]))
                   for i, key in enumerate(keys) if key in refs]
        groups.append(ViewGroup(task["name"], loaders, metrics.get(task["name"], {}), score_range(scores["maps"])))
    about = {"run": str(directory.resolve()), **{k: run.get(k) for k in ("detector", "data", "layout", "status", "zero_shot")}}
    return groups, about
