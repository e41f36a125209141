"""Progress bars for detector work: one tqdm style for every loop, off when asked."""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(enabled: bool):
    """A wrapper `bar(iterable, desc=..., total=...)` that shows a transient tqdm bar when enabled."""
    def wrap(it, desc="", total=None, **_):
        return tqdm(it, desc=desc, total=total, disable=not enabled, leave=False, dynamic_ncols=True)
    return wrap
