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


def scanner_noise(mesh: trimesh.Trimesh, points: np.ndarray, faces: np.ndarray, sigma: float, limit: float,
                  rng: np.random.Generator) -> np.ndarray:
    """`points` (sampled on `faces` of `mesh`) moved along their face normals by Gaussian noise of
    std `sigma`, clipped to +-`limit` (absolute lengths): a scanner's depth noise. With `limit` below
    the labeler's tau, a normal sample's points stay within tau of its surface, so the label rule
    (distance to the original surface > tau) still marks none of them; a defective sample's points
    are labeled after the noise, by the same rule."""
    d = np.clip(rng.normal(0.0, sigma, len(points)), -limit, limit)
    return np.asarray(points, np.float64) + d[:, None] * np.asarray(mesh.face_normals, np.float64)[faces]
