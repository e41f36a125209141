"""What every build driver shares to run its samples: locally or on a Dask cluster, resumable,
failures collected by name, the manifest streamed from per-sample records on disk.

A driver plans its jobs (each seeded from what it is, anomalygen.seeds), skips the ones a
previous run finished, hands the rest to anomalygen.parallel.run_tasks (local processes or
`--scheduler ADDRESS`), and writes the manifest only when every sample exists. Workers write
each sample's files atomically into OUT, a folder every worker sees; the driver keeps one small
record per sample under OUT/.anomalygen/records, so its memory does not grow with the build.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Callable, Iterable, Iterator

from anomalygen.errors import AnomalygenError
from anomalygen.io import write_text_atomic
from anomalygen.io.atomic import OutputError, durable_batch
from anomalygen.parallel import RETRIES, Failed, failure_reason, run_tasks

STATE_DIR = ".anomalygen"


class BuildFailed(AnomalygenError):
    """Samples that failed on every attempt. The others are on disk, the manifest is not written:
    re-running the same command retries only the missing samples."""

    def __init__(self, failures: list[Failed], total: int, result=None):
        self.failures, self.total, self.result = failures, total, result
        names = "; ".join(str(f) for f in failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
        super().__init__(f"{len(failures)} of {total} samples failed, no manifest written "
                         f"(run the same command again to retry them): {names}")


def run_samples(fn: Callable, jobs: Iterable, total: int, name: Callable[[object], str], failures: list[Failed], *,
                workers: int = 1, scheduler: str | None = None, progress=None, initializer=None,
                affinity: Callable | None = None, batch: int = 1) -> Iterator:
    """(job, result) of every job that succeeded, as they finish; the ones that failed on every attempt
    are appended to `failures`. A file-system fault writing the output (OutputError: disk full, read-only,
    not writable) stops the build at once: it is the run's fault, not the sample's, and retrying the other
    samples would only repeat it. `affinity`: see anomalygen.parallel.run_tasks (jobs sharing per-process
    set-up, e.g. one class's mesh, run in one local process).

    batch > 1 (local runs): up to `batch` consecutive jobs with the same affinity key run as one task
    whose files are made durable with one file-system sync (anomalygen.io.atomic.durable_batch) instead
    of an fsync per file; each job is still retried and reported on its own. On a Dask cluster every
    job stays its own task."""
    if batch > 1 and not scheduler:
        it = _batched(fn, jobs, total, name, workers, initializer, affinity, batch)
        it = progress(it, total) if progress else it
    else:
        it = run_tasks(fn, jobs, total, name, workers=workers, scheduler=scheduler, progress=progress,
                       initializer=initializer, fatal=(OutputError,), affinity=affinity)
    for job, result in it:
        if isinstance(result, Failed):
            failures.append(result)
        else:
            yield job, result


def _batched(fn, jobs, total, name, workers, initializer, affinity, size):
    key = affinity or (lambda job: None)
    groups = itertools.groupby(jobs, key=key)
    batches = (list(b) for _, g in groups for b in iter(lambda g=g: list(itertools.islice(g, size)), []))
    tasks = ((fn, b, RETRIES) for b in batches)
    for (_, batch, _), results in run_tasks(_run_batch, tasks, total, lambda t: name(t[1][0]), workers=workers,
                                            initializer=initializer, fatal=(OutputError,),
                                            affinity=lambda t: key(t[1][0])):
        if isinstance(results, Failed):  # the batch's process died on every attempt
            results = [results] * len(batch)
        for job, r in zip(batch, results):
            yield job, dataclasses.replace(r, name=name(job)) if isinstance(r, Failed) else r


def _run_batch(task) -> list:
    """Run a batch of jobs in this process, each retried like one task (Failed after 1 + retries
    attempts, its name filled in by the caller); their files are staged and made durable together
    when the batch ends. A file-system fault (OutputError) ends the batch: the jobs already committed
    stay, the others leave nothing."""
    fn, jobs, retries = task
    out: list = []
    with durable_batch() as staged:
        for job in jobs:
            mark = staged.begin()
            for attempt in range(1, retries + 2):
                try:
                    result = fn(job)
                except OutputError:
                    raise
                except Exception as exc:  # noqa: BLE001 - reported by name; the other jobs go on
                    staged.drop(mark)
                    if attempt > retries:
                        out.append(Failed("", failure_reason(exc), attempt))
                    continue
                out.append(result)
                break
    return out


class Ledger:
    """One JSON record per finished sample under OUT/.anomalygen/records/<key>.json.

    A build whose settings `fingerprint` differs from the one that wrote the records starts its
    ledger afresh (its files are rewritten anyway); the same settings reuse every record."""

    def __init__(self, out: Path, fingerprint: dict):
        self.root = Path(out) / STATE_DIR / "records"
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:16]
        state = Path(out) / STATE_DIR / "build.json"
        try:
            same = json.loads(state.read_text()).get("fingerprint") == digest
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(self.root, ignore_errors=True)
            write_text_atomic(state, json.dumps({"fingerprint": digest}))

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def done(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, key: str, record) -> None:
        write_text_atomic(self.path(key), json.dumps(record))

    def get(self, key: str):
        return json.loads(self.path(key).read_text())


def drop_manifest(out: Path) -> None:
    """A manifest describes a complete build: remove it before samples are (re)written."""
    (Path(out) / "manifest.json").unlink(missing_ok=True)
