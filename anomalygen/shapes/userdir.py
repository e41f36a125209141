"""A folder of the user's own meshes as a shape source (`--source DIR`).

    DIR/<class>/<anything>.obj|.ply|.stl|.off

One sub-folder is one class. A sub-folder with one mesh gives the class `<folder>`;
with several, each mesh is its own object class `<folder>0`, `<folder>1`, ... (natural
order), the way Anomaly-ShapeNet numbers bowl0..bowl5. Meshes are repaired to be
watertight (see repair.py); one that cannot be, or whose repair moved it farther than the
recipe's bound, is a clear error naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from anomalygen.errors import AnomalygenError, FormatError
from anomalygen.io import natural_key, subdirs
from anomalygen.shapes.checks import prepare_source_mesh
from anomalygen.shapes.repair import RepairSettings, load_mesh

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off")


class UserFolderSource:
    kind = "folder"

    def __init__(self, root: Path, repair: RepairSettings = RepairSettings()):
        self.root = Path(root)
        self.repair = repair
        self.files: dict[str, Path] = {}
        for d in subdirs(self.root):
            meshes = sorted((f for f in d.iterdir() if f.suffix.lower() in MESH_SUFFIXES), key=natural_key)
            if len(meshes) == 1:
                self.files[d.name] = meshes[0]
            else:
                for i, f in enumerate(meshes):
                    self.files[f"{d.name}{i}"] = f
        if not self.files:
            raise AnomalygenError(
                f"--source {self.root}: neither ShapeNetCore v2 (taxonomy.json, <synset>/<model>/models/"
                f"model_normalized.obj) nor a folder of meshes (<class>/*{'|'.join(MESH_SUFFIXES)})")
        self._how: dict[str, dict] = {}

    def classes(self) -> list[str]:
        return list(self.files)

    def mesh(self, cls: str, rng: np.random.Generator) -> trimesh.Trimesh:
        if cls not in self.files:
            raise AnomalygenError(f"class {cls!r} is not in {self.root}; classes there: {', '.join(self.files)}")
        path = self.files[cls]
        try:
            mesh, info = prepare_source_mesh(load_mesh(path), self.repair)
        except FormatError as exc:
            raise AnomalygenError(f"{path}: {str(exc).split(': ', 1)[-1] if str(exc).startswith(str(path)) else exc}") from None
        self._how[cls] = info
        return mesh

    def describe(self, cls: str) -> dict:
        info = self._how.get(cls) or {}
        return {"source": "folder", "file": str(self.files[cls].relative_to(self.root)), **info}

    def summary(self) -> dict:
        return {"kind": self.kind, "root": str(self.root)}
