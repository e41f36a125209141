"""Triangle-mesh geometry shared by every stage that handles meshes (no I/O, no state):
the shape catalog and mesh repair, the defect operators and their sizing, the Blender
engine's sizing and the renderer. It sits below all of them so none imports another.

Manifold3d conversions (watertight booleans), open3d raycasting (distances, wall
thickness, exposed faces), surface picking, frames and rotations, and a canonical
vertex/face order. Lengths handed to defect operators are fractions of the object's
bounding-box diagonal (`diagonal(mesh)`), so one recipe fits objects of any scale.
"""

from __future__ import annotations

import math
import os

import numpy as np
import trimesh

try:  # manifold3d gives fast, watertight booleans; trimesh wraps the same library
    import manifold3d
except ImportError:  # pragma: no cover - declared dependency
    manifold3d = None


def one_boolean_thread() -> None:
    """Make manifold3d run single-threaded in this process (for worker processes of a build).

    manifold3d runs on a TBB thread pool sized by the CPUs the process may use, read once at its
    first parallel call. A build's booleans (~15 ms each) gain no wall time from the pool here while
    its threads spin for twice the CPU, and a build's worker processes already use every core. So the
    first call is made while this process may use one CPU, then the others are given back. The
    manifold3d API offers no thread setting. No effect where TBB has already started."""
    if manifold3d is None or not hasattr(os, "sched_setaffinity"):
        return
    mask = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(mask)})
        manifold3d.Manifold.cube([1.0, 1.0, 1.0]).refine(2).num_tri()
    finally:
        os.sched_setaffinity(0, mask)


def dot3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a . b over the last axis (length 3), broadcast, as three products added left to right.

    Used where the result decides bytes on disk: `@` hands float64 products to BLAS, whose kernel
    (and so the last bits of a dot product) depends on the CPU."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def power(x: np.ndarray, p: float) -> np.ndarray:
    """x ** p elementwise with libm's pow: numpy's power (like exp, log, arctan2) takes an AVX-512
    path on CPUs that have it, whose last bits differ from other CPUs'. For short arrays."""
    return np.array([math.pow(float(v), p) for v in np.ravel(x)], np.float64).reshape(np.shape(x))


def diagonal(mesh: trimesh.Trimesh) -> float:
    lo, hi = mesh.bounds
    return float(np.linalg.norm(hi - lo))


_CACHE: dict[tuple[str, int], tuple] = {}


def _cached(kind: str, mesh: trimesh.Trimesh, build):
    """Per-mesh cache (keyed by identity, checked by weakref) for the objects every defect on
    the same class mesh rebuilds otherwise: its manifold and its raycasting scene."""
    import weakref

    key = (kind, id(mesh))
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is mesh:
        return hit[1]
    value = build(mesh)
    if len(_CACHE) > 40:  # a dozen classes' worth; a build works class by class
        _CACHE.clear()
    _CACHE[key] = (weakref.ref(mesh), value)
    return value


def scene(mesh: trimesh.Trimesh):
    """open3d RaycastingScene of the mesh (cached per mesh object)."""
    def build(m):
        import open3d as o3d

        sc = o3d.t.geometry.RaycastingScene()
        sc.add_triangles(o3d.core.Tensor(np.asarray(m.vertices, dtype=np.float32)),
                         o3d.core.Tensor(np.asarray(m.faces, dtype=np.uint32)))
        return sc
    return _cached("scene", mesh, build)


def to_manifold(mesh: trimesh.Trimesh):
    """manifold3d.Manifold of a closed mesh (cached per mesh object); ValueError if not closed."""
    return _cached("manifold", mesh, _to_manifold)


def _to_manifold(mesh: trimesh.Trimesh):
    m = manifold3d.Manifold(manifold3d.Mesh(
        vert_properties=np.ascontiguousarray(mesh.vertices, dtype=np.float32),
        tri_verts=np.ascontiguousarray(mesh.faces, dtype=np.uint32)))
    if m.status() != manifold3d.Error.NoError:
        raise ValueError(f"mesh is not a closed manifold ({m.status()})")
    return m


