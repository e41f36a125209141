"""One rendered MVTec 3D-AD-style sample: an object on a plane, seen by a pinhole camera.

A sample is a pure function of (seed, class, split, defect, index) and a RenderConfig,
so any number of workers renders the same bytes. gt: with the mesh defect operators
(engine 'mesh'), their per-point label rule (`label_points`: farther than tau from the
original surface, or near the rim of removed material) applied to each visible pixel's
3-D point, plus pixels where material vanished; with the built-in bulge/concavity, the
pixels whose depth moved by more than `gt_tau` x object size. The dataset driver is
anomalygen.builds.render.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anomalygen.errors import AnomalygenError
from anomalygen.io import ImageSample, mvtec3d
from anomalygen.mesh.acquire import NOISE_CLIP, draw_rotation, rounded
from anomalygen.mesh.labels import label_points
from anomalygen.mesh.operators import apply_defect
from anomalygen.perlin import perlin_grid_np, random_permutation
from anomalygen.render.raycast import Camera, Render, plane_mesh, raycast, shade
from anomalygen.render.scene import (BUILTIN_COLORS, BUILTIN_DEFECTS, builtin_defect, mesh_defects, normal_mesh,
                                     place_on_plane)
from anomalygen.seeds import path_seed


@dataclass(frozen=True)
class RenderConfig:
    size: int = 256
    fov_deg: float = 30.0
    distance: float = 0.45
    object_size: tuple[float, float] = (0.09, 0.12)
    plane_tilt: float = 0.05
    gt_tau: float = 0.004
    counts: tuple[int, int, int, int] = (8, 2, 2, 2)  # train, validation, test good, test per defect
    defects: tuple[str, ...] = BUILTIN_DEFECTS
    defect_engine: str = "auto"
    max_tries: int = 8
    min_gt_pixels: int = 12
    # a defect draw is redrawn when any of its gt pixels ON THE OBJECT lies within this distance
    # (metres) of the support plane: BTF's preprocessing removes points within 0.005 m of the
    # RANSAC plane, and a defect there would be erased before any detector sees it. 0 = no check.
    plane_clearance: float = 0.0
    # the mesh engine's settings (the build-shapenet recipe's): catalog refinement, and per defect
    # type everything anomalygen.mesh.apply_defect needs (recipe section + tau, rim_distance)
    mesh_max_edge: float = 0.025
    mesh_defect_params: dict = field(default_factory=dict, hash=False, compare=False)
    # acquisition (anomalygen.mesh.acquire): `pose` z spins the object about the support's normal,
    # any turns it uniformly at random before it is laid on the support, none keeps it upright and
    # unturned; `noise`: std of each valid pixel's offset along its ray, in tau (the gt threshold)
    pose: str = "z"
    noise: float = 0.0

    def engine(self) -> str:
        """'mesh' (anomalygen.mesh.apply_defect; 'auto' means it) or 'builtin'."""
        if self.defect_engine not in ("auto", "mesh", "builtin"):
            raise AnomalygenError(f"defect_engine {self.defect_engine!r}: expected auto, mesh or builtin")
        return "builtin" if self.defect_engine == "builtin" else "mesh"

    def usable_defects(self) -> tuple[list[str], list[str]]:
        """(defects this engine renders, defects skipped because the engine lacks them)."""
        have = BUILTIN_DEFECTS if self.engine() == "builtin" else mesh_defects()
        return [d for d in self.defects if d in have], [d for d in self.defects if d not in have]

    def camera(self) -> Camera:
        return Camera.from_fov(self.size, self.size, self.fov_deg)


def _albedo(shape, base, rng, strength=0.25) -> np.ndarray:
    g = perlin_grid_np(shape, (8, 8), random_permutation(rng), octaves=4, offset=tuple(rng.uniform(0, 64, 2)))
    return np.clip(np.asarray(base, np.float32) * (1 + strength * g[..., None]), 0, 1)


def _mesh_engine_defect(mesh, defect: str, params: dict, rng: np.random.Generator):
    """A mesh defect operator on the placed mesh; returns (defective mesh, params, labeler)."""
    if defect not in params:
        raise AnomalygenError(f"no parameters for the mesh defect {defect!r} (RenderConfig.mesh_defect_params)")
    res = apply_defect(mesh, defect, params[defect], rng)
    diag = float(np.linalg.norm(mesh.extents))
    tau, rim = float(res.params["tau"]) * diag, float(res.params["rim_distance"]) * diag

    def labels(points):
        return label_points(points, mesh, res, tau, rim)

    params = {k: v for k, v in res.params.items() if isinstance(v, (int, float, str, bool))}
    return res.mesh, params, labels


def plane_height(xyz: np.ndarray, distance: float, tilt: tuple[float, float]) -> np.ndarray:
    """Each point's height above the support plane z = distance + tilt_x * x + tilt_y * y (metres;
    the camera looks along +z, so points above the plane have smaller z)."""
    x, y, z = (xyz[..., i].astype(np.float64) for i in range(3))
    return (distance + tilt[0] * x + tilt[1] * y - z) / np.sqrt(1.0 + tilt[0] ** 2 + tilt[1] ** 2)


def label_tau(cfg: RenderConfig, mesh, size: float) -> float:
    """The gt threshold of a placed object, in metres: the mesh labels' tau x its diagonal (engine 'mesh'),
    else gt_tau x its size."""
    taus = [float(p["tau"]) for p in cfg.mesh_defect_params.values() if "tau" in p]
    if cfg.engine() == "mesh" and taus:
        return taus[0] * float(np.linalg.norm(mesh.extents))
    return cfg.gt_tau * size


def render_scene(cls: str, cfg: RenderConfig, rng: np.random.Generator, defect: str | None = None,
                 pose_rng: np.random.Generator | None = None):
    """(normal Render, defective Render or None, albedos, record, gt or None). Draws shape, placement,
    plane and defect from rng, the turn of pose 'any' from `pose_rng` (so the other draws stay the
    same); a defect the camera cannot see is drawn again (cfg.max_tries)."""
    size = rng.uniform(*cfg.object_size)
    shape = normal_mesh(cls, rng, cfg.mesh_max_edge)
    turn = None
    if cfg.pose == "any":
        turn = rounded(draw_rotation("any", pose_rng if pose_rng is not None else rng))
        shape = shape.copy()
        shape.vertices = shape.vertices @ turn.T
    mesh = place_on_plane(shape, size, cfg.distance, rng, spin=cfg.pose != "none")
    tilt = tuple(rng.uniform(-cfg.plane_tilt, cfg.plane_tilt, 2))
    plane = plane_mesh(cfg.distance, cfg.distance, tilt)
    cam = cfg.camera()
    normal = raycast([mesh, plane], cam)
    obj_albedo = _albedo(normal.xyz.shape[:2], BUILTIN_COLORS.get(cls, (0.62, 0.6, 0.56)), rng)
    bg_albedo = _albedo(normal.xyz.shape[:2], (0.42, 0.42, 0.45), rng, 0.08)
    record = {"object_size": round(size, 6), "plane_tilt": [round(t, 5) for t in tilt]}
    if turn is not None:
        record["pose_rotation"] = turn.tolist()  # applied to the upright shape before it is placed
    if cfg.noise > 0:
        record["noise_std"] = float(rounded(cfg.noise * label_tau(cfg, mesh, size)))
    if defect is None:
        return normal, None, (obj_albedo, bg_albedo), record, None
    engine = cfg.engine()
    for tries in range(1, cfg.max_tries + 1):
        try:
            if engine == "mesh":
                bad_mesh, params, labeler = _mesh_engine_defect(mesh, defect, cfg.mesh_defect_params, rng)
            else:
                bad_mesh, params = builtin_defect(mesh, defect, rng, size)
                labeler = None
        except ValueError:  # this draw cannot make the defect (operator's contract): draw again
            continue
        bad = raycast([bad_mesh, plane], cam)
        gt = defect_gt(normal, bad, cfg.gt_tau * size)
        if labeler is not None:  # the mesh labels' per-point rule on the visible points, plus what vanished
            obj = bad.geometry == 0
            lab = np.zeros(obj.shape, np.uint8)
            lab[obj] = labeler(bad.xyz[obj].astype(np.float64))
            vanished = (normal.geometry == 0) & (bad.geometry != 0)
            gt = (lab.astype(bool) | vanished).astype(np.uint8)
        in_band = gt.astype(bool) & (plane_height(bad.xyz, cfg.distance, tilt) <= cfg.plane_clearance)
        if cfg.plane_clearance > 0 and (in_band & (bad.geometry == 0)).any():
            continue  # the defect reaches down to the support: preprocessing would erase part of it
        if gt.sum() >= cfg.min_gt_pixels * cfg.size ** 2 / 256 ** 2:
            # what remains in the band: gt pixels where removed material now shows the plane itself
            record.update(defect_params=params, defect_engine=engine, tries=tries,
                          gt_pixels_in_plane_band=int(in_band.sum()))
            return normal, bad, (obj_albedo, bg_albedo), record, gt
    raise AnomalygenError(f"{cls}: no visible {defect} after {cfg.max_tries} draws (needs >= {cfg.min_gt_pixels} "
                          "gt pixels at 256 x 256" + (f", none on the object within {cfg.plane_clearance} m of the "
                                                      "support plane" if cfg.plane_clearance > 0 else "")
                          + "); raise max_tries or lower min_gt_pixels")


def defect_gt(normal: Render, bad: Render, tau: float) -> np.ndarray:
    """Pixels where the defect moved the surface by more than tau, or changed what the ray hits."""
    dz = np.abs(bad.xyz[..., 2] - normal.xyz[..., 2])
    changed = (bad.geometry != normal.geometry) & ((bad.geometry == 0) | (normal.geometry == 0))
    return (((dz > tau) & (bad.geometry == 0)) | changed).astype(np.uint8)


def ray_noise(xyz: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Valid pixels (xyz not all zero) moved along their camera rays by N(0, sigma), clipped at NOISE_CLIP
    sigma: a scanner's range error. float32, zeros stay zeros."""
    valid = np.any(xyz != 0, axis=-1)
    p = xyz[valid].astype(np.float64)
    dist = np.linalg.norm(p, axis=1)
    off = np.clip(rng.normal(0.0, sigma, len(p)), -NOISE_CLIP * sigma, NOISE_CLIP * sigma)
    out = xyz.copy()
    out[valid] = (p * ((dist + off) / dist)[:, None]).astype(np.float32)
    return out


def render_sample(cls: str, split: str, defect: str, index: int, seed: int, cfg: RenderConfig) -> tuple[ImageSample, dict]:
    key = path_seed(seed, cls, split, defect, index)
    rng = np.random.default_rng(key)
    normal, bad, (obj_alb, bg_alb), record, gt = render_scene(cls, cfg, rng, None if defect == "good" else defect,
                                                              pose_rng=np.random.default_rng([key, 1]))
    r = normal if bad is None else bad
    albedo = np.where((r.geometry == 0)[..., None], obj_alb, bg_alb)
    rgb = shade(r, albedo)
    mask = np.zeros(r.geometry.shape, np.uint8) if gt is None else gt
    name = mvtec3d.sample_name(index)
    xyz = r.xyz
    if cfg.noise > 0:  # after the gt: a range error does not change what is defective
        xyz = ray_noise(xyz, record["noise_std"], np.random.default_rng([key, 2]))
    sample = ImageSample(xyz=xyz, rgb=rgb, mask=mask, cls=cls, split=split, defect=defect, name=name)
    record.update(cls=cls, split=split, defect=defect, name=name, anomaly_ratio=round(float(mask.mean()), 6),
                  object_pixels=int((r.geometry == 0).sum()))
    return sample, record
