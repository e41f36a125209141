"""Fast Wavefront OBJ bytes for the obj/ folder of a build.

trimesh's exporter formats numbers in Python one by one (~0.15 s for a 30k-face mesh,
a third of a sample's budget); one C-level `%` over the table (io._text) is ~5x faster.
Vertices are written as float32 with round-trip digits, faces 1-based, so
`trimesh.load` gives back the same watertight mesh.
"""

from __future__ import annotations

import numpy as np
import trimesh

from anomalygen.io._text import format_table


def obj_bytes(mesh: trimesh.Trimesh) -> bytes:
    v = np.asarray(mesh.vertices, dtype=np.float32)
    f = np.asarray(mesh.faces, dtype=np.int64) + 1
    text = format_table([v[:, 0], v[:, 1], v[:, 2]], " ")
    faces = format_table([f[:, 0], f[:, 1], f[:, 2]], " ")
    vt = "v " + text.replace("\n", "\nv ")[:-2] if len(v) else ""
    ft = "f " + faces.replace("\n", "\nf ")[:-2] if len(f) else ""
    return f"# anomalygen mesh: {len(v)} vertices, {len(f)} faces\n{vt}{ft}".encode("ascii")
