"""Reading and writing the files a detector run stores, so that a damaged one is one clear line.

A run folder is copied, synced and left on disks that fill up; a file in it may be truncated,
overwritten with something else or missing. Every reader of a stored file (run.json, a saved
detector's detector.json, model.pt, memory banks, checkpoints, scores) goes through `reading`,
which turns whatever the library raised into a `DamagedFile` naming the file; the engine adds
what to do about it (retrain that task, or --overwrite).

Writes: `save_torch` writes a torch object whose bytes depend only on the object. torch.save to
a path names the archive's records after the file (`<name>/data.pkl`), and an atomic write's
temp file carries the process id, so two identical runs would differ; saved through a file
object, the records are always named `archive/`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from anomalygen.errors import AnomalygenError
from anomalygen.io import write_bytes_atomic


class DamagedFile(AnomalygenError):
    """A stored file that cannot be read back: `path` and why, without the library's internals."""

    def __init__(self, path: str | os.PathLike, why: str, remedy: str = ""):
        self.path, self.why, self.remedy = Path(path), why, remedy
        super().__init__(f"{self.path}: {why}" + (f"; {remedy}" if remedy else ""))

    def with_remedy(self, remedy: str) -> "DamagedFile":
        return DamagedFile(self.path, self.why, remedy)


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str = "file") -> Iterator[None]:
    """Any failure inside the block (the reader's own types vary: EOFError, UnpicklingError,
    BadZipFile, ValueError, RuntimeError, ...) becomes DamagedFile naming `path`."""
    try:
        yield
    except AnomalygenError:
        raise
    except FileNotFoundError:
        raise DamagedFile(path, f"the {what} is missing") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  a reader's message names its own internals, not the file
        raise DamagedFile(path, f"damaged {what}: truncated, overwritten or not written by anomalygen "
                                f"({type(exc).__name__})") from None


def read_json(path: str | os.PathLike, what: str = "file", kind: type = dict):
    """The JSON value in `path`, which must be of type `kind`."""
    with reading(path, what):
        value = json.loads(Path(path).read_text())
    if not isinstance(value, kind):
        raise DamagedFile(path, f"damaged {what}: holds a JSON {type(value).__name__}, not a JSON "
                                f"{'object' if kind is dict else kind.__name__}")
    return value


def load_array(path: str | os.PathLike, what: str = "array file") -> np.ndarray:
    with reading(path, what):
        return np.load(path, allow_pickle=False)


def load_torch(path: str | os.PathLike, what: str = "weights file", **kwargs):
    import torch

    with reading(path, what):
        return torch.load(path, map_location="cpu", weights_only=True, **kwargs)


def save_torch(obj, path: str | os.PathLike) -> Path:
    """torch.save `obj` to `path` atomically, with bytes that depend only on `obj` (see the module doc)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_bytes_atomic(path, buf.getvalue())


__all__ = ["DamagedFile", "load_array", "load_torch", "read_json", "reading", "save_torch"]
