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

import hashlib
import json
import shutil
from pathlib import Path

from anomalygen.errors import AnomalygenError
from anomalygen.io import write_text_atomic
from anomalygen.io.lock import lock_folder, raise_if_busy
from anomalygen.io.output_dir import check_out_path
from anomalygen.detectors.base import STATE_FILE
from anomalygen.detectors.stored import DamagedFile, read_json, reading

RUN_FILE = "run.json"
RERUN = "train the run again: the same train-detector command with --overwrite"
RUN_VERSION = 2  # version 1 files have no status and no fit: they were written only once complete
TRAINING, TRAINED = "training", "trained"
MODELS_DIR = "models"
CHECKPOINTS_DIR = "checkpoints"
RUN_ENTRIES = {RUN_FILE, MODELS_DIR, "scores", "metrics.json", "metrics.csv", "metrics.md", "preview"}
# what must match for --resume to continue a run (the rest, e.g. evaluation settings, may change)
RESUME_KEYS = ("detector", "data", "layout", "zero_shot", "tasks", "config")
FINGERPRINT = "data_fingerprint"  # run.json: the training files, checked by --resume (training_fingerprint)


def read_run(run_dir) -> dict:
    run_dir = Path(run_dir)
    p = run_dir / RUN_FILE
    if not p.is_file():
        raise AnomalygenError(f"{run_dir}: not a detector run (no {RUN_FILE}); create one with `anomalygen train-detector`")
    try:
        run = read_json(p, "run file")
    except DamagedFile as exc:
        raise exc.with_remedy(RERUN) from None
    problem = run_file_problem(run)
    if problem:
        raise DamagedFile(p, f"damaged run file: {problem}", RERUN)
    run.setdefault("status", TRAINED)
    return run


def run_file_problem(run: dict) -> str | None:
    """What makes `run` (run.json's object) unusable, or None: the keys a reader relies on, typed."""
    for key, kind in (("detector", str), ("data", str), ("layout", str), ("config", dict), ("tasks", list)):
        if not isinstance(run.get(key), kind):
            return f"'{key}' is {'missing' if key not in run else type(run[key]).__name__}"
    if run.get("status", TRAINED) not in (TRAINING, TRAINED):
        return f"unknown status {run['status']!r}"
    if not isinstance(run.get("trained", {}), dict):
        return "'trained' is not an object"
    for t in run["tasks"]:
        if not (isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("test"), str)
                and isinstance(t.get("train"), list) and all(isinstance(c, str) for c in t["train"])):
            return "a task entry lacks its name, train classes or test class"
    return None


def retrain_remedy(run_dir, model_key: str) -> str:
    """What to do about a damaged file of one task's saved model or checkpoint."""
    return (f"retrain that task: remove {model_dir(run_dir, model_key)} and run the same train-detector command "
            "with --resume (or train the whole run again with --overwrite)")


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
    """Make `out` ready for a run and lock it against a second writer (anomalygen.io.lock); returns
    what this call may undo if training fails: 'created' (remove the folder), 'emptied' (remove what
    was written into it), or None (a resumed run: nothing of it is removed).

    A non-empty folder needs --overwrite (and may then hold only a run's entries) or --resume."""
    out = Path(out)
    if resume and overwrite:
        raise AnomalygenError("--resume continues a run and --overwrite replaces it: give one of them")
    check_out_path(out)
    if out.exists() and not out.is_dir():
        raise AnomalygenError(f"{out} exists and is not a folder; choose another --out")
    try:
        _check_claimable(out, overwrite, resume)  # before anything is made
    except AnomalygenError:
        raise_if_busy(out)  # another run making it right now: name that one
        raise
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock_folder(out)
    if resume:
        return None
    if _check_claimable(out, overwrite, resume):  # under the lock: what a writer before us left
        for p in out.iterdir():  # the folder itself stays: it is what the lock holds
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return "emptied" if existed else "created"


def _check_claimable(out: Path, overwrite: bool, resume: bool) -> bool:
    """Whether `out` holds a run to replace; refuses a folder this call may not take."""
    nonempty = out.is_dir() and any(out.iterdir())
    if resume:
        if not nonempty:
            raise AnomalygenError(f"{out}: nothing to resume (no run there); start it without --resume")
        return False
    if nonempty:
        if not overwrite:
            hint = " (or --resume to continue it)" if (out / RUN_FILE).is_file() else ""
            raise AnomalygenError(f"{out} exists and is not empty; choose another --out or pass --overwrite{hint}")
        foreign = [p.name for p in out.iterdir() if p.name not in RUN_ENTRIES]
        if foreign:
            raise AnomalygenError(f"{out} holds files that are not a detector run's ({', '.join(sorted(foreign)[:3])}); "
                                  "refusing to overwrite it")
    return nonempty


def release_folder(out: Path, claim: str | None) -> None:
    """Undo `claim_folder` after a failed run: no half-written run is left behind."""
    out = Path(out)
    if claim == "created":
        shutil.rmtree(out, ignore_errors=True)
    elif claim == "emptied" and out.is_dir():
        for p in out.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def training_fingerprint(dataset, classes) -> dict:
    """{class: {"files", "bytes", "blake2b"}} over the training files of `classes` (their names, sizes
    and contents): what a resumed run must find unchanged. Reading the files costs about what one
    training epoch reads."""
    out = {}
    for c in sorted(set(classes)):
        digest, files, size = hashlib.blake2b(digest_size=16), 0, 0
        for ref in dataset.samples(c, "train"):
            for kind, path in sorted(ref.files.items()):
                path = Path(path)
                with reading(path, "training file"):
                    with open(path, "rb") as fh:
                        content = hashlib.file_digest(fh, "blake2b").hexdigest()
                    n = path.stat().st_size
                digest.update(f"{ref.split}/{ref.defect}/{ref.name}/{kind} {n} {content}\n".encode())
                files, size = files + 1, size + n
        out[c] = {"files": files, "bytes": size, "blake2b": digest.hexdigest()}
    return out


def check_resumable(out: Path, run: dict) -> dict:
    """The run.json in `out`, after checking that `run` (what this call would train) continues it:
    same detector, data, tasks and realized config, and the same training files (names, sizes,
    contents). One line naming the first difference otherwise."""
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
    then, here = previous.get(FINGERPRINT), now.get(FINGERPRINT) or {}
    if then is not None:  # run files written before fingerprints existed are resumed unchecked
        for c in sorted(set(then) | set(here)):
            if then.get(c) != here.get(c):
                raise AnomalygenError(f"cannot resume {out}: the training data of class {c} changed since the run "
                                      f"started ({_files(then.get(c))} then, {_files(here.get(c))} now); resume on "
                                      "the same data, or train again with --overwrite")
    return previous


def _files(entry: dict | None) -> str:
    return "none" if not entry else f"{entry['files']} files, {entry['bytes']} bytes"


def _first_difference(old, new, prefix: str) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in list(old) + [k for k in new if k not in old]:
            if old.get(k, ...) != new.get(k, ...):
                return _first_difference(old.get(k), new.get(k), f"{prefix}.{k}")
    return f"{prefix}: {old!r} in the run, {new!r} now"
