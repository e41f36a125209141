"""Recipes -> typed settings. Each command parses its recipe once, here, at its edge; the drivers,
their workers (and the detectors that synthesize training data) read the typed settings, never the
raw dict; the synthesizers themselves take plain values and never load or parse a recipe.

    shapenet_build(recipe, ...)  -> ShapenetBuild   build-shapenet (the plan, and the workers' Settings)
    render_config(recipe)        -> RenderConfig    render-mvtec3d
    das3d_config(recipe)         -> DAS3DConfig     depth-defects (and background_config)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from anomalygen.builds.difficulty import (acquisition_at, recipe_difficulty, render_acquisition_at,
                                          scale_defect, scale_depth_magnitudes)
from anomalygen.builds.point_layouts import point_output
from anomalygen.depth.synth import DAS3DConfig
from anomalygen.errors import AnomalygenError
from anomalygen.io import anomaly_shapenet as asn
from anomalygen.mesh.acquire import POSES, Acquisition
from anomalygen.mesh.result import DEFECTS
from anomalygen.recipes import get_key, load_recipe, require
from anomalygen.render.sample import RenderConfig
from anomalygen.render.scene import mesh_defects
from anomalygen.scans import BackgroundConfig
from anomalygen.shapes.repair import RepairSettings

# the acquisition keys of a recipe's top level (null: what the `difficulty` level sets), with their ranges
ACQUISITION_KEYS = {"pose": None, "pose_shift": (0.0, 1.0), "variation": (0.0, 100.0), "views": (0, 64),
                    "density": (0.0, 100.0), "noise": (0.0, 100.0)}
RENDER_ACQUISITION_KEYS = ("pose", "noise")


@dataclass
class Settings:
    """Everything a build-shapenet worker needs, all plain data (picklable)."""

    seed: int
    points: tuple[int, int]
    ratio: tuple[float, float]
    tau: float
    rim_distance: float
    max_retries: int
    accept_factor: float
    max_edge: float
    voxel_pitch: float
    defect_params: dict
    engine: str
    source: str | None
    binary: bool
    write_meshes: str  # 'normal' (one per class) | 'all' (every sample) | 'none'
    layout: str = asn.LAYOUT  # 'anomaly-shapenet' | 'real3d-ad' (anomalygen.builds.point_layouts)
    max_repair_tau: float = 1.0  # a source mesh whose repair moved it farther (in tau) is refused
    acquisition: Acquisition = field(default_factory=Acquisition)

    def repair(self) -> RepairSettings:
        """How source meshes are repaired and when a repair is refused (anomalygen.shapes.repair)."""
        return RepairSettings(voxel_pitch=self.voxel_pitch, max_tau=self.max_repair_tau, tau=self.tau)


@dataclass(frozen=True)
class ShapenetBuild:
    """A build-shapenet recipe, parsed: the plan's figures and the workers' Settings."""

    settings: Settings
    classes: int | tuple[str, ...]  # the recipe's default (`--classes` overrides it)
    train: int
    test: int
    normal_fraction: float
    defects: tuple[str, ...]
    level: float
    workers: int
    recipe: dict = field(hash=False, compare=False)  # the recipe as given: copied into the manifest, never read


def defect_params(recipe: dict, defect: str, difficulty: float | None = None) -> dict:
    """Everything `anomalygen.mesh.apply_defect` needs for one defect type, from a recipe: its
    `defects.<defect>` section at the recipe's `difficulty` (or the given t, see
    anomalygen.builds.difficulty) plus the label thresholds (tau, rim_distance)."""
    section = get_key(recipe, f"defects.{defect}", None)
    if not isinstance(section, dict):
        raise AnomalygenError(f"recipe {recipe.get('_source', '')} has no defects.{defect} section")
    tau = float(require(recipe, "labels.tau", (int, float), 0, 1))
    t = recipe_difficulty(recipe) if difficulty is None else difficulty
    return {**scale_defect(defect, section, t, tau), "tau": tau,
            "rim_distance": float(require(recipe, "labels.rim_distance", (int, float), 0, 1))}


def _acquisition_value(recipe: dict, key: str, level_value):
    """A top-level acquisition key: the recipe's value, or the level's where it is null or absent."""
    v = recipe.get(key)
    if v is None:
        return level_value
    if key == "pose":
        if v not in POSES:
            raise AnomalygenError(f"recipe key 'pose': {v!r}; use {', '.join(POSES)} (or null: as `difficulty` sets it)")
        return v
    lo, hi = ACQUISITION_KEYS[key]
    kind = int if isinstance(lo, int) else (int, float)
    if not isinstance(v, kind) or isinstance(v, bool) or not lo <= v <= hi:
        raise AnomalygenError(f"recipe key {key!r}: {v!r}; use {'a whole number' if kind is int else 'a number'} "
                              f"in [{lo}, {hi}] (or null: as `difficulty` sets it)")
    return v


def acquisition(recipe: dict, level: float | None = None) -> Acquisition:
    """The recipe's acquisition keys (pose, pose_shift, variation, views, density, noise), each at the
    `difficulty` level's value unless the recipe gives one (anomalygen.builds.difficulty.acquisition_at)."""
    at = acquisition_at(recipe_difficulty(recipe) if level is None else level)
    v = {k: _acquisition_value(recipe, k, at[k]) for k in ACQUISITION_KEYS}
    return Acquisition(pose=str(v["pose"]), shift=float(v["pose_shift"]), variation=float(v["variation"]),
                       views=int(v["views"]), density=float(v["density"]), noise=float(v["noise"]))


