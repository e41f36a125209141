"""Random-CNN pseudo anomalies (3DzAL, WACV 2025, Sec. 3.2): points of interest found by an untrained
ResNet-50 on ordered xyz, and the "adding" / "removing" pseudo-anomalous patches built from them.

    from anomalygen.pseudo import points_of_interest, pseudo_patches
    mask, soft = points_of_interest(xyz)                  # (H,W) top-0.1 % mask, (H,W) soft mask A
    patches = pseudo_patches(normal_points, [other_xyz[mask]], 16, np.random.default_rng(0))
"""

from anomalygen.pseudo.interest import TAU, interest_mask, points_of_interest, random_resnet, soft_mask
from anomalygen.pseudo.patches import (ADDING, INSERTED, LIFTED, REMOVING, RIM_NEIGHBOURS, PatchSettings, adding_patch, normal_patch,
                                       pseudo_patches, removing_patch)

__all__ = ["ADDING", "INSERTED", "LIFTED", "REMOVING", "RIM_NEIGHBOURS", "TAU", "PatchSettings", "adding_patch", "interest_mask",
           "normal_patch", "points_of_interest", "pseudo_patches", "random_resnet", "removing_patch", "soft_mask"]
