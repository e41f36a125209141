"""Mesh -> organized point cloud + shaded RGB + gt (open3d RaycastingScene), MVTec 3D-AD style.

    from anomalygen.render import Camera, raycast, render_sample
    from anomalygen.builds.render import render_mvtec3d      # the dataset driver
"""

from anomalygen.render.raycast import Camera, Render, raycast, shade
from anomalygen.render.sample import RenderConfig, render_sample, render_scene

__all__ = ["Camera", "Render", "RenderConfig", "raycast", "render_sample", "render_scene", "shade"]
