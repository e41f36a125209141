"""Area-uniform point sampling of a triangle mesh, driven by a numpy Generator (so a
sample's seed decides its points; trimesh's sampler takes only an int seed)."""

from __future__ import annotations

import numpy as np
import trimesh


def sample_surface(mesh: trimesh.Trimesh, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n,3) float64 points uniformly distributed over the surface area, and their face ids."""
    area = np.asarray(mesh.area_faces, dtype=np.float64)
    cdf = np.cumsum(area)
    face = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    face = np.minimum(face, len(area) - 1)
    r = rng.random((n, 2))
    flip = r.sum(axis=1) > 1
    r[flip] = 1 - r[flip]
    tri = np.asarray(mesh.triangles)[face]
    pts = tri[:, 0] + r[:, :1] * (tri[:, 1] - tri[:, 0]) + r[:, 1:] * (tri[:, 2] - tri[:, 0])
    return pts, face
