"""Shared building blocks of the detectors: pure-PyTorch point ops, PatchCore memory bank,
FPFH features, and spreading patch scores back to points or pixels."""

from anomalygen.detectors.common.memory_bank import MemoryBank, greedy_coreset
from anomalygen.detectors.common.points import chamfer_distance, farthest_point_sample, gather, group, knn
from anomalygen.detectors.common.spread import gaussian_blur, spread_to_pixels, spread_to_points

__all__ = ["MemoryBank", "chamfer_distance", "farthest_point_sample", "gather", "gaussian_blur",
           "greedy_coreset", "group", "knn", "spread_to_pixels", "spread_to_points"]
