"""DAS3D depth + RGB anomaly synthesis (seed paper 002): Perlin noise, skew-normal kernel,
depth defects, texture mixing, augmentation dropout, preprocessing, an on-the-fly torch Dataset.

    from anomalygen.depth import DAS3DConfig, synthesize, pnoise2_np, remove_background
"""

from anomalygen.depth.kernels import skew_normal_kernel, ternary_mask
from anomalygen.depth.perlin import perlin_grid_np, perlin_grid_torch, pnoise2_np, pnoise2_torch
from anomalygen.depth.preprocess import BackgroundConfig, das3d_normalize, remove_background, resize_sample
from anomalygen.depth.synth import DAS3DConfig, augmentation_dropout, depth_defect, draw_params, mix_rgb, synthesize
from anomalygen.depth.textures import TextureSource

__all__ = ["BackgroundConfig", "DAS3DConfig", "TextureSource", "augmentation_dropout", "das3d_normalize",
           "depth_defect", "draw_params", "mix_rgb", "perlin_grid_np", "perlin_grid_torch", "pnoise2_np",
           "pnoise2_torch", "remove_background", "resize_sample", "skew_normal_kernel", "synthesize", "ternary_mask"]
