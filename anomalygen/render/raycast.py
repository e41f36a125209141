"""Mesh -> organized point cloud (H, W, 3) + shaded RGB + object mask, MVTec 3D-AD style.

open3d's RaycastingScene casts all rays in C++ (about 0.01 s for 256 x 256 here; trimesh's
numpy ray path is ~1000x slower). Camera frame = world frame: the pinhole camera sits at
the origin looking along +Z, image x to the right, y down, so xyz holds (X, Y, Z) in the
camera frame like MVTec 3D-AD's tiffs, and a pixel's ray is (u - cx, v - cy, f) up to scale.
Invalid pixels (no hit) are all zeros.

Same bytes on any x86-64 machine: Embree (inside open3d) computes a hit's distance with the
CPU's approximate reciprocal (RCPPS plus a Newton step), whose last bits differ between Intel
and AMD processors; about one hit in six then lands 1-2 float32 ulps apart. So the caster
only picks the triangle each ray hits, and the hit point and the triangle's normal are
computed again here in float64 from that triangle, with plain IEEE arithmetic (no BLAS, no
SIMD-dispatched transcendental ufunc), and rounded once to float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anomalygen.geometry import dot3, triangle_hits

BACKGROUND_ID = 1  # geometry id of the background plane in a scene built by `render`


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float) -> "Camera":
        f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)  # libm, not numpy's SIMD-dispatched tan
        return cls(width, height, f, f, width / 2.0, height / 2.0)

    def ray_directions(self) -> np.ndarray:
        """(H, W, 3) unit ray directions through pixel centres."""
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        d = np.stack([(u + 0.5 - self.cx) / self.fx, (v + 0.5 - self.cy) / self.fy, np.ones_like(u)], -1)
        return d / _length(d)

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame points -> (N, 2) pixel coordinates (u, v) (continuous, pixel centres at +0.5)."""
        return np.stack([pts[:, 0] / pts[:, 2] * self.fx + self.cx, pts[:, 1] / pts[:, 2] * self.fy + self.cy], -1)

    def to_json(self) -> dict:
        return {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
                "model": "pinhole, camera at origin looking along +Z, x right, y down; xyz in scene units"}


@dataclass
class Render:
    xyz: np.ndarray        # (H, W, 3) float32, zeros where no hit
    normals: np.ndarray    # (H, W, 3) float32 unit normals facing the camera, zeros where no hit
    geometry: np.ndarray   # (H, W) int64: 0 object, 1 background plane, -1 nothing
    primitive: np.ndarray  # (H, W) int64 triangle index within its geometry, -1 nothing

    @property
    def object_mask(self) -> np.ndarray:
        return self.geometry == 0

    @property
    def valid(self) -> np.ndarray:
        return self.geometry >= 0


def plane_mesh(z: float, half: float, tilt: tuple[float, float] = (0.0, 0.0)):
    """A square (two triangles) at depth z, half-size `half`, tilted by small slopes dz/dx, dz/dy."""
    import trimesh

    xy = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    zz = z + tilt[0] * xy[:, 0] + tilt[1] * xy[:, 1]
    return trimesh.Trimesh(np.column_stack([xy, zz]), [[0, 1, 2], [0, 2, 3]], process=False)


def raycast(meshes: list, camera: Camera) -> Render:
    """Cast one ray per pixel against `meshes` (trimesh.Trimesh list; index = geometry id)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    triangles = []
    for m in meshes:
        v, f = np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.uint32)
        scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(f))
        triangles.append((v.astype(np.float64), f.astype(np.int64)))
    d64 = camera.ray_directions().reshape(-1, 3)
    d = d64.astype(np.float32)
    rays = np.concatenate([np.zeros_like(d), d], axis=1)
    ans = scene.cast_rays(o3d.core.Tensor(rays))
    t = ans["t_hit"].numpy()
    gid = ans["geometry_ids"].numpy().astype(np.int64)
    pid = ans["primitive_ids"].numpy().astype(np.int64)
    hit = np.isfinite(t) & (gid != o3d.t.geometry.RaycastingScene.INVALID_ID)
    gid[~hit] = -1
    pid[~hit] = -1
    pts, n = hits_from_triangles(triangles, d64, gid, pid)
    shape = (camera.height, camera.width)
    return Render(pts.reshape(*shape, 3), n.reshape(*shape, 3), gid.reshape(shape), pid.reshape(shape))


def hits_from_triangles(triangles: list[tuple[np.ndarray, np.ndarray]], d: np.ndarray, gid: np.ndarray,
                        pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3) float32, unit normals facing the camera (N, 3) float32) where the rays from the
    origin along `d` (N, 3) float64 meet triangle `pid` of geometry `gid` ((vertices float64, faces)
    per geometry); zeros where gid < 0. The same bytes on every x86-64 machine (geometry.triangle_hits)."""
    pts, nrm = np.zeros((len(d), 3)), np.zeros((len(d), 3))
    for g, (v, f) in enumerate(triangles):
        sel = np.flatnonzero(gid == g)
        if not len(sel):
            continue
        ray = d[sel]
        t, n = triangle_hits(v, f[pid[sel]], np.zeros_like(ray), ray)
        pts[sel] = ray * t[:, None]
        nrm[sel] = np.where((dot3(ray, n) > 0)[:, None], -n, n)  # face the camera
    return pts.astype(np.float32), nrm.astype(np.float32)


def shade(render: Render, albedo: np.ndarray, light_dir=(0.4, 0.5, 1.0), ambient: float = 0.35,
          specular: float = 0.15) -> np.ndarray:
    """Lambert + Blinn-Phong shading of per-pixel albedo (H, W, 3) in [0, 1] -> uint8 RGB; black where no hit."""
    # float64 and elementwise products and sums only (no BLAS dot, no SIMD-dispatched power): the
    # bytes are the same on every x86-64 machine
    light = np.asarray(light_dir, np.float64)
    light = light / np.sqrt(light[0] * light[0] + light[1] * light[1] + light[2] * light[2])
    n = render.normals.astype(np.float64)
    xyz = render.xyz.astype(np.float64)
    lam = np.clip(-(n[..., 0] * light[0] + n[..., 1] * light[1] + n[..., 2] * light[2]), 0, 1)[..., None]
    view = -xyz / np.maximum(_length(xyz), 1e-9)
    half = view - light
    half /= np.maximum(_length(half), 1e-9)
    spec = np.clip(n[..., 0] * half[..., 0] + n[..., 1] * half[..., 1] + n[..., 2] * half[..., 2], 0, 1)[..., None]
    spec5 = spec * spec * spec * spec * spec
    spec40 = spec5 * spec5
    spec40 *= spec40
    spec40 *= spec40  # spec ** 40
    rgb = albedo * (ambient + (1 - ambient) * lam) + specular * spec40
    rgb[~render.valid] = 0
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def _length(v: np.ndarray) -> np.ndarray:
    """|v| over the last axis (kept), by elementwise products: the same bits on every CPU."""
    return np.sqrt(v[..., 0:1] * v[..., 0:1] + v[..., 1:2] * v[..., 1:2] + v[..., 2:3] * v[..., 2:3])
