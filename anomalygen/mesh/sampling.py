"""Area-uniform point sampling of a triangle mesh, driven by a numpy Generator (so a
sample's seed decides its points; trimesh's sampler takes only an int seed)."""

from __future__ import annotations

import weakref

import numpy as np
import trimesh


_AREAS: dict[int, np.ndarray] = {}  # id(mesh) -> its face areas, while the mesh lives


def face_areas(mesh: trimesh.Trimesh) -> np.ndarray:
    """mesh.area_faces, computed as trimesh computes it (same operations, same numbers) and kept while
    the mesh lives: trimesh's own cache first hashes the vertex and face arrays (~1 ms a mesh)."""
    area = _AREAS.get(id(mesh))
    if area is None:
        v, f = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces)
        tri = v[f]
        vectors = tri[:, 1:, :] - tri[:, :2, :]
        crosses = np.cross(vectors[:, 0], vectors[:, 1])
        area = _AREAS[id(mesh)] = np.sqrt((crosses**2).sum(axis=1)) / 2.0
        weakref.finalize(mesh, _AREAS.pop, id(mesh), None)
    return area


def sample_surface(mesh: trimesh.Trimesh, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n,3) float64 points uniformly distributed over the surface area, and their face ids."""
    area = face_areas(mesh)
    cdf = np.cumsum(area)
    u = rng.random(n) * cdf[-1]
    order = np.argsort(u)  # the search walks the cdf once for sorted keys: ~2x faster, same faces
    face = np.empty(n, np.intp)
    face[order] = np.searchsorted(cdf, u[order], side="right")
    face = np.minimum(face, len(area) - 1)
    r = rng.random((n, 2))
    flip = r.sum(axis=1) > 1
    r[flip] = 1 - r[flip]
    v, f = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces)[face]
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    # a + r0 (b - a) + r1 (c - a), in place: the same operations in the same order, fewer temporaries
    b -= a
    b *= r[:, :1]
    c -= a
    c *= r[:, 1:]
    a += b
    a += c
    return a, face
