"""DAS3D depth + RGB anomaly synthesis (DAS3D, ECCV 2024): skew-normal kernel, Perlin ternary
masks, depth defects, texture mixing, augmentation dropout, DAS3D's input normalization; and,
re-exported for one import, the neutral pieces it builds on (Perlin noise, scan preprocessing).

    from anomalygen.depth import DAS3DConfig, synthesize, pnoise2_np, remove_background
"""

from anomalygen.depth.kernels import skew_normal_kernel, ternary_mask
from anomalygen.depth.normalize import das3d_normalize
from anomalygen.depth.synth import DAS3DConfig, augmentation_dropout, depth_defect, draw_params, mix_rgb, synthesize
from anomalygen.depth.textures import TextureSource
from anomalygen.perlin import perlin_grid_np, perlin_grid_torch, pnoise2_np, pnoise2_torch
from anomalygen.scans import BackgroundConfig, remove_background, resize_sample

__all__ = ["BackgroundConfig", "DAS3DConfig", "TextureSource", "augmentation_dropout", "das3d_normalize",
           "depth_defect", "draw_params", "mix_rgb", "perlin_grid_np", "perlin_grid_torch", "pnoise2_np",
           "pnoise2_torch", "remove_background", "resize_sample", "skew_normal_kernel", "synthesize", "ternary_mask"]
