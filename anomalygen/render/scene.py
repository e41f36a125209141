"""Scenes for the renderer: an object mesh resting on a background plane under a camera.

Shapes: the ten MVTec 3D-AD classes as procedural objects (bagel, cookie, dowel, peach,
potato, tire below; cable_gland, carrot, foam, rope from `anomalygen.shapes.mvtec`) and the
40 classes of the procedural shape catalog (`anomalygen.shapes.catalog`).
Defects: the seven mesh defect operators (`anomalygen.mesh.apply_defect`, engine 'mesh'),
or the built-in bulge and concavity below (engine 'builtin': smooth cosine bumps whose
gt is the depth change).
"""

from __future__ import annotations

import numpy as np
import trimesh

from anomalygen.errors import AnomalygenError
from anomalygen.io import anomaly_shapenet
from anomalygen.mesh.refine import refine
from anomalygen.mesh.result import DEFECTS
from anomalygen.shapes.catalog import make_shape
from anomalygen.shapes.mvtec import SHAPES as MVTEC_SHAPES, make_mvtec_shape

# --------------------------------------------------------------------------- built-in shapes


def _noisy(mesh: trimesh.Trimesh, rng: np.random.Generator, amount: float, freq: float) -> trimesh.Trimesh:
    """Displace vertices along normals by smooth 3-D noise (sum of random sinusoids)."""
    v = mesh.vertices
    disp = np.zeros(len(v))
    for _ in range(6):
        k = rng.normal(size=3) * freq
        disp += np.sin(v @ k + rng.uniform(0, 2 * np.pi)) / 6
    return trimesh.Trimesh(v + mesh.vertex_normals * (amount * disp)[:, None], mesh.faces, process=False)


def _bagel(rng):
    return _noisy(trimesh.creation.torus(1.0, rng.uniform(0.4, 0.5), major_sections=96, minor_sections=48), rng, 0.04, 3)


def _tire(rng):
    m = trimesh.creation.torus(1.0, rng.uniform(0.3, 0.38), major_sections=96, minor_sections=48)
    m.vertices[:, 2] *= 1.4
    return m


def _cookie(rng):
    m = trimesh.creation.cylinder(radius=1.0, height=rng.uniform(0.2, 0.3), sections=96)
    m = m.subdivide_to_size(0.05)
    return _noisy(m, rng, 0.03, 6)


def _peach(rng):
    m = trimesh.creation.icosphere(5)
    m.vertices *= [1.0, rng.uniform(0.9, 1.0), rng.uniform(0.85, 0.95)]
    return _noisy(m, rng, 0.02, 2)


def _potato(rng):
    m = trimesh.creation.icosphere(5)
    m.vertices *= [1.0, rng.uniform(0.55, 0.7), rng.uniform(0.45, 0.55)]
    return _noisy(m, rng, 0.08, 3)


def _dowel(rng):
    m = trimesh.creation.cylinder(radius=0.25, height=2.0, sections=64).subdivide_to_size(0.05)
    m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]))
    return m


BUILTIN_SHAPES = {"bagel": _bagel, "cookie": _cookie, "dowel": _dowel, "peach": _peach, "potato": _potato, "tire": _tire}
BUILTIN_COLORS = {"bagel": (0.72, 0.47, 0.22), "cookie": (0.80, 0.62, 0.38), "dowel": (0.78, 0.63, 0.45),
                  "peach": (0.93, 0.58, 0.38), "potato": (0.76, 0.64, 0.42), "tire": (0.16, 0.16, 0.17),
                  "cable_gland": (0.55, 0.56, 0.58), "carrot": (0.90, 0.45, 0.13), "foam": (0.86, 0.84, 0.76),
                  "rope": (0.74, 0.66, 0.50)}
MVTEC_CLASSES = ("bagel", "cable_gland", "carrot", "cookie", "dowel", "foam", "peach", "potato", "rope", "tire")
BUILTIN_DEFECTS = ("bulge", "concavity")  # the mesh operators' names for the same two shapes


def _refine(mesh: trimesh.Trimesh, max_edge: float) -> trimesh.Trimesh:
    if mesh.edges_unique_length.max() > max_edge:
        v, f = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge, max_iter=6)
        mesh = trimesh.Trimesh(v, f, process=False)
    return mesh


def builtin_defect(mesh: trimesh.Trimesh, defect: str, rng: np.random.Generator, size: float,
                   view_dir=(0, 0, 1)) -> tuple[trimesh.Trimesh, dict]:
    """Bulge (outward) or concavity (inward) with a smooth cosine falloff around a camera-facing vertex."""
    if defect not in BUILTIN_DEFECTS:
        raise AnomalygenError(f"built-in renderer defects are {', '.join(BUILTIN_DEFECTS)}; got {defect!r}")
    mesh = _refine(mesh, size * 0.015)
    n = mesh.vertex_normals
    facing = np.flatnonzero(n @ np.asarray(view_dir, float) < -0.6)
    if len(facing) == 0:
        facing = np.arange(len(mesh.vertices))
    c = mesh.vertices[rng.choice(facing)]
    radius = rng.uniform(0.08, 0.18) * size
    height = rng.uniform(0.25, 0.5) * radius * (1 if defect == "bulge" else -1)
    d = np.linalg.norm(mesh.vertices - c, axis=1)
    w = np.where(d < radius, 0.5 * (1 + np.cos(np.pi * d / radius)), 0.0)
    v = mesh.vertices + n * (height * w)[:, None]
    return trimesh.Trimesh(v, mesh.faces, process=False), {"center": c.round(6).tolist(), "radius": round(radius, 6),
                                                           "height": round(height, 6)}


# --------------------------------------------------------------------------- classes and defects


def catalog_classes() -> list[str]:
    return list(anomaly_shapenet.CLASSES)


def known_classes() -> list[str]:
    return list(BUILTIN_SHAPES) + list(MVTEC_SHAPES) + catalog_classes()


def mesh_defects() -> tuple[str, ...]:
    return tuple(DEFECTS)


def normal_mesh(cls: str, rng: np.random.Generator, max_edge: float) -> trimesh.Trimesh:
    """A normal mesh of `cls`: built-in MVTec-like shapes, else the procedural catalog's, refined
    to `max_edge` (Z up there; turned so its top faces the camera, which looks along +Z)."""
    if cls in BUILTIN_SHAPES:
        return BUILTIN_SHAPES[cls](rng)
    if cls in MVTEC_SHAPES or cls in catalog_classes():
        m = make_mvtec_shape(cls, rng) if cls in MVTEC_SHAPES else make_shape(cls, rng)
        m = refine(m, max_edge)
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi, [1, 0, 0]))
        return m
    raise AnomalygenError(f"unknown class {cls!r}; renderer classes: {', '.join(known_classes())}")


def place_on_plane(mesh: trimesh.Trimesh, size: float, distance: float, rng: np.random.Generator,
                   spin: bool = True) -> trimesh.Trimesh:
    """Scale to `size` (largest XY side), spin randomly about the optical axis (the angle is drawn
    either way, so `spin` changes no other draw), rest on the plane Z = distance."""
    m = mesh.copy()
    ext = m.extents
    m.apply_scale(size / max(ext[0], ext[1]))
    angle = rng.uniform(0, 2 * np.pi)
    if spin:
        m.apply_transform(trimesh.transformations.rotation_matrix(angle, [0, 0, 1]))
    c = m.bounds.mean(axis=0)
    shift = rng.uniform(-0.08, 0.08, 2) * size
    m.apply_translation([-c[0] + shift[0], -c[1] + shift[1], distance - m.bounds[1, 2]])
    return m
