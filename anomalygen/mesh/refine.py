"""Refinement: split edges until none is longer than `max_edge`, so that defects have
vertices to move and area-uniform sampling stays uniform (the paper's subdivision module).
Subdivision is linear (no smoothing), so the refined surface IS the original surface."""

from __future__ import annotations

import numpy as np
import trimesh

from anomalygen import geometry as g


def longest_edge(mesh: trimesh.Trimesh) -> float:
    """mesh.edges_unique_length.max() without finding the unique edges (a sort of every edge): each
    edge's length is the same from either face, so the maximum over all face edges is the same number."""
    f = np.asarray(mesh.faces)
    if len(f) == 0:
        return 0.0
    v = np.asarray(mesh.vertices)
    return float(trimesh.util.row_norm(v[f[:, [1, 2, 0]].ravel()] - v[f.ravel()]).max())


def refine(mesh: trimesh.Trimesh, max_edge: float) -> trimesh.Trimesh:
    """Refined copy with every edge <= max_edge (absolute length), same surface, watertight kept.

    manifold3d's refine_to_length is C++ and keeps the mesh manifold; trimesh's
    subdivide_to_size is the fallback for meshes manifold3d refuses.
    """
    if longest_edge(mesh) <= max_edge:
        return mesh.copy()
    try:
        m = g.to_manifold(mesh)
    except ValueError:
        m = None
    if m is not None:
        length = float(max_edge)
        for _ in range(4):  # refine_to_length splits to *roughly* the length: tighten if needed
            out = g.from_manifold(m.refine_to_length(length))
            if longest_edge(out) <= max_edge * 1.001:
                return g.canonical(out)
            length *= 0.85
        mesh = out
    # exact linear subdivision; no vertex merging (coincident but distinct vertices stay apart)
    v, f = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=max_edge, max_iter=20)
    return g.canonical(trimesh.Trimesh(v, f, process=False))
