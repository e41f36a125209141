"""Random-CNN pseudo anomalies (3DzAL): points of interest of one scan and labeled patches (~20 s on 2 CPU cores).

    python examples/pseudo_anomalies.py [OUT]    # OUT defaults to out/examples/pseudo_anomalies
    ANOMALYGEN_EXAMPLE_SMALL=1 python examples/pseudo_anomalies.py /tmp/x    # smaller scans, fewer patches
"""

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from anomalygen.pseudo import pseudo_patches, points_of_interest
from anomalygen.render import RenderConfig, render_sample
from anomalygen.scans import remove_background

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "out/examples/pseudo_anomalies")
SMALL = os.environ.get("ANOMALYGEN_EXAMPLE_SMALL") == "1"
SIZE = 128 if SMALL else 224  # 3DzAL feeds 224 x 224 ordered clouds


def scan(cls: str) -> np.ndarray:
    """One rendered MVTec 3D-AD-style organized cloud (H, W, 3) with its background zeroed, as 3DzAL prepares it."""
    xyz = render_sample(cls, "train", "good", 0, seed=0, cfg=RenderConfig(size=SIZE))[0].xyz.copy()
    xyz[~remove_background(xyz)] = 0
    return xyz


# Points of interest of a task-irrelevant scan: the top share `tau` of the soft mask A of an untrained,
# He-initialized ResNet-50 fed the xyz channels. Creases, holes and bumps light up; flat surface does not.
# 3DzAL keeps the top 0.1 % (the default) of scans the object fills; 1 % here, where it fills a tenth of the frame.
other = scan("tire")
mask, soft = points_of_interest(other, tau=0.01, seed=0)
interest = other[mask]  # (M, 3) points
print(f"{mask.sum()} points of interest of {np.any(other != 0, axis=-1).sum()} measured")

# Pseudo-anomalous patches of a normal scan: "adding" attaches a cluster of those points, "removing" cuts a
# hole; label 1 = an added point or a point on the hole's rim.
normal = scan("bagel")
normal = normal[np.any(normal != 0, axis=-1)]  # (N, 3) measured points
patches = pseudo_patches(normal, [interest], 4 if SMALL else 16, np.random.default_rng(0))
for p in patches:
    print(f"{p['kind']:8s} patch of {len(p['points'])} points, {int(p['labels'].sum())} labeled pseudo-anomalous")

OUT.mkdir(parents=True, exist_ok=True)
np.savez_compressed(OUT / "patches.npz", points=np.stack([p["points"] for p in patches]),
                    labels=np.stack([p["labels"] for p in patches]), kind=[p["kind"] for p in patches])
grey = (soft * 255).astype(np.uint8)
picked = np.dstack([np.where(mask, 255, grey)] + [np.where(mask, 0, grey)] * 2)  # points of interest in red
Image.fromarray(np.hstack([np.dstack([grey] * 3), picked])).save(OUT / "soft_mask_and_points.png")
print(OUT)