def from_manifold(m, mm=None) -> trimesh.Trimesh:
    """trimesh of a Manifold, with manifold3d's split vertices merged back.

    MeshGL keeps separate copies of a vertex where triangles of different origin meet
    (after booleans) and lists them in merge_from_vert -> merge_to_vert; without applying
    that map the mesh would not be watertight in trimesh's (index-based) sense. `mm`: m.to_mesh()
    when the caller has it already."""
    mm = m.to_mesh() if mm is None else mm
    v = np.asarray(mm.vert_properties)[:, :3].astype(np.float64)
    f = np.asarray(mm.tri_verts).astype(np.int64)
    src = np.asarray(mm.merge_from_vert, dtype=np.int64)
    if len(src):
        remap = np.arange(len(v))
        remap[src] = np.asarray(mm.merge_to_vert, dtype=np.int64)
        f = remap[f]
        used = np.unique(f)
        new_index = np.full(len(v), -1, np.int64)
        new_index[used] = np.arange(len(used))
        v, f = v[used], new_index[f]
    return trimesh.Trimesh(v, f, process=False)


def face_origin(m, mm=None) -> np.ndarray:
    """(F,) originalID of the input mesh each output triangle of manifold `m` came from (`mm`: m.to_mesh())."""
    mm = m.to_mesh() if mm is None else mm
    run_index = np.asarray(mm.run_index, dtype=np.int64)
    run_ids = np.asarray(mm.run_original_id, dtype=np.int64)
    ntri = len(np.asarray(mm.tri_verts))
    out = np.full(ntri, -1, np.int64)
    for k, rid in enumerate(run_ids):  # a handful of runs, not a loop over faces
        out[run_index[k] // 3:run_index[k + 1] // 3] = rid
    return out


def rotation_about(axis: np.ndarray, angle: np.ndarray | float, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (N,3) about unit `axis` by per-row `angle` (Rodrigues, vectorized)."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    return v * c + np.cross(axis, v) * s + np.outer(v @ axis, axis) * (1 - c)


def rotation_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    return rotation_about(np.asarray(axis, float), np.full(3, angle), np.eye(3)).T


def frame(normal: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two unit tangents (t1, t2) completing `normal` to a right-handed frame, t1 at a random azimuth."""
    n = normal / np.linalg.norm(normal)
    a = np.array([1.0, 0, 0]) if abs(n[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(n, a)
    u /= np.linalg.norm(u)
    w = np.cross(n, u)
    phi = rng.uniform(0, 2 * np.pi)
    t1 = np.cos(phi) * u + np.sin(phi) * w
    return t1, np.cross(n, t1)


def exposed_faces(mesh: trimesh.Trimesh) -> np.ndarray:
    """(F,) bool: faces whose outward normal ray escapes the object (cached per mesh).

    Defects go where an inspector would see them: not on the inside wall of a vase."""
    def build(m):
        c = np.asarray(m.triangles_center)
        n = np.asarray(m.face_normals)
        eps = 1e-4 * diagonal(m)
        t = ray_distance(m, c + n * eps, n)
        return ~np.isfinite(t)
    return _cached("exposed", mesh, build)


def pick_surface_point(mesh: trimesh.Trimesh, rng: np.random.Generator,
                       weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """An area-weighted random point on the exposed surface (see exposed_faces), its face
    normal and face index; `weights` multiply the choice probabilities."""
    vis = exposed_faces(mesh)
    p = mesh.area_faces * (vis if vis.any() else 1.0)
    p = p if weights is None else p * weights
    if p.sum() <= 0:
        p = mesh.area_faces if weights is None else mesh.area_faces * weights
    fi = int(rng.choice(len(p), p=p / p.sum()))
    r = rng.random(2)
    if r.sum() > 1:
        r = 1 - r
    tri = mesh.triangles[fi]
    point = tri[0] + r[0] * (tri[1] - tri[0]) + r[1] * (tri[2] - tri[0])
    return point, mesh.face_normals[fi].copy(), fi


def region_radius(mesh: trimesh.Trimesh, center: np.ndarray, normal: np.ndarray, area: float,
                  min_cos: float = 0.0) -> float:
    """Radius r such that faces within r of `center` (facing like `normal`) hold `area`.

    Turns a target anomaly ratio into a defect size: area is what the labels will cover.
    """
    d = np.linalg.norm(mesh.triangles_center - center, axis=1)
    ok = mesh.face_normals @ normal > min_cos
    d, a = d[ok], mesh.area_faces[ok]
    order = np.argsort(d)
    cum = np.cumsum(a[order])
    k = int(np.searchsorted(cum, area))
    return float(d[order][min(k, len(d) - 1)]) if len(d) else 0.0


def ray_distance(mesh: trimesh.Trimesh, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Distance along each ray to the first hit (inf when none): open3d's Embree raycaster picks the
    triangle, `triangle_hits` measures the distance (the same bits on every CPU)."""
    import open3d as o3d

    rays = np.concatenate([origins, directions], axis=1).astype(np.float32)
    ans = scene(mesh).cast_rays(o3d.core.Tensor(rays))
    pid = ans["primitive_ids"].numpy().astype(np.int64)
    hit = np.isfinite(ans["t_hit"].numpy()) & (pid != o3d.t.geometry.RaycastingScene.INVALID_ID)
    t = np.full(len(rays), np.inf)
    if hit.any():
        v = np.asarray(mesh.vertices, np.float32).astype(np.float64)  # the triangles the raycaster holds
        t[hit] = triangle_hits(v, np.asarray(mesh.faces)[pid[hit]], rays[hit, :3].astype(np.float64),
                               rays[hit, 3:].astype(np.float64))[0]
    return t


def triangle_hits(vertices: np.ndarray, triangles: np.ndarray, origins: np.ndarray,
                  directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, unit normal) of each ray o + t d meeting the plane of its triangle (`triangles`: (K, 3)
    vertex indices, one per ray), in float64 with elementwise products and sums only.

    Why not the raycaster's own t: Embree computes it with the CPU's approximate reciprocal
    (RCPPS and a Newton step), whose last bits differ between Intel and AMD processors."""
    a, b, c = vertices[triangles[:, 0]], vertices[triangles[:, 1]], vertices[triangles[:, 2]]
    e1, e2 = b - a, c - a
    n = np.stack([e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1], e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2],
                  e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]], 1)
    den = dot3(directions, n)
    t = dot3(a - origins, n) / np.where(den != 0, den, 1.0)  # den = 0: a ray in the plane of a degenerate triangle
    length = np.sqrt(dot3(n, n))
    return t, n / np.where(length > 0, length, 1.0)[:, None]


def wall_thicknesses(mesh: trimesh.Trimesh, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(K,) material thickness under each point: distance along -normal to the next surface
    (the diagonal where the ray leaves the object without a hit)."""
    eps = 1e-4 * diagonal(mesh)
    t = ray_distance(mesh, points - normals * eps, -normals)
    return np.where(np.isfinite(t), t + eps, diagonal(mesh))


def wall_thickness(mesh: trimesh.Trimesh, point: np.ndarray, normal: np.ndarray) -> float:
    """Material thickness under one `point` (see wall_thicknesses)."""
    return float(wall_thicknesses(mesh, np.asarray(point, np.float64)[None], np.asarray(normal, np.float64)[None])[0])


def canonical(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Same surface with vertices and faces in a data-defined order, so the bytes we write
    never depend on the thread scheduling inside a boolean library."""
    v = np.asarray(mesh.vertices)
    order = np.lexsort((v[:, 2], v[:, 1], v[:, 0]))
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    f = inv[np.asarray(mesh.faces)]
    # rotate each face so its smallest index comes first (keeps orientation), then sort faces
    k = np.argmin(f, axis=1)
    f = np.take_along_axis(f, (k[:, None] + np.arange(3)) % 3, axis=1)
    n = max(len(v), 1)
    if n < 2 ** 21:  # the three indices as one integer key: one sort instead of lexsort's three, same order
        f = f[np.argsort((f[:, 0] * n + f[:, 1]) * n + f[:, 2], kind="stable")]
    else:
        f = f[np.lexsort((f[:, 2], f[:, 1], f[:, 0]))]
    return trimesh.Trimesh(v[order], f, process=False)
