"""Find a Blender to run `blender_scripts/` with: the bpy module or a `blender` binary.

Order: $ANOMALYGEN_BLENDER ("bpy", or a path to a blender executable), then the bpy
module importable by this Python (the `[blender]` extra: bpy 5.0.1 on Python 3.11),
then `blender` on PATH. Finding bpy does not import it (that costs ~1 s and 270 MB):
scripts always run in a separate process, so a Blender crash never takes us down.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from anomalygen.errors import AnomalygenError

ENV = "ANOMALYGEN_BLENDER"
INSTALL_HINT = ("install the bpy module (pip install 'anomalygen[blender]': bpy 5.0.1, Python 3.11 only), "
                f"put a `blender` binary on PATH, or set {ENV} to one")


@dataclass(frozen=True)
class Launcher:
    """How to start a script inside Blender: `kind` 'bpy' (python + module) or 'binary'."""

    kind: str
    executable: str

    def command(self, script: str | os.PathLike, args: list[str] = ()) -> list[str]:
        """argv that runs `script` with `args` after '--' (both kinds read them the same way)."""
        if self.kind == "bpy":
            return [self.executable, str(script), "--", *map(str, args)]
        # --python-exit-code: a script that raises makes Blender exit non-zero
        return [self.executable, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1",
                "--python", str(script), "--", *map(str, args)]

    def describe(self) -> str:
        return f"bpy module via {self.executable}" if self.kind == "bpy" else f"blender binary {self.executable}"


def bpy_importable() -> bool:
    return importlib.util.find_spec("bpy") is not None


def find_launcher(prefer: str | None = None) -> Launcher:
    """The Blender to use; AnomalygenError with what to install when there is none."""
    choice = prefer or os.environ.get(ENV) or ""
    if choice == "bpy":
        if not bpy_importable():
            raise AnomalygenError(f"{ENV}=bpy but this Python cannot import bpy; {INSTALL_HINT}")
        return Launcher("bpy", sys.executable)
    if choice:
        path = shutil.which(choice) or (choice if os.access(choice, os.X_OK) else None)
        if not path:
            raise AnomalygenError(f"{ENV}={choice!r} is not an executable Blender; {INSTALL_HINT}")
        return Launcher("binary", str(path))
    if bpy_importable():
        return Launcher("bpy", sys.executable)
    path = shutil.which("blender")
    if path:
        return Launcher("binary", path)
    raise AnomalygenError(f"no Blender found: {INSTALL_HINT}")


def scripts_dir() -> Path:
    """Folder of the shipped blender_scripts (installed as package anomalygen.blender_scripts)."""
    try:
        return Path(str(resources.files("anomalygen.blender_scripts")))
    except ModuleNotFoundError:  # running from a source tree without the mapping
        return Path(__file__).resolve().parents[2] / "blender_scripts"


def resolve_script(name: str | os.PathLike) -> Path:
    """A user's script path, or the name of a shipped one ('defect' or 'defect.py')."""
    p = Path(name)
    if p.is_file():
        return p.resolve()
    shipped = scripts_dir() / (p.name if p.suffix == ".py" else p.name + ".py")
    if p.parent == Path(".") and shipped.is_file() and not shipped.name.startswith("_"):  # _*.py: the scripts' helpers
        return shipped
    known = sorted(q.stem for q in scripts_dir().glob("*.py") if not q.name.startswith("_"))
    raise AnomalygenError(f"no Blender script {str(name)!r}: not a file, and not one of the shipped scripts "
                          f"({', '.join(known)})")
