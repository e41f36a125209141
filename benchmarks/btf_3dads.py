"""BTF scoring as the authors' code runs it, for timing beside ours on the same input.

A transcription of the per-sample test path of 3D-ADS (eliahuhorwitz/3D-ADS: feature_extractors/
fpfh_features.py `get_fpfh_features`, features.py `Features.compute_s_s_map`, utils/utils.py
`KNNGaussianBlur`) with the values it ships: FPFH with voxel_size 0.05 (normals: hybrid radius 0.1,
max_nn 30; features: hybrid radius 0.25, max_nn 100, absolute), AvgPool2d(3, 1, 1) then
AdaptiveAvgPool2d(28 x 28), the nearest-neighbour distance to the memory bank, PatchCore's
reweighted image score (3 neighbours), a bilinear upsample to 224 x 224 and PIL's GaussianBlur(4)
on the map scaled to 8 bits. torchvision's ToPILImage/ToTensor are replaced by the PIL and numpy
calls they make (torchvision's CPU build does not import here). The input is an already
preprocessed organized cloud (224 x 224 x 3, background zeroed): 3D-ADS removes the plane offline.

Used by benchmarks/speed.py only; it is a timing anchor, not a detector.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter


def get_fpfh_features(organized_pc: np.ndarray, voxel_size: float = 0.05) -> torch.Tensor:
    """(1, 33, H, W) FPFH of every non-zero pixel (3D-ADS fpfh_features.py)."""
    import open3d as o3d

    h, w = organized_pc.shape[:2]
    unorganized_pc = organized_pc.reshape(h * w, 3)
    nonzero_indices = np.nonzero(np.all(unorganized_pc != 0, axis=1))[0]
    o3d_pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(unorganized_pc[nonzero_indices, :].astype(np.float64)))
    o3d_pc.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=voxel_size * 2, max_nn=30))
    pcd_fpfh = o3d.pipelines.registration.compute_fpfh_feature(
        o3d_pc, o3d.geometry.KDTreeSearchParamHybrid(radius=voxel_size * 5, max_nn=100))
    fpfh = pcd_fpfh.data.T
    full_fpfh = np.zeros((unorganized_pc.shape[0], fpfh.shape[1]), dtype=fpfh.dtype)
    full_fpfh[nonzero_indices, :] = fpfh
    return torch.tensor(full_fpfh.reshape(h, w, fpfh.shape[1])).permute(2, 0, 1).unsqueeze(dim=0)


def knn_gaussian_blur(img: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """3D-ADS KNNGaussianBlur: the map scaled by its max, to 8 bits (ToPILImage), PIL GaussianBlur, back."""
    map_max = img.max()
    arr = (img[0] / map_max).mul(255).byte().numpy()[0]
    blurred = Image.fromarray(arr, mode="L").filter(ImageFilter.GaussianBlur(radius=radius))
    return torch.from_numpy(np.asarray(blurred, np.float32) / 255.0)[None] * map_max


def score(organized_pc: np.ndarray, patch_lib: torch.Tensor, n_reweight: int = 3) -> tuple[float, torch.Tensor]:
    """(image score, 224 x 224 map) of one preprocessed organized cloud against a memory bank."""
    fpfh_maps = get_fpfh_features(organized_pc)
    maps = torch.nn.AdaptiveAvgPool2d((28, 28))(torch.nn.AvgPool2d(3, 1, 1)(fpfh_maps.float()))
    patch = maps.reshape(maps.shape[1], -1).T
    dist = torch.cdist(patch, patch_lib)
    min_val, min_idx = torch.min(dist, dim=1)
    s_idx = torch.argmax(min_val)
    s_star = torch.max(min_val)
    m_test = patch[s_idx].unsqueeze(0)
    m_star = patch_lib[min_idx[s_idx]].unsqueeze(0)
    w_dist = torch.cdist(m_star, patch_lib)
    _, nn_idx = torch.topk(w_dist, k=n_reweight, largest=False)
    m_star_knn = torch.linalg.norm(m_test - patch_lib[nn_idx[0, 1:]], dim=1)
    d = torch.sqrt(torch.tensor(patch.shape[1], dtype=torch.float32))
    w = 1 - (torch.exp(s_star / d) / (torch.sum(torch.exp(m_star_knn / d))))
    s_map = torch.nn.functional.interpolate(min_val.view(1, 1, 28, 28), size=(224, 224), mode="bilinear")
    return float(w * s_star), knn_gaussian_blur(s_map)