def shapenet_settings(recipe: dict, *, seed=None, engine=None, source=None, layout=None) -> Settings:
    """The workers' Settings of a build-shapenet recipe (range-checked); arguments override the recipe."""
    pts = require(recipe, "dataset.points", int, 1)
    ratio = require(recipe, "labels.anomaly_ratio", (int, float), 0, 1)
    sections = require(recipe, "defects", dict)
    level, tau = recipe_difficulty(recipe), float(require(recipe, "labels.tau", (int, float), 0, 1))
    source = source or get_key(recipe, "shapes.source", None)
    return Settings(
        seed=int(require(recipe, "seed", int, 0) if seed is None else seed),
        points=(int(pts[0]), int(pts[1])), ratio=(float(ratio[0]), float(ratio[1])),
        tau=tau, rim_distance=float(require(recipe, "labels.rim_distance", (int, float), 0, 1)),
        max_retries=int(require(recipe, "labels.max_retries", int, 0, 50)),
        accept_factor=float(require(recipe, "labels.accept_factor", (int, float), 1)),
        max_edge=float(require(recipe, "shapes.max_edge", (int, float), 1e-4, 1)),
        voxel_pitch=float(require(recipe, "shapes.voxel_pitch", (int, float), 1e-4, 1)),
        max_repair_tau=float(require(recipe, "shapes.max_repair_tau", (int, float), 0)),
        defect_params={k: scale_defect(k, dict(v), level, tau) for k, v in sections.items()},
        engine=str(require(recipe, "engine", str) if engine is None else engine),
        source=None if source is None else str(source),
        binary=bool(require(recipe, "dataset.pcd_binary", bool)),
        write_meshes=_mesh_mode(get_key(recipe, "dataset.write_meshes")),
        layout=point_output(layout or asn.LAYOUT).name,
        acquisition=acquisition(recipe, level),
    )


def shapenet_build(recipe: dict, *, seed=None, engine=None, source=None, defects=None, layout=None,
                   train_per_class=None, test_per_class=None) -> ShapenetBuild:
    """A build-shapenet recipe parsed once (the command's edge); the arguments override the recipe."""
    defects = tuple(require(recipe, "dataset.defects", str) if defects is None else defects)
    for d in defects:
        if d not in DEFECTS:
            raise AnomalygenError(f"unknown defect {d!r}; known: {', '.join(DEFECTS)}")
    train = int(require(recipe, "dataset.train_per_class", int, 0) if train_per_class is None else train_per_class)
    test = int(require(recipe, "dataset.test_per_class", int, 0) if test_per_class is None else test_per_class)
    if train < 0 or test < 0 or train + test == 0:
        raise AnomalygenError("--train-per-class and --test-per-class must be >= 0 and not both 0")
    classes = get_key(recipe, "dataset.classes")
    return ShapenetBuild(
        settings=shapenet_settings(recipe, seed=seed, engine=engine, source=source, layout=layout),
        classes=classes if isinstance(classes, int) else tuple(classes), train=train, test=test,
        normal_fraction=float(require(recipe, "dataset.normal_test_fraction", (int, float), 0, 1)),
        defects=defects, level=recipe_difficulty(recipe), workers=int(recipe.get("workers", 1)),
        recipe={k: v for k, v in recipe.items() if k != "_source"} | {"_source": recipe.get("_source", "")},
    )


def _mesh_mode(v) -> str:
    v = {True: "all", False: "none"}.get(v, v) if isinstance(v, bool) else str(v)
    if v not in ("normal", "all", "none"):
        raise AnomalygenError(f"recipe key 'dataset.write_meshes': {v!r}; use normal, all or none")
    return v


