"""A detector run folder (the `--out` of `anomalygen train-detector`) and its run.json.

    run.json                what the run is: detector, data, layout, recipe, realized config, tasks, status
    models/<model key>/     one saved detector per training set (detector.json + state); a network
                            detector also keeps checkpoints/ and its loss curve there
    scores/<task>.npz       predictions of each task (anomalygen.detectors.scores)
    metrics.json, metrics.csv, metrics.md    per task and mean (anomalygen.detectors.reports)
    preview/                `anomalygen preview RUN`

run.json is written when training starts (status "training") and rewritten when every task
is trained (status "trained"), so an interrupted run is told apart from a finished one and
can be resumed. This module owns the folder: reading and writing run.json, which entries a
run may hold, and the checks before a folder is created, replaced or resumed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from anomalygen.errors import AnomalygenError
from anomalygen.io import write_text_atomic
from anomalygen.detectors.base import STATE_FILE

RUN_FILE = "run.json"
RUN_VERSION = 2  # version 1 files have no status and no fit: they were written only once complete
TRAINING, TRAINED = "training", "trained"
MODELS_DIR = "models"
CHECKPOINTS_DIR = "checkpoints"
RUN_ENTRIES = {RUN_FILE, MODELS_DIR, "scores", "metrics.json", "metrics.csv", "metrics.md", "preview"}
# what must match for --resume to continue a run (the rest, e.g. evaluation settings, may change)
RESUME_KEYS = ("detector", "data", "layout", "zero_shot", "tasks", "config")


def read_run(run_dir) -> dict:
    run_dir = Path(run_dir)
    p = run_dir / RUN_FILE
    if not p.is_file():
        raise AnomalygenError(f"{run_dir}: not a detector run (no {RUN_FILE}); create one with `anomalygen train-detector`")
    try:
        run = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise AnomalygenError(f"{p}: corrupt run file ({exc})") from None
    run.setdefault("status", TRAINED)
    return run


def write_run(run_dir, run: dict) -> Path:
    return write_text_atomic(Path(run_dir) / RUN_FILE, json.dumps(run, indent=2))


def model_dir(run_dir, model_key: str) -> Path:
    return Path(run_dir) / MODELS_DIR / model_key


def is_saved(directory: Path) -> bool:
    """A saved detector is complete once its detector.json exists (written last, atomically)."""
    return (Path(directory) / STATE_FILE).is_file()


def saved_models(run_dir) -> list[str]:
    models = Path(run_dir) / MODELS_DIR
    return sorted(p.name for p in models.iterdir() if is_saved(p)) if models.is_dir() else []


def can_resume(run_dir) -> bool:
    """Whether an interrupted run left anything to continue from: a saved model or a checkpoints/ folder."""
    models = Path(run_dir) / MODELS_DIR
    return models.is_dir() and any(is_saved(p) or (p / CHECKPOINTS_DIR).is_dir() for p in models.iterdir())


def claim_folder(out: Path, overwrite: bool = False, resume: bool = False) -> str | None:
    """Make `out` ready for a run; returns what this call may undo if training fails:
    'created' (remove the folder), 'emptied' (remove what was written into it), or None
    (a resumed run: nothing of it is removed).

    A non-empty folder needs --overwrite (and may then hold only a run's entries) or --resume."""
    out = Path(out)
    nonempty = out.is_dir() and any(out.iterdir())
    if resume and overwrite:
        raise AnomalygenError("--resume continues a run and --overwrite replaces it: give one of them")
    if resume:
        if not nonempty:
            raise AnomalygenError(f"{out}: nothing to resume (no run there); start it without --resume")
        return None
    if out.exists() and not out.is_dir():
        raise AnomalygenError(f"{out} exists and is not a folder; choose another --out")
    if nonempty:
        if not overwrite:
            hint = " (or --resume to continue it)" if (out / RUN_FILE).is_file() else ""
            raise AnomalygenError(f"{out} exists and is not empty; choose another --out or pass --overwrite{hint}")
        foreign = [p.name for p in out.iterdir() if p.name not in RUN_ENTRIES]
        if foreign:
            raise AnomalygenError(f"{out} holds files that are not a detector run's ({', '.join(sorted(foreign)[:3])}); "
                                  "refusing to overwrite it")
        shutil.rmtree(out)
    claim = "emptied" if out.exists() else "created"
    out.mkdir(parents=True, exist_ok=True)
    return claim


def release_folder(out: Path, claim: str | None) -> None:
    """Undo `claim_folder` after a failed run: no half-written run is left behind."""
    out = Path(out)
    if claim == "created":
        shutil.rmtree(out, ignore_errors=True)
    elif claim == "emptied" and out.is_dir():
        for p in out.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def check_resumable(out: Path, run: dict) -> dict:
    """The run.json in `out`, after checking that `run` (what this call would train) continues it:
    same detector, data, tasks and realized config. One line naming the first difference otherwise."""
    previous = read_run(out)
    now = json.loads(json.dumps(run))  # compare as stored: tuples are lists in JSON
    for key in RESUME_KEYS:
        if previous.get(key) != now.get(key):
            if key == "config":
                where = _first_difference(previous.get(key), now.get(key), previous.get("detector", ""))
                raise AnomalygenError(f"cannot resume {out}: it was trained with other settings ({where}); "
                                      "resume with the same recipe and --set options, or start a new run")
            if key in ("tasks", "zero_shot"):
                raise AnomalygenError(f"cannot resume {out}: it trains other classes "
                                      f"({', '.join(t['name'] for t in previous.get('tasks', []))}); "
                                      "resume with the same --classes / --train-class / --test-class")
            raise AnomalygenError(f"cannot resume {out}: it is a run of {key} {previous.get(key)!r}, not {now.get(key)!r}")
    return previous


def _first_difference(old, new, prefix: str) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in list(old) + [k for k in new if k not in old]:
            if old.get(k, ...) != new.get(k, ...):
                return _first_difference(old.get(k), new.get(k), f"{prefix}.{k}")
    return f"{prefix}: {old!r} in the run, {new!r} now"
