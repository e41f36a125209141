"""Acquisition: how one manufactured part differs from its class's nominal part, and how a
scanner sees it. Pure functions: a mesh or points, plain values and a numpy Generator in;
a mesh or points and a JSON-ready record of every draw out.

Four things make real scans of one part number differ from each other, and a detector that
only compares positions with its training clouds (the `nearest` baseline) is beaten by each:

    variation   each part is a little different: a smooth deformation of the nominal mesh
                (per-axis scale and a few long waves), every vertex moved by at most
                `variation` x tau. The defect is made on THIS part and labelled against THIS
                part's own surface, so the label rule is unchanged.
    views       a scanner sees one side at a time: only the surface seen from 1..`views`
                viewpoints is sampled (a defective part's first viewpoint looks at its defect).
    density     the point density varies smoothly over the surface, up to 1 + `density` times.
    noise       each measured point lies off the surface along its normal (std `noise` x tau).
    pose        each part lies in its own position: a rotation (about Z, or any) and a shift.

The build labels each point on the part's own surface before noise and pose, which are
measurement error and placement: they do not change what is defective. The record of the
pose holds the rotation R and translation t as applied (x' = R x + t), so x = R^T (x' - t)
undoes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from anomalygen import geometry as g

POSES = ("none", "z", "any")
WAVES = 3                 # long waves of a part's deformation and of the density field
WAVELENGTH = (0.6, 1.2)   # their wavelengths, in object diagonals: the whole part bends, nothing local
VIEW_DISTANCE = 1.5       # viewpoints sit this many diagonals from what they look at
AIM_CONE_DEG = 35.0       # a defective part's first viewpoint: within this angle of the defect's normal
MIN_INCIDENCE = 0.1       # cosine: surface seen at a more grazing angle returns no point
NOISE_CLIP = 3.0          # normal noise is clipped at this many standard deviations
DIGITS = 9                # significant digits of recorded values (the recorded value is the applied one)


@dataclass(frozen=True)
class Acquisition:
    """What a build applies to each sample; the defaults apply nothing."""

    pose: str = "none"       # none | z | any: rotation per sample (about Z, or uniformly random)
    shift: float = 0.0       # translation per axis, uniform in +-shift diagonals (with any pose)
    variation: float = 0.0   # part-to-part deformation: every vertex within this many tau of nominal
    views: int = 0           # 0: the whole surface; k: what 1..k random viewpoints see (test samples)
    density: float = 0.0     # density varies smoothly over the surface, max / min = 1 + density
    noise: float = 0.0       # std of the offset along the normal, in tau

    def applied(self) -> list[str]:
        """Names of the keys that change a sample (for tables and the manifest)."""
        on = [k for k in ("variation", "views", "density", "noise") if getattr(self, k)]
        return (["pose"] if self.pose != "none" or self.shift else []) + on

    @property
    def pooled(self) -> bool:
        """Whether points are drawn from a larger pool (visibility or density choose among them)."""
        return self.views > 0 or self.density > 0


def rounded(x) -> np.ndarray:
    """float64 array rounded to DIGITS significant digits (what a record holds exactly)."""
    a = np.asarray(x, np.float64)
    return np.array([float(f"{v:.{DIGITS}g}") for v in a.ravel()]).reshape(a.shape)


# ------------------------------------------------------------------ smooth fields

def _waves(rng: np.random.Generator, size: float, n: int = WAVES) -> tuple[np.ndarray, np.ndarray]:
    """n random plane waves: wave vectors (n,3) with wavelengths WAVELENGTH x size, phases (n,)."""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    k = d * (2 * np.pi / (rng.uniform(*WAVELENGTH, n) * size))[:, None]
    return rounded(k), rounded(rng.uniform(0, 2 * np.pi, n))


def wave_field(points: np.ndarray, waves: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """(N, n) sin(k_j . x + phase_j) of each point and wave (a sum of sinusoids: smooth at the scale of
    the wavelengths, seeded by its few numbers, and cheap at 10^5 points; hand-written because it is one line)."""
    return np.sin(np.asarray(points, np.float64) @ waves.T + phases)


# ------------------------------------------------------------------ part-to-part variation

def vary_part(mesh: trimesh.Trimesh, amount: float, rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    """(deformed mesh, record): x' = c + s * (x - c) + sum_j a_j d_j sin(k_j . x + phase_j), half of
    `amount` (an absolute length) for the per-axis scale s about the box centre c, half for WAVES long
    waves along unit directions d_j, so no vertex moves farther than `amount`. Same faces, same order."""
    v = np.asarray(mesh.vertices, np.float64)
    lo, hi = mesh.bounds
    c, half = rounded((lo + hi) / 2), np.maximum((hi - lo) / 2, 1e-12)
    size = float(np.linalg.norm(hi - lo))
    scale = rounded(1 + rng.uniform(-1, 1, 3) * (amount / 2) / half / np.sqrt(3))
    waves, phases = _waves(rng, size)
    dirs = rng.normal(size=(WAVES, 3))
    dirs = rounded(dirs / np.linalg.norm(dirs, axis=1, keepdims=True))
    amp = rounded(np.full(WAVES, amount / 2 / WAVES) * rng.uniform(0.5, 1.0, WAVES))
    moved = deform(v, c, scale, waves, phases, amp, dirs)
    record = {"center": c.tolist(), "scale": scale.tolist(), "waves": waves.tolist(), "phases": phases.tolist(),
              "amplitudes": amp.tolist(), "directions": dirs.tolist(),
              "max_displacement": float(rounded(np.linalg.norm(moved - v, axis=1).max()))}
    return trimesh.Trimesh(moved, np.asarray(mesh.faces), process=False), record


def deform(v: np.ndarray, center, scale, waves, phases, amplitudes, directions) -> np.ndarray:
    """The deformation of `vary_part` applied to points v (N,3), from its record's values."""
    v = np.asarray(v, np.float64)
    c = np.asarray(center, np.float64)
    w = wave_field(v, np.asarray(waves), np.asarray(phases)) * np.asarray(amplitudes)
    return c + np.asarray(scale) * (v - c) + w @ np.asarray(directions, np.float64)