def das3d_config(r: dict) -> DAS3DConfig:
    """DAS3D synthesis settings of a `das3d` recipe (range-checked); p_z and t_h at the recipe's
    `difficulty` (anomalygen.builds.difficulty)."""
    p_z, t_h = scale_depth_magnitudes(tuple(float(v) for v in require(r, "depth.p_z", (int, float), 0, 1)),
                                      float(require(r, "depth.t_h", (int, float), 0, 1)), recipe_difficulty(r))
    return DAS3DConfig(
        scale_exp=tuple(require(r, "perlin.scale_exp", int, 0, 10)),
        octaves=require(r, "perlin.octaves", int, 1, 8),
        persistence=float(require(r, "perlin.persistence", (int, float), 0, 1)),
        lacunarity=float(require(r, "perlin.lacunarity", (int, float), 1, 4)),
        t_p=float(require(r, "perlin.t_p", (int, float), 0, 1)),
        sigma=tuple(float(v) for v in require(r, "kernel.sigma", (int, float), 0.3, 64)),
        alpha=tuple(float(v) for v in require(r, "kernel.alpha", (int, float), -10, 10)),
        p_z=p_z,
        t_h=t_h,
        anomaly_ratio=tuple(float(v) for v in require(r, "depth.anomaly_ratio", (int, float), 0, 1)),
        max_tries=require(r, "depth.max_tries", int, 1, 1000),
        beta=tuple(float(v) for v in require(r, "rgb.beta", (int, float), 0, 1)),
        p_d=float(require(r, "dropout.p_d", (int, float), 0, 1)),
    )


def background_config(r: dict) -> BackgroundConfig:
    """Background removal settings of a recipe's `foreground` section."""
    return BackgroundConfig(border=float(require(r, "foreground.border", (int, float), 0.01, 0.5)),
                            plane_distance=float(require(r, "foreground.plane_distance", (int, float), 0, 10)),
                            ransac_iterations=require(r, "foreground.ransac_iterations", int, 1, 100000),
                            dbscan_eps=float(require(r, "foreground.dbscan_eps", (int, float), 0.1, 1000)),
                            dbscan_min_points=require(r, "foreground.dbscan_min_points", int, 1, 100000))


def render_config(r: dict, mesh_recipe: dict | None = None) -> RenderConfig:
    """Renderer settings of a `render-mvtec3d` recipe; the mesh defect engine's settings come from
    `mesh_recipe` (default: the built-in `anomaly-shapenet` recipe, as build-shapenet uses them), their
    sizes at THIS recipe's `difficulty` (anomalygen.builds.difficulty)."""
    mesh_recipe = mesh_recipe or load_recipe("anomaly-shapenet")
    level = recipe_difficulty(r)
    at = render_acquisition_at(level)
    pose = at["pose"] if r.get("pose") is None else r["pose"]
    if pose not in POSES:
        raise AnomalygenError(f"recipe key 'pose': {pose!r}; use {', '.join(POSES)} (or null: as `difficulty` sets it)")
    noise = at["noise"] if r.get("noise") is None else r["noise"]
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not 0 <= noise <= 100:
        raise AnomalygenError(f"recipe key 'noise': {noise!r}; use a number in [0, 100] (or null: as `difficulty` sets it)")
    return RenderConfig(
        pose=str(pose), noise=float(noise),
        size=require(r, "size", int, 16, 4096), fov_deg=float(require(r, "camera.fov_deg", (int, float), 5, 120)),
        distance=float(require(r, "camera.distance", (int, float), 0.01, 100)),
        object_size=tuple(float(v) for v in require(r, "object.size", (int, float), 1e-4, 100)),
        plane_tilt=float(require(r, "background.tilt", (int, float), 0, 0.5)),
        gt_tau=float(require(r, "gt_tau", (int, float), 0, 1)),
        counts=(require(r, "counts.train", int, 1, 10000), require(r, "counts.validation", int, 0, 10000),
                require(r, "counts.test_good", int, 0, 10000), require(r, "counts.test_per_defect", int, 0, 10000)),
        defects=tuple(require(r, "defects", str)), defect_engine=require(r, "defect_engine", str),
        max_tries=require(r, "max_tries", int, 1, 100), min_gt_pixels=require(r, "min_gt_pixels", int, 1, 10 ** 6),
        plane_clearance=float(require(r, "defect_plane_clearance", (int, float), 0, 1)),
        mesh_max_edge=float(require(mesh_recipe, "shapes.max_edge", (int, float), 1e-4, 1)),
        mesh_defect_params={d: defect_params(mesh_recipe, d, level) for d in mesh_defects()
                            if get_key(mesh_recipe, f"defects.{d}", None) is not None},
    )
