"""Atomic file writes: a reader never sees a half-written file, a killed run leaves no
partial output where a reader looks, and a file-system fault is one clear error.

Where temp files go: inside an output root that holds a `.anomalygen/` folder (every
dataset command makes one first), temp files are written to `<root>/.anomalygen/tmp/`, a
hidden folder on the same file system (so the final rename stays atomic) that no loader or
`glob('*.txt')` ever reads; a resumed build empties it (`clean_temp`). Elsewhere (a
detector run folder, a preview folder), a hidden sibling `.<name>.<pid>.tmp<suffix>` is used.

File-system faults (disk full, read-only, no permission, a parent path that is a file or a
symbolic link to nothing) become an `OutputError` naming the path the user asked for and the
cause in words.

Durability: a file's data reaches the disk before its rename, so a visible file is whole even
after a power cut. One fsync per file costs ~4 ms of disk flush each (a build writes ~5,000
files); inside `durable_batch()` the writes of many files share ONE file-system sync before
their renames: the same promise at one flush per batch.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
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


# numpy's writers (np.save, ndarray.tofile) report a short write as "N requested and M written", with
# no errno: on a local disk that is a full disk (or a file-size limit)
SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")


def describe_os_error(exc: OSError) -> str:
    """The cause of an OSError in words (no errno numbers)."""
    if exc.errno in CAUSES:
        return CAUSES[exc.errno]
    short = SHORT_WRITE.search(str(exc))
    if short:
        return (f"only {short[2]} of {short[1]} bytes could be written: no space left on the device (disk full) "
                "or a file-size limit")
    return exc.strerror or str(exc)


def dangling_link(path: Path) -> str | None:
    """The target of `path` when it is a symbolic link to nothing, else None."""
    try:
        if path.is_symlink() and not path.exists():
            return os.readlink(path)
    except OSError:
        pass
    return None


def describe_path_error(path: str | os.PathLike, exc: OSError) -> str:
    """The cause of an OSError on `path` in words; a blocking parent file or a symbolic link to nothing
    on the way is named when that is the cause."""
    path = Path(path)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT):
        for parent in [path, *path.parents]:
            link = dangling_link(parent)
            if link is not None:
                return f"{parent} is a symbolic link to {link}, which does not exist; create that folder or remove the link"
            if exc.errno != errno.ENOENT and parent.exists() and not parent.is_dir():
                return f"{parent} is a file, not a folder"
    return describe_os_error(exc)


def output_error(path: str | os.PathLike, exc: OSError) -> OutputError:
    """OutputError for `path`, its cause in words (describe_path_error)."""
    return OutputError(f"cannot write {path}: {describe_path_error(path, exc)}")


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



def _new_temp(path: Path) -> Path:
    """A temp path for `path`, its folder made; an OSError becomes an OutputError naming `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return temp_path_for(path)
    except OSError as exc:
        raise output_error(path, exc) from None

@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; rename it onto `path` only if the block succeeds.

    Use for writers that insist on a filename (tifffile, PIL, open3d).
    The temp name keeps the real suffix so format-by-extension writers still work.
    An OSError in the block or the rename becomes an OutputError naming `path`.
    """
    path = Path(path)
    tmp = _new_temp(path)
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
    """Write `data` to `path` atomically (temp file + fsync + rename; inside `durable_batch()` the
    fsync and rename wait for the batch's commit)."""
    path = Path(path)
    batch = _BATCH.get()
    if batch is not None:
        batch.write(path, data)
        return path
    with atomic_path(path) as tmp:
        _write(tmp, data)
    return path


_BATCH: contextvars.ContextVar = contextvars.ContextVar("anomalygen_durable_batch", default=None)


class DurableBatch:
    """Atomic writes whose data is made durable together: each file goes to its temp path now; at
    `commit` one file-system sync flushes them all, then they are renamed in write order. Files are
    grouped (`begin`: a sample's files and its record): a group that fails before the commit is
    dropped (`drop`), and a rename that fails at the commit removes its group's renamed files, so no
    partial group is ever visible; the groups renamed before it stay."""

    def __init__(self):
        self.staged: list[tuple[Path, Path]] = []  # (temp, final), in write order
        self.starts: list[int] = [0]  # index in `staged` where each group begins

    def begin(self) -> int:
        """Start a group; returns its mark for `drop`."""
        if self.starts[-1] != len(self.staged):
            self.starts.append(len(self.staged))
        return len(self.staged)

    def drop(self, mark: int) -> None:
        """Forget (and remove the temp files of) everything written since `mark`."""
        for tmp, _ in self.staged[mark:]:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        del self.staged[mark:]
        self.starts = [s for s in self.starts if s < mark] + [mark] if mark else [0]

    def write(self, path: Path, data: bytes) -> None:
        tmp = _new_temp(path)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                if _START_WRITEBACK is not None:  # start the disk write now, so the commit's sync finds it done
                    os.posix_fadvise(fh.fileno(), 0, 0, _START_WRITEBACK)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise output_error(path, exc) from None
        self.staged.append((tmp, path))

    def commit(self) -> None:
        if not self.staged:
            return
        try:
            sync_files([tmp for tmp, _ in self.staged])
        except OSError as exc:
            first = self.staged[0][1]
            self.drop(0)
            raise output_error(first, exc) from None
        bounds = [s for s in self.starts if s < len(self.staged)] + [len(self.staged)]
        for g0, g1 in zip(bounds[:-1], bounds[1:]):
            done: list[Path] = []
            for tmp, path in self.staged[g0:g1]:
                try:
                    _commit(tmp, path)
                except OSError as exc:
                    for p in done:  # none of this group's files stays
                        with contextlib.suppress(OSError):
                            p.unlink(missing_ok=True)
                    self.drop(g0)
                    raise output_error(path, exc) from None
                done.append(path)
        self.staged, self.starts = [], [0]


@contextlib.contextmanager
def durable_batch() -> Iterator[DurableBatch]:
    """Within the block, write_bytes_atomic stages files (see DurableBatch); they are synced and
    renamed when the block ends, and removed if it raises."""
    batch = DurableBatch()
    token = _BATCH.set(batch)
    try:
        yield batch
        batch.commit()
    except BaseException:
        batch.drop(0)
        raise
    finally:
        _BATCH.reset(token)


def _syncfs():
    """libc's syncfs (Linux): flush one file system's dirty data with one journal commit."""
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _syncfs()
# Linux starts writing a file's dirty pages back (without waiting) on this hint; the batch's one sync
# then waits ~1 ms instead of ~10 ms for ten samples' files
_START_WRITEBACK = getattr(os, "POSIX_FADV_DONTNEED", None) if hasattr(os, "posix_fadvise") else None


def sync_files(paths: list[Path]) -> None:
    """Make the data of `paths` durable: one syncfs of their file system where the OS has it
    (they are temp files in one output root), else an fsync of each."""
    if not paths:
        return
    if _SYNCFS is not None:
        fd = os.open(paths[0].parent, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
