"""Run a function over many jobs: in this process, in local worker processes, or on a Dask cluster.

Builds and checks share this so that ordering (and so bytes) never depends on the number
of workers, and every long loop gets the same progress-bar hook.

    ordered_map   results in job order (checks, small loops)
    run_tasks     results as tasks finish, failures retried then reported by name, lazily fed
                  so memory stays flat; on local processes or a running Dask scheduler (`--scheduler`)
"""

from __future__ import annotations

import itertools
import sys
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from anomalygen.errors import AnomalygenError

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[Iterable, int], Iterable]  # e.g. lambda it, total: tqdm(it, total=total)

RETRIES = 2  # a failing task runs at most 1 + RETRIES times: a bad mesh fails every time, a lost worker rarely
_END = object()


def ordered_map(fn: Callable[[T], R], jobs: Sequence[T], workers: int = 1, progress: Progress | None = None,
                chunksize: int = 1, initializer: Callable[[], None] | None = None) -> Iterator[R]:
    """Yield fn(job) for each job in order; `workers` > 1 runs them in that many processes."""
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, initializer=initializer) as pool:
            it = pool.map(fn, jobs, chunksize=chunksize)
            yield from (progress(it, len(jobs)) if progress else it)
    else:
        it = map(fn, jobs)
        yield from (progress(it, len(jobs)) if progress else it)


@dataclass(frozen=True)
class Failed:
    """A task that failed on every attempt: its name, the last reason, how many attempts it got."""

    name: str
    reason: str
    attempts: int

    def __str__(self) -> str:
        return f"{self.name}: {self.reason} (after {self.attempts} attempt{'s' * (self.attempts != 1)})"


