"""Run a function over many jobs, in worker processes when asked, results in job order.

Builds and checks share this so that ordering (and so bytes) never depends on the
number of workers, and every long loop gets the same progress-bar hook.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[Iterable, int], Iterable]  # e.g. lambda it, total: tqdm(it, total=total)


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
