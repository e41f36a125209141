"""The checks every command applies to a time budget, a process count and a list of classes: one
rule each, called before anything is written, so the same value is refused with the same words
wherever it is given.

    minutes(value, "--max-minutes")        None, or a finite number > 0
    count_within(n, "--devices", 2, "CPU cores")   1 <= n <= what exists
    class_list("a,b", "--classes")         the names, none empty or repeated
"""

from __future__ import annotations

import math
import os
from typing import Sequence

from anomalygen.errors import AnomalygenError


def minutes(value, option: str = "--max-minutes") -> float | None:
    """A time budget in minutes: None (no budget) or a finite number above 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise AnomalygenError(f"{option} must be a positive number of minutes, got {value!r}")
    return float(value)


def usable_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def count_within(n, option: str, available: int, what: str) -> int:
    """A count of processes or devices: an integer from 1 to `available` (`what` names them)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise AnomalygenError(f"{option} must be a positive integer, got {n!r}")
    if n > available:
        raise AnomalygenError(f"{option} {n}: this machine has {available} {what}; give at most {available}")
    return n


def class_list(value: str | Sequence[str] | None, option: str = "--classes") -> list[str] | None:
    """'a,b' or ['a', 'b'] -> ['a', 'b'] (blanks around names dropped); None or nothing named -> None.
    A name given twice is refused: a class trained or scored twice would weigh twice in a mean."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(c).strip() for c in items if str(c).strip()]
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise AnomalygenError(f"{option}: {', '.join(twice)} given more than once; name each class once")
    return names or None


__all__ = ["class_list", "count_within", "minutes", "usable_cpus"]
