"""Atomic file writes: a reader never sees a half-written file, a killed run leaves no
partial output where a reader looks, and a file-system fault is one clear error.

Where temp files go: inside an output root that holds a `.anomalygen/` folder (every
dataset command makes one first), temp files are written to `<root>/.anomalygen/tmp/`, a
hidden folder on the same file system (so the final rename stays atomic) that no loader or
`glob('*.txt')` ever reads; a resumed build empties it (`clean_temp`). Elsewhere (a
detector run folder, a preview folder), a hidden sibling `.<name>.<pid>.tmp<suffix>` is used.

File-system faults (disk full, read-only, no permission, a parent path that is a file)
become an `OutputError` naming the path the user asked for and the cause in words.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from anomalygen.errors import AnomalygenError

STATE_DIR = ".anomalygen"
TEMP_DIR = "tmp"
_COUNTER = itertools.count()

CAUSES = {
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied (not writable)",
    errno.EPERM: "operation not permitted (not writable)",
    errno.ENOTDIR: "a parent of this path is a file, not a folder",
    errno.EEXIST: "a parent of this path is a file, not a folder",
    errno.EISDIR: "this path is a folder, not a file",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EIO: "input/output error from the device",
}


class OutputError(AnomalygenError, OSError):
    """A file could not be written: one line with the path and the cause (CLI: exit 2)."""


def describe_os_error(exc: OSError) -> str:
    """The cause of an OSError in words (no errno numbers)."""
    return CAUSES.get(exc.errno, exc.strerror or str(exc))


def output_error(path: str | os.PathLike, exc: OSError) -> OutputError:
    """OutputError for `path`; a blocking parent file is named when that is the cause."""
    path = Path(path)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        for parent in [path, *path.parents]:
            if parent.exists() and not parent.is_dir():
                return OutputError(f"cannot write {path}: {parent} is a file, not a folder")
    return OutputError(f"cannot write {path}: {describe_os_error(exc)}")


def temp_root(path: Path) -> Path | None:
    """The `.anomalygen/tmp` folder of the output root holding `path`, or None outside one."""
    for parent in path.parents:
        if (parent / STATE_DIR).is_dir():
            return parent / STATE_DIR / TEMP_DIR
    return None


def temp_path_for(path: Path) -> Path:
    """Where the temp file of `path` is written (same file system, same suffix)."""
    root = temp_root(path)
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        return root / f"{os.getpid()}-{next(_COUNTER)}-{path.name}"
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


# a hidden sibling temp file: `.<stem>.<pid>.tmp<suffix>` (outside an output root, and what older
# versions wrote everywhere; a killed run could leave one beside the real files)
SIBLING_TEMP = re.compile(r"^\..+\.\d+\.tmp(\.[A-Za-z0-9]+)?$")


def clean_temp(root: str | os.PathLike, siblings: bool = False) -> int:
    """Remove temp files a dead run left in `root/.anomalygen/tmp` (and, with `siblings`, hidden
    sibling temp files anywhere under `root`); returns how many."""
    root = Path(root)
    d = root / STATE_DIR / TEMP_DIR
    n = 0
    if d.is_dir():
        n = sum(1 for _ in d.iterdir())
        shutil.rmtree(d, ignore_errors=True)
    if siblings and root.is_dir():
        for p in root.rglob(".*.tmp*"):
            if p.is_file() and SIBLING_TEMP.match(p.name):
                p.unlink(missing_ok=True)
                n += 1
    return n


def _commit(tmp: Path, path: Path) -> None:
    """The final rename (a seam for fault-injection tests)."""
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; rename it onto `path` only if the block succeeds.

    Use for writers that insist on a filename (tifffile, PIL, open3d).
    The temp name keeps the real suffix so format-by-extension writers still work.
    An OSError in the block or the rename becomes an OutputError naming `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(path)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        yield tmp
        _commit(tmp, path)
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(path, exc) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _write(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file + fsync + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        _write(tmp, data)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def all_or_nothing(paths) -> Iterator[None]:
    """Remove every one of `paths` if the block fails: the files of one sample are written
    together or not at all, so a fault mid-sample leaves no partial sample."""
    try:
        yield
    except BaseException:
        for p in paths:
            with contextlib.suppress(OSError):
                Path(p).unlink(missing_ok=True)
        raise
