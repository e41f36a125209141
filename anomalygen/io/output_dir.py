"""The output-folder contract of every writing command.

A command writes only into
  - a folder that does not exist or is empty,
  - its own earlier output (the same command: a resume or a re-run), or
  - any folder with `--overwrite`, which first removes what an earlier anomalygen output
    there wrote (`.anomalygen/`, manifest.json, pcd/, obj/, MVTec-layout class folders,
    preview sheets) and leaves other files alone.

Which command wrote a folder is recorded in `<out>/.anomalygen/command.json` (fixed bytes,
so it never breaks "same seed, same bytes"); folders written before that record existed
are recognised by their manifest's `generator`. Claiming a folder locks it for this process
(`anomalygen.io.lock`: a second writer stops with one line naming the first), then removes temp
files a killed run left in `<out>/.anomalygen/tmp/`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from anomalygen.errors import AnomalygenError
from anomalygen.io.atomic import STATE_DIR, OutputError, clean_temp, dangling_link, output_error, write_text_atomic
from anomalygen.io.lock import lock_folder, raise_if_busy

MARKER = "command.json"
SPLIT_DIRS = ("train", "validation", "test", "calibration")


def owner(out: Path) -> str | None:
    """The anomalygen command whose output `out` is, 'foreign' for anything else, None when empty/absent."""
    out = Path(out)
    if not out.is_dir() or not any(out.iterdir()):
        return None
    marker = out / STATE_DIR / MARKER
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text())["command"])
        except (ValueError, KeyError, TypeError):
            return "foreign"
    if (out / STATE_DIR / "build.json").is_file():
        return "build-shapenet"
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            gen = str(json.loads(manifest.read_text()).get("generator", ""))
        except (ValueError, AttributeError):
            gen = ""
        for name in ("build-shapenet", "render-mvtec3d", "depth-defects"):
            if gen.startswith("anomalygen") and name in gen:
                return name
    visible = [p for p in out.iterdir() if not p.name.startswith(".")]
    if visible and all(p.is_file() and p.suffix == ".png" for p in visible):
        return "preview"
    return "foreign"


def describe_owner(who: str) -> str:
    return "files that are not an anomalygen output" if who == "foreign" else f"the output of `anomalygen {who}`"


def claim_output(out: str | os.PathLike, command: str, overwrite: bool = False) -> Path:
    """Make `out` ready for `command` (see the module docstring); AnomalygenError naming the
    folder when it holds something else and `overwrite` is False. Returns `out`."""
    out = Path(out)
    check_out_path(out)
    check_owner(out, command, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock_folder(out)
        who = check_owner(out, command, overwrite)  # again, under the lock: what a writer before us left
        if overwrite and who is not None:
            clear_previous(out)
        (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
        clean_temp(out, siblings=who is not None)  # a resumed run: what a killed one left goes
        write_text_atomic(out / STATE_DIR / MARKER, json.dumps({"command": command}) + "\n")
    except OSError as exc:
        if isinstance(exc, AnomalygenError):
            raise
        raise output_error(Path(exc.filename or out), exc) from None
    return out


def check_out_path(out: Path, option: str = "--out") -> None:
    """One line when `out` cannot be a folder: it or a parent is a file, or a link to nothing."""
    for p in [out, *out.parents]:
        link = dangling_link(p)
        if link is not None:
            raise OutputError(f"{option} {out}: {p} is a symbolic link to {link}, which does not exist; "
                              "create that folder or remove the link")
        if p.exists():
            if not p.is_dir():
                raise OutputError(f"{option} {out}: {p} is a file, not a folder")
            break


def check_owner(out: Path, command: str, overwrite: bool) -> str | None:
    """The owner of `out` (see `owner`), after refusing one that `command` may not write into."""
    who = owner(out)
    if who is not None and who != command and not overwrite:
        raise_if_busy(out)  # another writer making it right now: name that one
        raise AnomalygenError(f"--out {out} holds {describe_owner(who)}; choose an empty folder or pass --overwrite "
                              "to replace it")
    return who


def clear_previous(out: Path) -> None:
    """Remove what an anomalygen output in `out` consists of; other files stay."""
    for name in (STATE_DIR, "pcd", "obj"):
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "manifest.json").unlink(missing_ok=True)
    for p in out.iterdir():
        if p.is_dir() and not p.name.startswith(".") and any((p / s).is_dir() for s in SPLIT_DIRS):
            shutil.rmtree(p, ignore_errors=True)  # an MVTec 3D-AD class folder
        elif p.is_file() and p.suffix == ".png":
            p.unlink(missing_ok=True)  # a preview sheet


__all__ = ["MARKER", "check_out_path", "claim_output", "clear_previous", "owner"]