def failure_reason(exc: BaseException) -> str:
    """The first line of an exception, with its type: what a Failed task reports."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__



def _settle(fut, job, tries: int, retries: int, fatal: tuple, name) -> tuple[int | None, object]:
    """What a finished future of a pool means: (None, its result or a Failed once `retries` are
    spent) to report, or (tries, None) to queue the job again with that many attempts spent.
    An exception of a `fatal` type is raised at once."""
    if fut.cancelled():  # never started: no attempt spent
        return tries, None
    exc = fut.exception()
    if exc is None:
        return None, fut.result()
    if isinstance(exc, fatal):
        raise exc
    if isinstance(exc, BrokenProcessPool):
        exc = RuntimeError("its worker process died")
    if tries + 1 > retries:
        return None, Failed(name(job), failure_reason(exc), tries + 1)
    return tries + 1, None

def run_tasks(fn: Callable[[T], R], jobs: Iterable[T], total: int, name: Callable[[T], str], *, workers: int = 1,
              scheduler: str | None = None, retries: int = RETRIES, progress: Progress | None = None,
              initializer: Callable[[], None] | None = None,
              fatal: tuple[type[BaseException], ...] = (),
              affinity: Callable[[T], object] | None = None) -> Iterator[tuple[T, R | Failed]]:
    """Yield (job, fn(job)) as tasks finish, in any order; a job that fails 1 + `retries` times yields
    (job, Failed(name(job), reason, attempts)). An exception of a `fatal` type (a fault of the run, not
    of one sample, e.g. the output disk is full) is raised at once, without retries. `jobs` is read lazily and only a few tasks per worker
    are in flight, so the caller's memory does not grow with the number of jobs.

    scheduler: address of a running Dask scheduler ('tcp://host:8786'): one task per job on its
    workers; a worker that dies mid-task is replaced and the task rerun (up to the scheduler's
    `distributed.scheduler.allowed-failures`). Else `workers` > 1 local processes, else this process.
    Results must not depend on where or in what order jobs run: callers seed every job from what it
    is (anomalygen.seeds) and write its files atomically.

    affinity: a key of each job (e.g. its class); with local processes, consecutive jobs with the same
    key go to one process, so set-up a process caches per key (a class's refined mesh) is done once
    rather than by every process (see _lane_tasks).
    """
    if scheduler:
        if total == 0:
            return
        client = dask_client(scheduler)  # before the progress bar starts, so the dashboard line stays above it
        try:
            if progress is not None:
                print(f"dask: {scheduler}, {_threads(client)} worker threads, dashboard: "
                      f"{client.dashboard_link or 'none'}", file=sys.stderr)
            it = _dask_tasks(fn, iter(jobs), name, client, retries, initializer, fatal)
            yield from (progress(it, total) if progress else it)
        finally:
            client.close()
        return
    if workers > 1 and total > 1 and affinity is not None:
        it = _lane_tasks(fn, iter(jobs), name, workers, retries, initializer, fatal, affinity)
    elif workers > 1 and total > 1:
        it = _pool_tasks(fn, iter(jobs), name, workers, retries, initializer, fatal)
    else:
        it = _inline_tasks(fn, jobs, name, retries, fatal)
    yield from (progress(it, total) if progress else it)


def _inline_tasks(fn, jobs, name, retries, fatal=()):
    for job in jobs:
        for attempt in range(1, retries + 2):
            try:
                result = fn(job)
            except fatal:
                raise
            except Exception as exc:  # noqa: BLE001 - reported by name; the other jobs go on
                if attempt > retries:
                    yield job, Failed(name(job), failure_reason(exc), attempt)
                continue
            yield job, result
            break


def _pool_tasks(fn, jobs, name, workers, retries, initializer, fatal=()):
    """Local processes, 4 tasks per process in flight. A process that dies breaks the whole pool:
    every task in it counts one attempt and a fresh pool takes over."""
    queue: deque = deque()  # (job, attempts so far) to submit again
    running: dict = {}
    pool = ProcessPoolExecutor(workers, initializer=initializer)
    try:
        while True:
            while len(running) < 4 * workers:
                job, tries = queue.popleft() if queue else (next(jobs, _END), 0)
                if job is _END:
                    break
                running[pool.submit(fn, job)] = (job, tries)
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            if any(isinstance(f.exception(), BrokenProcessPool) for f in finished):
                finished = list(running)  # the rest of the pool's tasks are lost with it
                pool.shutdown(wait=True, cancel_futures=True)
                pool = ProcessPoolExecutor(workers, initializer=initializer)
            for fut in finished:
                job, tries = running.pop(fut)
                again, value = _settle(fut, job, tries, retries, fatal, name)
                if again is None:
                    yield job, value
                else:
                    queue.append((job, again))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


LANE_DEPTH = 2  # tasks queued in each process: the next one is there when it finishes one
STEAL_AT = 2  # an idle process takes half of another's group when that many of its tasks wait


class _Lane:
    """One worker process and the jobs waiting for it (those of the group it works on)."""

    def __init__(self, initializer):
        self.initializer = initializer
        self.pool = ProcessPoolExecutor(1, initializer=initializer)
        self.waiting: deque = deque()  # (job, attempts so far)
        self.running: set = set()

    def restart(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = ProcessPoolExecutor(1, initializer=self.initializer)


def _lane_tasks(fn, jobs, name, workers, retries, initializer, fatal, affinity):
    """Local processes, one lane each: a lane takes the next group of consecutive jobs with the same
    `affinity` key whole, so a group's set-up happens in one process. When no group is left, an idle
    lane takes the second half of the largest group still waiting, so the build ends evenly.
    Failures and dead processes are handled as in _pool_tasks, per lane."""
    groups = (list(g) for _, g in itertools.groupby(jobs, key=affinity))  # one group held at a time
    lanes = [_Lane(initializer) for _ in range(workers)]
    owner: dict = {}  # future -> (lane, job, attempts so far)

    def refill(lane: _Lane) -> None:
        while len(lane.running) < LANE_DEPTH:
            if not lane.waiting:
                group = next(groups, None)
                if group is not None:
                    lane.waiting.extend((job, 0) for job in group)
                else:
                    victim = max(lanes, key=lambda other: len(other.waiting))
                    if len(victim.waiting) < STEAL_AT:
                        return
                    for _ in range(len(victim.waiting) // 2):
                        lane.waiting.appendleft(victim.waiting.pop())
            job, tries = lane.waiting.popleft()
            fut = lane.pool.submit(fn, job)
            lane.running.add(fut)
            owner[fut] = (lane, job, tries)

    try:
        while True:
            for lane in lanes:
                refill(lane)
            if not owner:
                return
            finished, _ = wait(list(owner), return_when=FIRST_COMPLETED)
            for lane in lanes:
                if any(f in lane.running and isinstance(f.exception(), BrokenProcessPool) for f in finished):
                    finished = set(finished) | lane.running  # the rest of the lane's tasks are lost with it
                    lane.restart()
            for fut in finished:
                lane, job, tries = owner.pop(fut)
                lane.running.discard(fut)
                again, value = _settle(fut, job, tries, retries, fatal, name)
                if again is None:
                    yield job, value
                else:
                    lane.waiting.appendleft((job, again))
    finally:
        for lane in lanes:
            lane.pool.shutdown(wait=True, cancel_futures=True)


def dask_client(address: str):
    """A distributed.Client on a running scheduler, or one clear error line."""
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - a dependency; only a broken install lacks it
        raise AnomalygenError(f"--scheduler needs the 'distributed' package ({exc})") from None
    from anomalygen.dask_tls import client_security, refused_reason

    security = client_security(address)  # None unless tls://; a credentials problem is one line, before connecting
    try:
        return Client(address, timeout="10s", set_as_default=False, **({"security": security} if security else {}))
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        refused = refused_reason(exc)
        if refused:
            raise AnomalygenError(f"--scheduler {address}: {refused}") from None
        raise AnomalygenError(f"--scheduler {address}: no Dask scheduler answers there ({failure_reason(exc)})") from None


def _threads(client) -> int:
    return sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())


def _dask_tasks(fn, jobs, name, client, retries, initializer, fatal=()):
    """One task per job, a few per worker thread in flight; keys name the sample on the dashboard."""
    from distributed import as_completed

    if initializer is not None:
        client.run(initializer)
    run = uuid.uuid4().hex[:8]  # keys unique to this run: a long-lived cluster may hold older ones
    owner: dict = {}

    def submit():
        job = next(jobs, _END)
        if job is _END:
            return None
        fut = client.submit(fn, job, key=f"{name(job)}-{run}", retries=retries, pure=False)
        owner[fut.key] = job
        return fut

    first = [f for f in (submit() for _ in range(max(8, 4 * max(_threads(client), 1)))) if f is not None]
    if not first:
        return
    pending = as_completed(first, loop=client.loop)
    for fut in pending:
        job = owner.pop(fut.key)
        if fut.status == "finished":
            result = fut.result()
        elif isinstance(fut.exception(), fatal):
            raise fut.exception()
        else:  # an exception on every attempt, or KilledWorker: its worker died on every attempt allowed
            result = Failed(name(job), failure_reason(fut.exception()), 1 + retries)
        fut.release()
        nxt = submit()
        if nxt is not None:
            pending.add(nxt)
        yield job, result