# ------------------------------------------------------------------ what a scanner sees

def aim_of(points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(target point, unit direction to look from) of a labelled region, or None when it is empty:
    the region's centroid and its mean outward normal."""
    if len(points) == 0:
        return None
    n = np.asarray(normals, np.float64).mean(axis=0)
    if np.linalg.norm(n) < 1e-9:
        n = np.asarray(normals[0], np.float64)
    return np.asarray(points, np.float64).mean(axis=0), n / np.linalg.norm(n)


def _within_cone(axis: np.ndarray, deg: float, rng: np.random.Generator) -> np.ndarray:
    """A random unit vector within `deg` degrees of unit `axis` (uniform over the cap)."""
    cos_t = rng.uniform(np.cos(np.deg2rad(deg)), 1.0)
    t1, _ = g.frame(axis, rng)  # a tangent at a random azimuth
    return cos_t * axis + np.sqrt(1 - cos_t ** 2) * t1


def viewpoints(mesh: trimesh.Trimesh, views: int, rng: np.random.Generator, aim=None) -> np.ndarray:
    """(k, 3) scanner positions, k uniform in 1..views: VIEW_DISTANCE diagonals from the box centre in
    uniformly random directions; with `aim` (target, normal) the first looks at the target from within
    AIM_CONE_DEG of its normal."""
    lo, hi = mesh.bounds
    centre, size = (lo + hi) / 2, float(np.linalg.norm(hi - lo))
    k = int(rng.integers(1, views + 1))
    out = []
    for i in range(k):
        if i == 0 and aim is not None:
            target, normal = aim
            out.append(np.asarray(target) + _within_cone(normal, AIM_CONE_DEG, rng) * VIEW_DISTANCE * size)
        else:
            d = rng.normal(size=3)
            out.append(centre + d / np.linalg.norm(d) * VIEW_DISTANCE * size)
    return rounded(np.array(out))


def seen_from(mesh: trimesh.Trimesh, points: np.ndarray, normals: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """(N,) bool: points of `mesh`'s surface that a scanner at `eye` sees: facing it at an incidence
    above MIN_INCIDENCE and not hidden behind other surface (open3d raycast from the eye)."""
    p = np.asarray(points, np.float64)
    d = p - eye
    dist = np.linalg.norm(d, axis=1)
    d /= dist[:, None]
    facing = -(np.asarray(normals, np.float64) * d).sum(axis=1) > MIN_INCIDENCE
    hit = g.ray_distance(mesh, np.broadcast_to(eye, p.shape), d)
    return facing & (hit >= dist - 1e-3 * g.diagonal(mesh))


def scan_choice(mesh: trimesh.Trimesh, points: np.ndarray, faces: np.ndarray, n: int, acq: Acquisition,
                rng: np.random.Generator, aim=None, whole: bool = False) -> tuple[np.ndarray | None, dict]:
    """(sorted indices of the n pool points the scan keeps, or None when the pool holds fewer than n
    it can keep; record). `points` are uniform over the surface; visibility (acq.views, unless
    `whole`) and the density field (acq.density) weight them, and n are drawn without replacement
    with those weights (Efraimidis-Spirakis: the n largest u^(1/w))."""
    w = np.ones(len(points))
    record: dict = {}
    if acq.views and not whole:
        eyes = viewpoints(mesh, acq.views, rng, aim)
        normals = mesh.face_normals[faces]
        seen = np.zeros(len(points), bool)
        for e in eyes:
            seen |= seen_from(mesh, points, normals, e)
        w *= seen
        record["viewpoints"] = eyes.tolist()
        record["seen_fraction"] = float(rounded(seen.mean()))
    if acq.density:
        lo, hi = mesh.bounds
        waves, phases = _waves(rng, float(np.linalg.norm(hi - lo)))
        u = (wave_field(points, waves, phases).mean(axis=1) + 1) / 2  # in [0, 1]
        w *= (1 + acq.density) ** u
        record["density"] = {"waves": waves.tolist(), "phases": phases.tolist(),
                             "rule": "weight (1 + density) ** ((mean_j sin(k_j . x + phase_j) + 1) / 2)"}
    ok = np.flatnonzero(w > 0)
    if len(ok) < n:
        return None, record
    key = np.log(rng.random(len(ok))) / w[ok]
    keep = ok[np.argpartition(-key, n - 1)[:n]]
    return np.sort(keep), record


# ------------------------------------------------------------------ noise and pose

def normal_noise(points: np.ndarray, normals: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Points moved along their unit normals by N(0, sigma) clipped at NOISE_CLIP sigma (float64)."""
    off = np.clip(rng.normal(0.0, sigma, len(points)), -NOISE_CLIP * sigma, NOISE_CLIP * sigma)
    return np.asarray(points, np.float64) + np.asarray(normals, np.float64) * off[:, None]


def draw_rotation(mode: str, rng: np.random.Generator) -> np.ndarray:
    """3x3 rotation: identity (none), a uniform angle about Z (z), or uniform over all rotations (any)."""
    if mode not in POSES:
        raise ValueError(f"pose {mode!r}: expected one of {', '.join(POSES)}")
    if mode == "none":
        return np.eye(3)
    if mode == "z":
        return g.rotation_matrix(np.array([0.0, 0.0, 1.0]), float(rng.uniform(0, 2 * np.pi)))
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=rng).as_matrix()


def draw_pose(mode: str, shift: float, size: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of one sample: draw_rotation(mode) and t uniform in +-shift x size per axis, both rounded
    to the digits a record holds (so the recorded pose is the applied one)."""
    r = draw_rotation(mode, rng)
    t = rng.uniform(-shift, shift, 3) * size if shift else np.zeros(3)
    return rounded(r), rounded(t)


def apply_pose(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """x' = R x + t for points (N,3), in float64."""
    return np.asarray(points, np.float64) @ np.asarray(rotation).T + np.asarray(translation)
