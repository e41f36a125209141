"""How far a repair moved the user's object: the two-sided distance between the user's surface
and the repaired one, measured on points spread over each.

    user -> repaired   how far the user's surface lies OUTSIDE the repaired solid: a lead the
                       repair lost, a wall it shrank. The user's faces the repaired solid
                       encloses (the inner halves of overlapping bodies a union removed, stray
                       inner faces of a soup) are no part of the object's outside and count 0.
    repaired -> user   how far the repaired surface lies from the user's anywhere: a patch
                       across a wide opening, a wall thickened or a corner rounded by remeshing.

Both are the largest distance found over the points (a sampled Hausdorff distance; the points
are spread by area and include every vertex and face centre, where a patch or a lost tip is
farthest), in the units of the meshes given, beside the share of each surface's area farther
than tau.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from anomalygen import geometry as g

POINTS = 20_000  # per surface; the largest gap between points is far below tau at unit diagonal


@dataclass(frozen=True)
class RepairDistance:
    user_to_repaired: float
    repaired_to_user: float
    user_share_beyond: float = 0.0      # share of the user's surface more than tau outside the repaired solid
    repaired_share_beyond: float = 0.0  # share of the repaired surface more than tau from the user's

    @property
    def largest(self) -> float:
        return max(self.user_to_repaired, self.repaired_to_user)


def repair_distance(user: trimesh.Trimesh, repaired: trimesh.Trimesh, tau: float, points: int = POINTS) -> RepairDistance:
    """The two directed distances of the module docstring; `repaired` must be watertight (its
    inside decides which of the user's faces are enclosed)."""
    import open3d as o3d

    pu, nu = _points(user, points, 1)
    pr, nr = _points(repaired, points, 2)
    outside = np.maximum(g.scene(repaired).compute_signed_distance(o3d.core.Tensor(pu), nsamples=3).numpy(), 0.0)
    away = g.scene(user).compute_distance(o3d.core.Tensor(pr)).numpy()
    return RepairDistance(float(outside.max()), float(away.max()),
                          float((outside[:nu] > tau).mean()), float((away[:nr] > tau).mean()))


def _points(mesh: trimesh.Trimesh, n: int, seed: int) -> tuple[np.ndarray, int]:
    """(float32 points, n): n spread by area first, then every vertex and face centre."""
    spread = trimesh.sample.sample_surface(mesh, n, seed=seed)[0]
    pts = np.concatenate([spread, np.asarray(mesh.vertices), np.asarray(mesh.triangles_center)])
    return np.ascontiguousarray(pts, np.float32), n
