"""One writer per output folder: an exclusive lock on the folder itself, held while a command writes.

Two commands writing into one `--out` at once would delete each other's temp files and mix their
samples. Every writing command takes this lock when it claims its folder (`anomalygen.io.output_dir.
claim_output`, the detector run folder, the other writers); a second writer then stops with one line
naming the process that holds the folder.

The lock is flock(2) on the folder's own file descriptor: no lock file is written (the folder's
bytes do not change) and the kernel drops the lock when the holding process ends, so a lock left
by a killed run is taken over by the next one without a word. The holder is named from
/proc/locks (Linux); elsewhere the line says "another process". On a file system that has no
flock, writing goes on unlocked.

A process holds each folder once (a command that claims a folder it already holds goes on). The
CLI releases what a command took when it ends (`session`); a library caller holds its folders
until `release_all()` or the end of the process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator

from anomalygen.errors import AnomalygenError

_HELD: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) -> the open descriptor holding the lock
_SESSIONS: list[list[tuple[int, int]]] = []


class FolderBusy(AnomalygenError):
    """Another process is writing into the folder."""


def lock_folder(folder: str | os.PathLike, option: str = "--out") -> None:
    """Hold an exclusive lock on the existing folder `folder`; FolderBusy naming the holder when
    another process holds it. `option` names the folder in the message."""
    folder = Path(folder)
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    if key in _HELD:
        os.close(fd)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise FolderBusy(f"{option} {folder} is being written by {holder(st)}; wait for it to finish or "
                             f"choose another {option}") from None
        return  # no flock on this file system: write unlocked
    _HELD[key] = fd
    if _SESSIONS:
        _SESSIONS[-1].append(key)


def raise_if_busy(folder: str | os.PathLike, option: str = "--out") -> None:
    """FolderBusy when another process holds `folder` (it may be making it right now: what is there is
    half made, and the line should name the writer, not the half-made folder)."""
    folder = Path(folder)
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) in _HELD:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FolderBusy(f"{option} {folder} is being written by {holder(st)}; wait for it to finish or "
                                 f"choose another {option}") from None
    finally:
        os.close(fd)  # a lock taken here goes with the descriptor


def holder(st: os.stat_result) -> str:
    """'process PID (its command line)' of the process holding a flock on the file `st`, from /proc/locks."""
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as fh:
            for line in fh:
                parts = line.split()
                if "FLOCK" in parts and dev in parts:
                    pid = parts[parts.index(dev) - 1]
                    return f"process {pid}{_command_of(pid)}"
    except OSError:
        pass
    return "another process"


def _command_of(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return ""
    if not args:
        return ""
    if len(args) > 2 and args[1] == "-m":  # python -m anomalygen.cli ...: show what was asked for
        args = ["anomalygen", *args[3:]]
    elif Path(args[0]).name.startswith("python") and len(args) > 1:
        args = [Path(args[1]).name, *args[2:]]
    else:
        args = [Path(args[0]).name, *args[1:]]
    text = " ".join(args)
    return f" ({text[:117]}...)" if len(text) > 120 else f" ({text})"


def release(key: tuple[int, int]) -> None:
    fd = _HELD.pop(key, None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor drops the flock


def release_all() -> None:
    """Release every folder this process holds."""
    for key in list(_HELD):
        release(key)


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Folders locked inside the block are released when it ends (one CLI command)."""
    _SESSIONS.append([])
    try:
        yield
    finally:
        for key in _SESSIONS.pop():
            release(key)


__all__ = ["FolderBusy", "holder", "lock_folder", "raise_if_busy", "release_all", "session"]
