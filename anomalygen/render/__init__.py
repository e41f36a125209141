"""Mesh -> organized point cloud + shaded RGB + gt (open3d RaycastingScene), MVTec 3D-AD style.

    from anomalygen.render import Camera, raycast, render_mvtec3d
"""

from anomalygen.render.dataset import RenderConfig, render_mvtec3d, render_sample
from anomalygen.render.raycast import Camera, Render, raycast, shade

__all__ = ["Camera", "Render", "RenderConfig", "raycast", "render_mvtec3d", "render_sample", "shade"]
