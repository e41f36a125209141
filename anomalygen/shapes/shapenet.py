"""ShapeNetCore v2 as a shape source (`--source DIR`).

Layout read: DIR/taxonomy.json (optional) and DIR/<synsetId>/<modelId>/models/model_normalized.obj.
Each Anomaly-ShapeNet class maps to a ShapeNetCore synset by its family (bottle0 -> bottle
02876657, tap1 -> faucet 03325088, ...); the class's digit picks the k-th model (sorted
ids, offset per family so that jar0 and vase0 differ). A model that cannot be made
watertight is skipped with its reason recorded, and the next one is tried. A family with
no ShapeNetCore synset (ashtray, eraser) or no models in DIR falls back to the
procedural catalog, and the manifest says so per class.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import trimesh

from anomalygen.errors import AnomalygenError, FormatError
from anomalygen.io.anomaly_shapenet import CLASSES
from anomalygen.shapes import catalog
from anomalygen.shapes.checks import prepare_source_mesh
from anomalygen.shapes.repair import RepairSettings, load_mesh

SYNSETS = {  # Anomaly-ShapeNet family -> ShapeNetCore v2 synset id
    "bag": "02773838", "bottle": "02876657", "bowl": "02880940", "bucket": "02747177", "cap": "02954340",
    "cup": "03797390", "headset": "03261776", "helmet": "03513137", "jar": "03593526", "microphone": "03759954",
    "shelf": "02871439", "tap": "03325088", "vase": "03593526",
}
KEYWORDS = {"ashtray": ("ashtray",), "eraser": ("eraser", "rubber")}  # searched in taxonomy names
MAX_TRIES = 5


def looks_like_shapenet(root: Path) -> bool:
    return (root / "taxonomy.json").is_file() or any(
        p.is_dir() and re.fullmatch(r"\d{8}", p.name) for p in root.iterdir())


class ShapeNetSource:
    kind = "shapenet"

    def __init__(self, root: Path, repair: RepairSettings = RepairSettings()):
        self.root = Path(root)
        self.repair = repair
        self.taxonomy = self._read_taxonomy()
        self._desc: dict[str, dict] = {}

    def _read_taxonomy(self) -> list[dict]:
        p = self.root / "taxonomy.json"
        if not p.is_file():
            return []
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise FormatError(f"{p}: not valid JSON ({exc})") from None
        if not isinstance(data, list):
            raise FormatError(f"{p}: expected a list of synsets")
        return data

    def synset_for(self, family: str) -> str | None:
        if family in SYNSETS:
            return SYNSETS[family]
        for entry in self.taxonomy:
            names = [n.strip().lower() for n in str(entry.get("name", "")).split(",")]
            if any(k in names for k in KEYWORDS.get(family, ())):
                return str(entry.get("synsetId"))
        return None

    def models(self, synset: str) -> list[Path]:
        d = self.root / synset
        if not d.is_dir():
            return []
        return sorted(p for p in d.glob("*/models/model_normalized.obj"))

    def classes(self) -> list[str]:
        return list(CLASSES)

    def mesh(self, cls: str, rng: np.random.Generator) -> trimesh.Trimesh:
        family = catalog.family_of(cls)
        k = int(re.search(r"(\d*)$", cls).group(1) or 0)
        synset = self.synset_for(family)
        models = self.models(synset) if synset else []
        if not models:
            why = f"no ShapeNetCore synset for {family!r}" if not synset else f"no models in {self.root / synset}"
            self._desc[cls] = {"source": "procedural", "family": family, "fallback": why}
            return catalog.make_shape(cls, rng)
        start = k + zlib.crc32(family.encode()) % len(models)
        skipped = []
        for t in range(min(MAX_TRIES, len(models))):
            path = models[(start + t) % len(models)]
            try:
                mesh, info = prepare_source_mesh(load_mesh(path), self.repair)
            except FormatError as exc:
                skipped.append(f"{path.parent.parent.name}: {str(exc).split(': ', 1)[-1]}")
                continue
            self._desc[cls] = {"source": "shapenet", "synset": synset, "model": path.parent.parent.name,
                               **info, "skipped": skipped}
            return mesh
        raise AnomalygenError(f"{cls}: none of {min(MAX_TRIES, len(models))} ShapeNet models in {self.root / synset} "
                              f"could be used ({'; '.join(skipped)})")

    def describe(self, cls: str) -> dict:
        return self._desc.get(cls, {"source": "shapenet"})

    def summary(self) -> dict:
        return {"kind": self.kind, "root": str(self.root)}
