"""The point-splat preview draws what the cloud holds: a flat face of a sampled box renders as the
same face rendered from the mesh itself, with no pits where a gap between random points let
the far side of the box through."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from anomalygen.preview import splat
from anomalygen.preview.points import TILE, plan_views
from anomalygen.preview.splat import NORMAL_RGB, depth_shading, look_rotation, render


def mesh_shading(mesh: trimesh.Trimesh, direction, size: int, center, extent: float, sigma: float):
    """(shade, filled) of the same orthographic view as `render`, ray-cast from the mesh."""
    import open3d as o3d

    R = look_rotation(direction)
    scale = size * 0.92 / extent
    ys, xs = np.mgrid[0:size, 0:size]
    cam = np.stack([(xs - size / 2) / scale, (size / 2 - ys) / scale, np.full(xs.shape, extent)], -1).reshape(-1, 3)
    origins = center + cam @ R
    rays = np.concatenate([origins, np.tile(-R[2], (len(origins), 1))], 1).astype(np.float32)
    sc = o3d.t.geometry.RaycastingScene()
    sc.add_triangles(o3d.core.Tensor(mesh.vertices.astype(np.float32)), o3d.core.Tensor(mesh.faces.astype(np.uint32)))
    t = sc.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().reshape(size, size)
    filled = np.isfinite(t)
    z = np.where(filled, (extent - t) * scale, 0.0)
    return depth_shading(z, filled, sigma), filled


def pit_share(points: np.ndarray, mesh: trimesh.Trimesh) -> float:
    """Share of the object's inner pixels, over the three preview views, whose shading differs
    from the mesh's own by more than a fifth of the shading range (a pit is far darker or lighter
    than the face around it; the grain of the splats stays well below that)."""
    from scipy.ndimage import binary_erosion

    dirs, framing = plan_views(points, np.zeros(len(points), np.uint8))
    spacing = framing["spacing"]
    scale = TILE * 0.92 / framing["extent"]
    r = int(np.clip(np.ceil(1.9 * spacing * scale), 1, 8))
    bad = total = 0
    for d in dirs:
        img = render(points, None, d, TILE, **framing)
        shade_pts = img[..., 0] / NORMAL_RGB[0]
        shade_mesh, filled = mesh_shading(mesh, d, TILE, framing["center"], framing["extent"], max(1.0, 0.8 * r))
        inner = binary_erosion(filled & (img.sum(-1) < 3 * 255), iterations=r + 3)
        bad += int((np.abs(shade_pts - shade_mesh) > 0.2)[inner].sum())
        total += int(inner.sum())
    return bad / total


@pytest.fixture(scope="module")
def die():
    box = trimesh.creation.box((0.5, 0.4, 0.15))
    pts = trimesh.sample.sample_surface(box, 8000, seed=4)[0]  # the fewest points a build writes
    return box, pts


def test_flat_faces_render_without_pits(die):
    box, pts = die
    assert pit_share(pts, box) < 0.01


def test_the_check_sees_the_pits_a_render_without_the_visibility_test_draws(die, monkeypatch):
    box, pts = die
    monkeypatch.setattr(splat, "see_through", lambda z, filled, **_: np.zeros_like(filled))
    assert pit_share(pts, box) > 0.015


def test_an_opening_wider_than_the_reach_still_shows_what_is_behind_it():
    """A real through-hole is not papered over: the far wall shows through it as in the mesh."""
    plate = trimesh.creation.box((1.0, 1.0, 0.2)).difference(trimesh.creation.cylinder(0.12, 1.0), engine="manifold")
    pts = trimesh.sample.sample_surface(plate, 30000, seed=5)[0]
    img = render(pts, None, np.array([0.0, 0.0, 1.0]), TILE)
    centre = img[TILE // 2 - 5:TILE // 2 + 5, TILE // 2 - 5:TILE // 2 + 5]
    assert (centre == splat.BACKGROUND).all()  # straight through the hole: background, as in the mesh
