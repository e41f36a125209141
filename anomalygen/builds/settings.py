"""Recipes -> the synthesizers' typed settings. Drivers (and the detectors that synthesize
training data) read recipes here; the synthesizers themselves take plain values and never
load or parse a recipe.
"""

from __future__ import annotations

from anomalygen.builds.difficulty import recipe_difficulty, scale_depth_magnitudes
from anomalygen.builds.shapenet import defect_params
from anomalygen.depth.synth import DAS3DConfig
from anomalygen.recipes import get_key, load_recipe, require
from anomalygen.render.sample import RenderConfig
from anomalygen.render.scene import mesh_defects
from anomalygen.scans import BackgroundConfig


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
    return RenderConfig(
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
        mesh_max_edge=float(get_key(mesh_recipe, "shapes.max_edge")),
        mesh_defect_params={d: defect_params(mesh_recipe, d, level) for d in mesh_defects()
                            if get_key(mesh_recipe, f"defects.{d}", None) is not None},
    )
